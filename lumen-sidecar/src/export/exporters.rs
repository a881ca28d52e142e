//! The exporters the periodic reader drives: OTLP wrapped in counters, and
//! stdout for local use.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

use super::data_points::{lines, total_points};
use crate::app::ExportStats;

/// Counts what an exporter's exports came to.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    stats: Arc<ExportStats>,
}

impl<E> CountingExporter<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, stats: Arc<ExportStats>) -> Self {
        Self { inner, stats }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for CountingExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let rejected_before = self.stats.points_rejected.load(Ordering::Relaxed);
        let result = self.inner.export(metrics).await;
        match &result {
            // Exports of one reader run one at a time: points rejected since
            // this one began were rejected in its answer.
            Ok(()) if self.stats.points_rejected.load(Ordering::Relaxed) > rejected_before => {
                self.stats.partial.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let points = total_points(metrics) as u64;
                self.stats
                    .points_dropped
                    .fetch_add(points, Ordering::Relaxed);
                tracing::warn!(error = %e, points, "OTLP export failed");
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Prints one line per data point to standard output.
#[derive(Debug, Default)]
pub struct StdoutExporter;

impl PushMetricExporter for StdoutExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for line in lines(metrics) {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
