//! What an OTLP/HTTP endpoint said about an export: points it rejected in a
//! partial success, or a whole request refused (4xx) with its message. Both
//! are counted (`lumen_otlp_points_rejected_total`) and logged with the
//! endpoint's own words, never taken for success.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::StatusCode;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

use crate::app::ExportStats;

/// `google.rpc.Status`, the body OTLP/HTTP endpoints answer errors with.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Data points in an encoded export request (0 if it cannot be read).
pub fn data_points(request: &[u8]) -> u64 {
    let Ok(request) = ExportMetricsServiceRequest::decode(request) else {
        return 0;
    };
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum::<usize>() as u64
}

/// The message an error body carries: `google.rpc.Status` (protobuf), a
/// JSON `{"error": {"message"}}`, or the text itself.
pub fn error_message(body: &Bytes) -> String {
    if let Ok(status) = RpcStatus::decode(body.as_ref())
        && !status.message.is_empty()
    {
        return status.message;
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = json["error"]["message"]
            .as_str()
            .or(json["message"].as_str())
    {
        return m.to_owned();
    }
    String::from_utf8_lossy(body).chars().take(500).collect()
}

/// Reads an answer to an export of `request`: counts and logs what was
/// rejected. Returns the points rejected.
pub fn note_answer(stats: &ExportStats, request: &[u8], status: StatusCode, body: &Bytes) -> u64 {
    let rejected = if status.is_success() {
        match ExportMetricsServiceResponse::decode(body.as_ref()) {
            Ok(answer) => match answer.partial_success {
                Some(p) if p.rejected_data_points > 0 => {
                    let n = u64::try_from(p.rejected_data_points).unwrap_or(0);
                    tracing::warn!(
                        rejected = n,
                        message = %p.error_message,
                        "the OTLP endpoint rejected data points (partial success)"
                    );
                    n
                }
                Some(p) if !p.error_message.is_empty() => {
                    tracing::warn!(message = %p.error_message, "the OTLP endpoint warned");
                    0
                }
                _ => 0,
            },
            Err(_) => 0,
        }
    } else if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        let n = data_points(request);
        tracing::error!(
            %status,
            rejected = n,
            message = %error_message(body),
            "the OTLP endpoint refused the export"
        );
        n
    } else {
        0
    };
    stats.points_rejected.fetch_add(rejected, Ordering::Relaxed);
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;

    #[test]
    fn a_partial_success_is_counted_and_a_full_success_is_not() {
        let stats = ExportStats::default();
        let partial = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 7,
                error_message: "location is required".into(),
            }),
        };
        let body = Bytes::from(partial.encode_to_vec());
        assert_eq!(note_answer(&stats, &[], StatusCode::OK, &body), 7);
        let ok = Bytes::from(ExportMetricsServiceResponse::default().encode_to_vec());
        assert_eq!(note_answer(&stats, &[], StatusCode::OK, &ok), 0);
        assert_eq!(note_answer(&stats, &[], StatusCode::OK, &Bytes::new()), 0);
        assert_eq!(stats.points_rejected.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn error_messages_are_read_from_status_json_or_text() {
        let status = RpcStatus {
            code: 7,
            message: "Permission denied on resource project p".into(),
        };
        assert_eq!(
            error_message(&Bytes::from(status.encode_to_vec())),
            "Permission denied on resource project p"
        );
        assert_eq!(
            error_message(&Bytes::from_static(
                br#"{"error":{"code":403,"message":"denied"}}"#
            )),
            "denied"
        );
        assert_eq!(error_message(&Bytes::from_static(b"plain")), "plain");
    }
}
