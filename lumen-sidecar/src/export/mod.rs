//! Export to OTLP (Google Cloud Monitoring, or any collector) or stdout,
//! through the OpenTelemetry SDK: gauges of the latest evaluation,
//! cumulative counters and the latency histogram, every interval, on a
//! periodic reader in its own task, never blocking ingest or reads.

mod answers;
mod data_points;
mod exporters;
mod otlp_transport;
pub mod instruments;

pub use data_points::{lines, total_points};
pub use exporters::{CountingExporter, StdoutExporter};
pub use otlp_transport::OtlpHttpClient;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::app::{AppState, ExportStats, LatencyFeed};
use crate::config::{ExportConfig, ExportMode, OtlpProtocol, SidecarConfig};
use crate::google::{InstanceIdentity, MetadataClient, TokenSource, identify};

/// Timeout of one OTLP request.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Series queued for the histogram before new ones are dropped (and counted).
pub const FEED_CAPACITY: usize = 4096;

/// Why the export cannot start.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The OTLP exporter refused its settings.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// The running export.
#[derive(Debug)]
pub struct MetricsExport {
    provider: Arc<Mutex<Option<SdkMeterProvider>>>,
    pending: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<crate::app::ExportStats>,
}

fn random_instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:016x}",
        (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
    )
}

/// The resource: service, Cloud Run and project attributes, then
/// `OTEL_RESOURCE_ATTRIBUTES`.
pub fn resource_attributes(
    config: &SidecarConfig,
    identity: &InstanceIdentity,
) -> Vec<(String, String)> {
    let e = &config.export;
    let run = e.cloud_run.as_ref();
    let service = e
        .service_name
        .clone()
        .or_else(|| config.service.clone())
        .or_else(|| run.map(|r| r.service.clone()))
        .unwrap_or_else(|| "unknown_service".to_owned());
    let instance = identity
        .instance_id
        .clone()
        .unwrap_or_else(random_instance_id);
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), service),
        ("service.instance.id".into(), instance.clone()),
    ];
    if let Some(run) = run {
        attrs.push(("cloud.provider".into(), "gcp".into()));
        attrs.push(("cloud.platform".into(), "gcp_cloud_run".into()));
        attrs.push(("faas.name".into(), run.service.clone()));
        attrs.push(("faas.instance".into(), instance));
        if let Some(revision) = &run.revision {
            attrs.push(("service.version".into(), revision.clone()));
            attrs.push(("faas.version".into(), revision.clone()));
        }
    }
    if let Some(region) = &identity.region {
        attrs.push(("cloud.region".into(), region.clone()));
    }
    if let Some(project) = &identity.project_id {
        attrs.push(("gcp.project_id".into(), project.clone()));
    }
    for (k, v) in &e.resource_attributes {
        attrs.retain(|(key, _)| key != k);
        attrs.push((k.clone(), v.clone()));
    }
    attrs
}

fn reader<E: PushMetricExporter>(
    exporter: E,
    stats: Arc<ExportStats>,
    interval: Duration,
) -> PeriodicReader<CountingExporter<E>> {
    PeriodicReader::builder(
        CountingExporter::new(exporter, stats),
        opentelemetry_sdk::runtime::Tokio,
    )
    .with_interval(interval)
    .build()
}

fn otlp_exporter(
    e: &ExportConfig,
    token: Option<Arc<TokenSource>>,
    stats: Arc<ExportStats>,
) -> Result<opentelemetry_otlp::MetricExporter, ExportError> {
    let quota_project = e.quota_project.clone();
    let endpoint = e.endpoint.clone().unwrap_or_default();
    let headers: HashMap<String, String> = e.headers.iter().cloned().collect();
    let built = match e.protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(headers)
            .with_http_client(OtlpHttpClient::new(
                token,
                quota_project,
                EXPORT_TIMEOUT,
                stats,
            ))
            .build(),
        OtlpProtocol::Grpc => {
            let mut metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::new();
            for (k, v) in &headers {
                let (Ok(key), Ok(value)) = (
                    k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                    v.parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>(),
                ) else {
                    return Err(ExportError::Exporter(format!(
                        "header {k} is not valid gRPC metadata"
                    )));
                };
                metadata.insert(key, value);
            }
            let mut builder = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .with_metadata(metadata);
            if endpoint.starts_with("https://") {
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_webpki_roots(),
                );
            }
            if let Some(token) = token {
                let project = quota_project.clone();
                builder = builder.with_interceptor(move |mut request: tonic::Request<()>| {
                    if let Some(t) = token.latest() {
                        let value = format!("Bearer {t}").parse().map_err(|_| {
                            tonic::Status::internal("access token is not valid metadata")
                        })?;
                        request.metadata_mut().insert("authorization", value);
                    }
                    if let Some(p) = &project
                        && let Ok(value) = p.parse()
                    {
                        request.metadata_mut().insert("x-goog-user-project", value);
                    }
                    Ok(request)
                });
            }
            builder.build()
        }
    };
    built.map_err(|e| ExportError::Exporter(e.to_string()))
}

