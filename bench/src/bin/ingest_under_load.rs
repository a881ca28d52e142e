//! Ingest's latency while a peer sends expensive batches: the release
//! sidecar on loopback; one client posts small batches one after another
//! and times each answer, first alone, then while two peers keep posting
//! batches at the inflate budget (16 series whose histograms each inflate
//! to 1 MiB: the most a batch may cost to decode). Parsing and inflating
//! run on the blocking pool, so the small batches' answers should barely
//! move.
//!
//! Run: `cargo run -p lumen-bench --release --bin ingest_under_load`; it
//! writes `target/lumen-bench/ingest_under_load.json` for the `results` bin.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use lumen_bench::write_figures;
use lumen_middleware::wire::{self, MAX_BATCH_INFLATED_BYTES};
use lumen_tests::json_client::JsonClient;
use lumen_tests::{Proc, free_port, wait_ready};

/// Small batches timed in each phase.
const SAMPLES: usize = 300;

fn histogram(values: &[(u64, u64)]) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for (v, n) in values {
        h.record_n(*v, *n).expect("in range");
    }
    h
}

/// A one-value histogram whose zlib stream inflates to `bytes`.
fn padded(bytes: usize) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(wire::encode_histogram(&histogram(&[(1_000, 1)])))
        .expect("base64");
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&raw[8..])
        .read_to_end(&mut inflated)
        .expect("inflates");
    inflated.resize(bytes, 0);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&inflated).expect("deflates");
    let deflated = z.finish().expect("deflates");
    let mut out = raw[..4].to_vec();
    out.extend((deflated.len() as u32).to_be_bytes());
    out.extend(deflated);
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn batch(instance: &str, seq: u64, series: Vec<serde_json::Value>) -> Vec<u8> {
    let now = lumen_tests::now_ms();
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "instance": instance,
        "seq": seq,
        "service": "load-api",
        "start_ms": now - 10_000,
        "end_ms": now,
        "series": series,
    }))
    .expect("JSON")
}

/// Times `SAMPLES` small batches: their answers' median and 99th
/// percentile, ms.
async fn time_small(url: &str, first_seq: u64) -> (f64, f64) {
    let client = JsonClient::default();
    let latency = wire::encode_histogram(&histogram(&[(2_000, 90), (40_000, 10)]));
    let mut took = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES as u64 {
        let body = batch(
            "small",
            first_seq + i,
            vec![
                serde_json::json!({ "route": "/ask", "latency_us": latency, "status": { "2xx": 100 } }),
            ],
        );
        let start = Instant::now();
        let (status, answer) = client.post(url, body).await;
        took.push(start.elapsed().as_secs_f64() * 1_000.0);
        assert_eq!(status, 200, "{answer}");
    }
    took.sort_by(f64::total_cmp);
    (took[SAMPLES / 2], took[SAMPLES * 99 / 100])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let port = free_port();
    let mut cmd = Command::new(lumen_bench::release_sidecar());
    // No write-ahead log, as the figures in RESULTS were taken (serve is
    // durable by default since).
    cmd.arg("serve")
        .env("LUMEN_STATE_DIR", "none")
        .env("LUMEN_LISTEN", format!("127.0.0.1:{port}"))
        .env("LUMEN_MAX_BODY_BYTES", (64_u64 << 20).to_string());
    let _sidecar = Proc::spawn("sidecar", cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "/healthz").await;
    let url = format!("{base}/v1/ingest");

    // Warm up (connections, allocator, the route), untimed.
    let _ = time_small(&url, 1).await;
    let (quiet_median, quiet_p99) = time_small(&url, 1_000).await;

    let expensive = padded(1 << 20);
    let per_batch = MAX_BATCH_INFLATED_BYTES / (1 << 20) - 1;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut peers = Vec::new();
    for p in 0..2 {
        let (url, expensive, stop) = (url.clone(), expensive.clone(), stop.clone());
        peers.push(tokio::spawn(async move {
            let client = JsonClient::default();
            let mut sent = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let series = (0..per_batch)
                    .map(|i| serde_json::json!({ "route": format!("/r{i}"), "latency_us": expensive, "status": { "2xx": 1 } }))
                    .collect();
                let (status, answer) = client
                    .post(&url, batch(&format!("peer-{p}"), sent + 1, series))
                    .await;
                assert_eq!(status, 200, "{answer}");
                sent += 1;
            }
            sent
        }));
    }
    // Let the peers get going.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (loaded_median, loaded_p99) = time_small(&url, 2_000).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut expensive_batches = 0;
    for p in peers {
        expensive_batches += p.await.expect("a peer");
    }
    let row = serde_json::json!({
        "samples": SAMPLES,
        "quiet_median_ms": quiet_median,
        "quiet_p99_ms": quiet_p99,
        "loaded_median_ms": loaded_median,
        "loaded_p99_ms": loaded_p99,
        "expensive_batches": expensive_batches,
        "expensive_inflated_bytes": per_batch << 20,
    });
    println!("{row:#}");
    write_figures("ingest_under_load.json", &serde_json::json!([row]));
}
