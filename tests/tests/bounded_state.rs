//! Bounded sidecar state: a flood of distinct routes folds into `other`
//! beyond the route cap, counts kept exact, reports and series bounded.

use bytes::Bytes;
use http_body_util::Full;
use lumen_middleware::wire::{self, Batch, Series, StatusCounts};
use lumen_tests::*;

fn batch(seq: u64, routes: std::ops::Range<u64>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let series: Vec<Series> = routes
        .map(|r| {
            let mut latency =
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            latency.record_n(1_000 + r, 3).expect("in range");
            Series::new(
                Some(&format!("/flood/{r}")),
                &latency,
                StatusCounts {
                    success: 2,
                    server_error: 1,
                    ..Default::default()
                },
            )
        })
        .collect();
    serde_json::to_string(
        &Batch::new("flood-1", seq, "flood-api", now - 1_000, now).with_series(series),
    )
    .expect("serializes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_routes_folds_into_other_and_counts_stay_exact() {
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("LUMEN_MAX_ROUTES", "50"),
            ("LUMEN_STORE_MAX_BYTES", "8MiB"),
        ],
    )
    .await;
    let log = sidecar.proc.log_text(); // plain text: no colours when not a terminal
    assert!(
        log.contains("store memory cap from store.max_bytes") && log.contains("cap_mib=8"),
        "the sidecar says its memory cap: {log}"
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for seq in 1..=20_u64 {
        let body = batch(seq, (seq - 1) * 100..seq * 100);
        let request = http::Request::post(format!("{}/v1/ingest", sidecar.base()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let status = client.request(request).await.expect("an answer").status();
        assert_eq!(status, 200);
    }
    let doc = sidecar.slo("1h").await;
    assert_eq!(doc["requests"], 2_000 * 3, "nothing dropped");
    assert_eq!(doc["counts"]["5xx"], 2_000);
    let routes = doc["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 51, "50 routes and other");
    let other = routes
        .iter()
        .find(|r| r["route"] == "other")
        .expect("an other route");
    assert_eq!(other["requests"], 1_950 * 3);
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    assert!(
        metrics.contains("lumen_routes_folded_total 1950"),
        "{metrics}"
    );
    let request_series = metrics
        .lines()
        .filter(|l| l.starts_with("http_server_requests_total{"))
        .count();
    assert_eq!(request_series, 51 * 2, "a 2xx and a 5xx series per route");
}

/// The memory cap holds while batches arrive, not only at the minute's
/// housekeeping: three production hours fed at once (no housekeeping runs)
/// never leave the store over its cap beyond the last hour it always
/// keeps, and every request stays counted.
#[test]
fn the_memory_cap_holds_during_ingest_with_every_request_counted() {
    use lumen_sidecar::app::{AppState, StateParts};
    use lumen_sidecar::config::SidecarConfig;
    use lumen_sidecar::store::WindowStore;
    use lumen_tests::workload::Workload;

    let workload = Workload {
        routes: 16,
        peak_per_minute: 1_000,
        ..Workload::day()
    }
    .ending_now(180);
    let config = SidecarConfig::default();
    // What the three hours take unmerged, measured; the cap is 3/4 of
    // that (merging older minutes into 10-minute blocks fits it, no hour
    // is dropped).
    let now = workload.minute_start_ms(workload.minutes);
    let unmerged = {
        let mut store = WindowStore::new(config.retention);
        for m in 0..workload.minutes {
            let body = workload.batch("capped", "i1", m + 1, m);
            store
                .apply(&wire::decode(&body).expect("valid"), now)
                .expect("applied");
        }
        store.heap_bytes()
    };
    let cap = unmerged * 3 / 4;
    let state = AppState::from_parts(StateParts {
        memory_cap: Some(cap),
        ..StateParts::new(config.clone(), WindowStore::new(config.retention))
    });
    let mut over = 0;
    for m in 0..workload.minutes {
        let body = workload.batch("capped", "i1", m + 1, m);
        let batch = wire::decode(&body).expect("valid");
        let mut store = state.store();
        state
            .apply_locked(&mut store, &batch, now)
            .expect("applied");
        let heap = store.heap_bytes();
        if heap > cap {
            over += 1;
            eprintln!("minute {m}: {heap} bytes over the cap of {cap}");
        }
    }
    assert_eq!(over, 0, "minutes over the cap");
    let store = state.store();
    assert!(store.heap_bytes() <= cap, "{}", store.heap_bytes());
    assert!(
        state
            .stats
            .store_merged_slots
            .load(std::sync::atomic::Ordering::Relaxed)
            > 100,
        "merged during ingest"
    );
    assert_eq!(
        state
            .stats
            .store_dropped_minutes
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "merging was enough: nothing dropped"
    );
    // Merged, never lost: the error budget's ledger and the day's window
    // both count every request.
    assert_eq!(
        store.budget().sum(0, u64::MAX / 2).total,
        workload.total_requests()
    );
    let day = store.window(now, std::time::Duration::from_secs(86_400));
    assert_eq!(day.total.counts.requests(), workload.total_requests());
}
