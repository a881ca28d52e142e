//! Quantile accuracy: P50/P95/P99/P99.9 of 1,000,000 latencies from four
//! distributions, exact (nearest rank on the sorted values) against what
//! Lumen reports through its real path (recorder → drain → wire encoding →
//! sidecar decoding → window histogram) and what the peers' default
//! representations give for the same values.
//!
//! Run: `cargo run -p lumen-bench --release --bin accuracy`; it writes
//! `target/lumen-bench/accuracy.json` for the `results` bin.

use lumen_bench::peers::{
    EXPONENTIAL_MAX_BUCKETS, ExplicitHistogram, ExponentialHistogram, OTEL_DEFAULT_BOUNDARIES_MS,
    PROMETHEUS_DEFAULT_BUCKETS_S,
};
use lumen_bench::write_figures;
use lumen_middleware::wire::{LatencyCounts, encode_histogram};
use lumen_middleware::{LumenConfig, pair};
use lumen_sidecar::store::{WindowHistogram, store_layout};
use lumen_tests::distributions::{exact_quantile, standard};

const SAMPLES: usize = 1_000_000;
const QUANTILES: [f64; 4] = [0.5, 0.95, 0.99, 0.999];

/// Lumen's answer in ms, through the product's own path.
fn lumen_quantiles(values: &[u64]) -> Vec<f64> {
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid config");
    let recorder = layer.recorder();
    for v in values {
        recorder.record_response(None, *v, 200);
    }
    let drained = recorder.drain();
    let decoded = LatencyCounts::decode(&encode_histogram(&drained[0].latency)).expect("decodes");
    let mut window = WindowHistogram::new(store_layout());
    for (value, count) in decoded.values() {
        window.record_n(value, count);
    }
    QUANTILES
        .iter()
        .map(|q| window.quantile_us(*q).expect("values recorded") as f64 / 1000.0)
        .collect()
}

fn main() {
    let mut rows = Vec::new();
    for (seed, (name, distribution)) in standard().into_iter().enumerate() {
        let mut values = distribution.sample(SAMPLES, 1000 + seed as u64);
        let lumen = lumen_quantiles(&values);
        values.sort_unstable();
        let mut prometheus = ExplicitHistogram::new(&PROMETHEUS_DEFAULT_BUCKETS_S);
        let mut otel = ExplicitHistogram::new(&OTEL_DEFAULT_BOUNDARIES_MS);
        let ms: Vec<f64> = values.iter().map(|v| *v as f64 / 1000.0).collect();
        for v in &ms {
            prometheus.record(v / 1000.0);
            otel.record(*v);
        }
        let exponential = ExponentialHistogram::from_values(&ms, EXPONENTIAL_MAX_BUCKETS);
        for (i, q) in QUANTILES.iter().enumerate() {
            let exact = exact_quantile(&values, *q) as f64 / 1000.0;
            let answers = [
                ("lumen", lumen[i]),
                (
                    "prometheus_classic",
                    prometheus.quantile(*q).expect("data") * 1000.0,
                ),
                ("otel_explicit", otel.quantile(*q).expect("data")),
                (
                    "otel_exponential_160",
                    exponential.quantile(*q).expect("data"),
                ),
            ];
            let mut row =
                serde_json::json!({ "distribution": name, "quantile": q, "exact_ms": exact });
            for (key, value) in answers {
                row[key] = serde_json::json!({ "ms": value, "relative_error": (value - exact).abs() / exact });
            }
            println!(
                "{name:<32} p{:<5} exact {exact:>10.3} ms  lumen {:>10.3} ({:.4} %)  prometheus {:>10.3} ({:.1} %)  otel {:>10.3} ({:.1} %)  exp160 {:>10.3} ({:.2} %)",
                q * 100.0,
                answers[0].1,
                100.0 * (answers[0].1 - exact).abs() / exact,
                answers[1].1,
                100.0 * (answers[1].1 - exact).abs() / exact,
                answers[2].1,
                100.0 * (answers[2].1 - exact).abs() / exact,
                answers[3].1,
                100.0 * (answers[3].1 - exact).abs() / exact,
            );
            rows.push(row);
        }
        println!(
            "{name}: exponential histogram at scale {}",
            exponential.scale
        );
    }
    write_figures("accuracy.json", &serde_json::json!(rows));
}
