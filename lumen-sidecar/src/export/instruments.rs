//! The OTLP instruments, one per catalogue entry that goes to OTLP: gauges
//! and counters observed from the latest evaluation and the cumulative
//! totals, and the latency histogram fed per ingested series.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tokio::sync::mpsc;

use crate::app::{AppState, EvaluationCache, LatencyFeed};
use crate::metrics::{CATALOGUE, MetricDef, MetricKind, Sample, Sources};

/// How long one evaluation serves the instruments' callbacks of one collection.
const REPORT_MAX_AGE: Duration = Duration::from_secs(2);

fn attributes(def: &MetricDef, sample: &Sample) -> Vec<KeyValue> {
    def.labels
        .iter()
        .zip(&sample.labels)
        .map(|(k, v)| KeyValue::new(crate::metrics::otlp_label(k), v.clone()))
        .collect()
}

fn samples_now(def: &MetricDef, state: &AppState, cache: &EvaluationCache) -> Vec<Sample> {
    let evaluation = cache.get(state, REPORT_MAX_AGE);
    (def.samples)(&Sources {
        app: state,
        evaluation: &evaluation,
    })
}

/// Registers every OTLP instrument of the catalogue on `meter`; returns the
/// histogram for the feed.
pub fn register(meter: &Meter, state: &Arc<AppState>) -> Histogram<f64> {
    // One evaluation serves every instrument of a collection.
    let cache = Arc::new(EvaluationCache::default());
    let mut histogram = None;
    for def in CATALOGUE.iter().filter(|m| m.on_otlp()) {
        match def.kind {
            MetricKind::Gauge => {
                let (state, cache) = (Arc::clone(state), Arc::clone(&cache));
                meter
                    .f64_observable_gauge(def.name)
                    .with_unit(def.unit)
                    .with_description(def.help)
                    .with_callback(move |observer| {
                        for sample in samples_now(def, &state, &cache) {
                            observer.observe(sample.value.as_f64(), &attributes(def, &sample));
                        }
                    })
                    .build();
            }
            MetricKind::Counter if def.unit == crate::metrics::USD => {
                let (state, cache) = (Arc::clone(state), Arc::clone(&cache));
                meter
                    .f64_observable_counter(def.name)
                    .with_unit(def.unit)
                    .with_description(def.help)
                    .with_callback(move |observer| {
                        for sample in samples_now(def, &state, &cache) {
                            observer.observe(sample.value.as_f64(), &attributes(def, &sample));
                        }
                    })
                    .build();
            }
            MetricKind::Counter => {
                let (state, cache) = (Arc::clone(state), Arc::clone(&cache));
                meter
                    .u64_observable_counter(def.name)
                    .with_unit(def.unit)
                    .with_description(def.help)
                    .with_callback(move |observer| {
                        for sample in samples_now(def, &state, &cache) {
                            observer.observe(sample.value.as_u64(), &attributes(def, &sample));
                        }
                    })
                    .build();
            }
            MetricKind::Histogram => {
                histogram = Some(
                    meter
                        .f64_histogram(def.name)
                        .with_unit(def.unit)
                        .with_description(def.help)
                        .with_boundaries(state.latency_boundaries().seconds().to_vec())
                        .build(),
                );
            }
        }
    }
    histogram.expect("the catalogue has the latency histogram")
}

/// Records each queued series' latency into `histogram`, one value per
/// request (the SDK has no weighted record), off the ingest path; says
/// through `stats` when all it was given is recorded.
pub async fn feed(
    histogram: Histogram<f64>,
    mut queue: mpsc::Receiver<LatencyFeed>,
    stats: Arc<crate::app::ExportStats>,
) {
    while let Some(series) = queue.recv().await {
        let attributes = [
            KeyValue::new("service_name", series.service),
            KeyValue::new("revision_name", series.revision),
            KeyValue::new("http.route", series.route.unwrap_or_default()),
        ];
        for (seconds, count) in series.buckets {
            for _ in 0..count {
                histogram.record(seconds, &attributes);
            }
        }
        if stats.histogram_feed_pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            stats.histogram_fed.notify_waiters();
        }
    }
}
