//! Bytes one route costs in a batch: the JSON of a series (counts plus the
//! compressed HDR histogram) after 1k, 100k and 1M requests in an interval,
//! recorded and drained through the middleware's real path.
//!
//! Run: `cargo run -p lumen-bench --release --bin wire_cost`; it writes
//! `target/lumen-bench/wire_cost.json` for the `results` bin.

use lumen_bench::write_figures;
use lumen_middleware::{LumenConfig, pair};
use lumen_tests::distributions::Distribution;

fn main() {
    let distribution = Distribution::LogNormal {
        median_us: 20_000.0,
        sigma: 1.0,
    };
    let mut rows = Vec::new();
    for requests in [1_000_usize, 100_000, 1_000_000] {
        let (layer, _shipper) = pair(LumenConfig::default()).expect("valid config");
        let recorder = layer.recorder();
        for (i, v) in distribution
            .sample(requests, requests as u64)
            .into_iter()
            .enumerate()
        {
            recorder.record_response(
                Some("/api/v1/mentor/ask"),
                v,
                if i % 100 == 0 { 500 } else { 200 },
            );
        }
        let s = recorder.drain().remove(0);
        let series = s.to_wire();
        let bytes = serde_json::to_vec(&series).expect("serializes").len();
        println!(
            "{requests:>9} requests: {bytes} bytes per route ({} of them the histogram)",
            series.latency_us.len()
        );
        rows.push(serde_json::json!({
            "requests": requests,
            "series_bytes": bytes,
            "histogram_base64_bytes": series.latency_us.len(),
            "distinct_buckets": s.latency.iter_recorded().count(),
        }));
    }
    write_figures("wire_cost.json", &serde_json::json!(rows));
}
