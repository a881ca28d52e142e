//! Deployment frequency comes from the Cloud Run Admin API's revision list
//! (a stand-in that checks the request as the API documents it), not from
//! the one revision a sidecar's own instance runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use lumen_sidecar::eval::calendar::civil_from_days;
use lumen_tests::*;

/// `2026-11-30T12:00:00.123456Z` of Unix ms.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}456Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// Metadata server and Cloud Run Admin API in one stand-in; keeps the
/// Cloud Run requests (path?query and authorization).
async fn google() -> (SocketAddr, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    let day = 86_400_000;
    let now = now_ms();
    let page1 = serde_json::json!({
        "revisions": [
            { "name": "projects/p1/locations/europe-west1/services/svc/revisions/svc-00005-new", "createTime": rfc3339(now - day) },
            { "name": "projects/p1/locations/europe-west1/services/svc/revisions/svc-00001-old", "createTime": rfc3339(now - 10 * day) },
        ],
        "nextPageToken": "n+1/=",
    })
    .to_string();
    let page2 = serde_json::json!({
        "revisions": [
            { "name": "projects/p1/locations/europe-west1/services/svc/revisions/svc-00006", "createTime": rfc3339(now - 2 * 3_600_000) },
            { "name": "projects/p1/locations/europe-west1/services/svc/revisions/svc-00004", "createTime": rfc3339(now - 6 * day) },
        ],
    })
    .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (keep, page1, page2) = (Arc::clone(&keep), page1.clone(), page2.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let (keep, page1, page2) =
                            (Arc::clone(&keep), page1.clone(), page2.clone());
                        async move {
                            let path = req.uri().path().to_owned();
                            let query = req.uri().query().unwrap_or_default().to_owned();
                            let flavoured =
                                req.headers().get("metadata-flavor").map(|v| v.as_bytes())
                                    == Some(b"Google");
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let (status, body) = match (path.as_str(), query.as_str()) {
                            ("/computeMetadata/v1/instance/service-accounts/default/token", _) if flavoured => {
                                (200, r#"{"access_token":"tok-1","expires_in":3600,"token_type":"Bearer"}"#.to_owned())
                            }
                            ("/computeMetadata/v1/project/project-id", _) if flavoured => (200, "p1".to_owned()),
                            ("/computeMetadata/v1/instance/region", _) if flavoured => {
                                (200, "projects/123/regions/europe-west1".to_owned())
                            }
                            ("/computeMetadata/v1/instance/id", _) if flavoured => (200, "inst-1".to_owned()),
                            ("/v2/projects/p1/locations/europe-west1/services/svc/revisions", q) => {
                                keep.lock().expect("lock").push((format!("{path}?{q}"), auth.clone()));
                                match (auth.as_deref(), q) {
                                    (Some("Bearer tok-1"), "pageSize=100") => (200, page1),
                                    (Some("Bearer tok-1"), "pageSize=100&pageToken=n%2B1%2F%3D") => (200, page2),
                                    (Some("Bearer tok-1"), _) => (400, r#"{"error":{"message":"bad page"}}"#.to_owned()),
                                    _ => (401, r#"{"error":{"message":"no token"}}"#.to_owned()),
                                }
                            }
                            _ => (404, "not found".to_owned()),
                        };
                            let mut response = http::Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() =
                                http::StatusCode::from_u16(status).expect("valid");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_the_services_revisions_of_the_last_7_days() {
    let (google, seen) = google().await;
    let (host, api) = (google.to_string(), format!("http://{google}"));
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("K_SERVICE", "svc"),
            ("K_REVISION", "svc-00006"),
            ("GCE_METADATA_HOST", host.as_str()),
            ("LUMEN_CLOUD_RUN_API", api.as_str()),
            ("LUMEN_EXPORT", "off"),
        ],
    )
    .await;
    let row = eventually(
        "the revisions counted from the API",
        Duration::from_secs(30),
        || async {
            let (_, body) = try_get(&format!("{}/v1/health", sidecar.base())).await?;
            let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
            let row = doc["maturity"]["metrics"]
                .as_array()?
                .iter()
                .find(|m| m["metric"] == "deployment_frequency")?
                .clone();
            (row["source"] == "cloud_run_api").then_some(row)
        },
    )
    .await;
    assert_eq!(
        row["value"], 3.0,
        "three created in 7 days, one older: {row}"
    );
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("deployment_frequency{") && l.ends_with(" 3")),
        "{metrics}"
    );
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(
        requests,
        [
            (
                "/v2/projects/p1/locations/europe-west1/services/svc/revisions?pageSize=100".to_owned(),
                Some("Bearer tok-1".to_owned())
            ),
            (
                "/v2/projects/p1/locations/europe-west1/services/svc/revisions?pageSize=100&pageToken=n%2B1%2F%3D".to_owned(),
                Some("Bearer tok-1".to_owned())
            ),
        ]
    );
}