impl MetricsExport {
    /// Starts the export the config asks for (`None` when it is off). Must
    /// run inside the tokio runtime (the gRPC channel and the reader spawn
    /// there). Bad exporter settings fail here; on Google Cloud the export
    /// begins once the metadata server has said where this instance runs
    /// (retried with backoff: a point without a location is never sent).
    /// `tokens` is the sidecar's one Google token source (used with
    /// `google_auth`).
    pub async fn start(
        config: &SidecarConfig,
        state: &Arc<AppState>,
        tokens: Option<Arc<TokenSource>>,
        histogram_queue: Option<mpsc::Receiver<LatencyFeed>>,
    ) -> Result<Option<Self>, ExportError> {
        let e = &config.export;
        if e.mode == ExportMode::Off {
            return Ok(None);
        }
        let metadata = MetadataClient::new(&e.metadata_host);
        let token = if e.google_auth {
            Some(tokens.unwrap_or_else(|| Arc::new(TokenSource::new(metadata.clone()))))
        } else {
            None
        };
        if let Some(t) = &token {
            if let Err(err) = t.token().await {
                tracing::warn!(error = %err, "no access token yet; exports will retry");
            }
            if e.protocol == OtlpProtocol::Grpc {
                // gRPC interceptors cannot wait: keep the latest token fresh.
                let t = Arc::clone(t);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(15));
                    loop {
                        tick.tick().await;
                        if let Err(err) = t.token().await {
                            tracing::warn!(error = %err, "access token refresh failed");
                        }
                    }
                });
            }
        }
        let exporter = match e.mode {
            ExportMode::Stdout => None,
            _ => Some(otlp_exporter(e, token, Arc::clone(&state.export_stats))?),
        };
        let slot: Arc<Mutex<Option<SdkMeterProvider>>> = Arc::default();
        let needs_identity = e.cloud_run.is_some() || e.google_auth;
        if !needs_identity {
            let provider = build_provider(
                config,
                state,
                &InstanceIdentity::default(),
                exporter,
                histogram_queue,
            );
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(provider);
            return Ok(Some(Self {
                provider: slot,
                pending: None,
                stats: Arc::clone(&state.export_stats),
            }));
        }
        let stats = Arc::clone(&state.export_stats);
        let (config, state, filled) = (config.clone(), Arc::clone(state), Arc::clone(&slot));
        let pending = tokio::spawn(async move {
            let identity = identify_until_known(&metadata, config.export.google_auth).await;
            let provider = build_provider(&config, &state, &identity, exporter, histogram_queue);
            *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(provider);
        });
        Ok(Some(Self {
            provider: slot,
            pending: Some(pending),
            stats,
        }))
    }

    /// Whether the export runs (on Google Cloud: once the instance is known).
    pub fn is_running(&self) -> bool {
        self.provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Collects and exports once more, then stops, within `grace`.
    pub async fn shutdown(self, grace: Duration) {
        if let Some(pending) = &self.pending {
            pending.abort();
        }
        let Some(provider) = self
            .provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            tracing::warn!(
                "the export never started (instance location unknown); nothing to flush"
            );
            return;
        };
        // Every batch acknowledged is in the histogram before the last export.
        let stats = Arc::clone(&self.stats);
        let fed = async move {
            loop {
                let signalled = stats.histogram_fed.notified();
                if stats
                    .histogram_feed_pending
                    .load(std::sync::atomic::Ordering::SeqCst)
                    == 0
                {
                    return;
                }
                signalled.await;
            }
        };
        if tokio::time::timeout(grace / 2, fed).await.is_err() {
            tracing::warn!(
                "the latency histogram feed was still busy at shutdown; the last export may miss some"
            );
        }
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(grace));
        match tokio::time::timeout(grace + Duration::from_secs(1), done).await {
            Ok(Ok(Ok(()))) => tracing::info!("final metrics export done"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "final metrics export failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "final metrics export panicked"),
            Err(_) => tracing::warn!(
                ?grace,
                "final metrics export did not finish in the grace period"
            ),
        }
    }
}

/// Asks the metadata server until it gives the region (and the project,
/// with Google auth), backing off from 0.5 s to 30 s.
async fn identify_until_known(metadata: &MetadataClient, needs_project: bool) -> InstanceIdentity {
    let mut wait = Duration::from_millis(500);
    loop {
        let identity = identify(metadata).await;
        let missing: Vec<&str> = [
            ("region", identity.region.is_none()),
            ("project", needs_project && identity.project_id.is_none()),
        ]
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(what, _)| *what)
        .collect();
        if missing.is_empty() {
            return identity;
        }
        tracing::warn!(
            missing = ?missing,
            retry_in = ?wait,
            "the metadata server did not say where this instance runs; the export waits (a point without a location would be rejected)"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// The meter provider with every instrument of the catalogue registered and
/// the latency feed connected.
fn build_provider(
    config: &SidecarConfig,
    state: &Arc<AppState>,
    identity: &InstanceIdentity,
    exporter: Option<opentelemetry_otlp::MetricExporter>,
    histogram_queue: Option<mpsc::Receiver<LatencyFeed>>,
) -> SdkMeterProvider {
    let e = &config.export;
    let attrs = resource_attributes(config, identity);
    let resource = Resource::builder_empty()
        .with_attributes(
            attrs
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build();
    let stats = Arc::clone(&state.export_stats);
    let provider = match exporter {
        None => SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader(StdoutExporter, stats, e.interval))
            .build(),
        Some(exporter) => SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader(exporter, stats, e.interval))
            .build(),
    };
    let meter = provider.meter("lumen-sidecar");
    let histogram = instruments::register(&meter, state);
    if let Some(queue) = histogram_queue {
        tokio::spawn(instruments::feed(
            histogram,
            queue,
            Arc::clone(&state.export_stats),
        ));
    }
    tracing::info!(
        mode = ?e.mode,
        endpoint = e.endpoint.as_deref().unwrap_or("stdout"),
        interval = ?e.interval,
        region = identity.region.as_deref().unwrap_or("-"),
        "metrics export started"
    );
    provider
}
