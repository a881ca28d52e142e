//! `slo what-if` over a real sidecar's stored history: three hours of
//! heavy-tailed traffic on eight routes with a twenty-minute burst of
//! 10 % 5xx. Under the configured targets availability would not have
//! paged, and the budgets and the alerts still firing equal the live
//! `/v1/budget`; under 99.9 % availability the 1 h
//! page fires inside the burst and ends after it; a stricter latency
//! threshold is counted again from the stored histograms.

use std::process::Command;

use hdrhistogram::Histogram;
use lumen_middleware::wire::{Batch, Series, StatusCounts};
use lumen_tests::distributions::Distribution;
use lumen_tests::sidecar_http::{get, post_batch};
use lumen_tests::*;
use serde_json::Value;

const MINUTES: u64 = 180;
const ROUTES: u64 = 8;
const PER_ROUTE: u64 = 500;
/// The burst: minutes 100 to 80 before the last one.
const BURST: std::ops::Range<u64> = 80..100;

fn minute_batch(minute_ms: u64, seq: u64, ago: u64) -> Batch {
    let series = (0..ROUTES).map(|r| {
        let latencies = Distribution::LogNormal {
            median_us: 20_000.0,
            sigma: 1.0,
        }
        .sample(PER_ROUTE as usize, seq * 100 + r);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for v in latencies {
            h.record(v).expect("in range");
        }
        let bad = if BURST.contains(&ago) {
            PER_ROUTE / 10
        } else {
            0
        };
        Series::new(
            Some(&format!("/api/v1/r{r}")),
            &h,
            StatusCounts {
                success: PER_ROUTE - bad,
                server_error: bad,
                ..Default::default()
            },
        )
    });
    Batch::new(
        "what-if-1",
        seq,
        "what-if-api",
        minute_ms,
        minute_ms + 59_000,
    )
    .with_series(series)
}

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary("lumen-sidecar"))
        .args(args)
        .output()
        .expect("lumen-sidecar runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_targets_replay_the_stored_history_exactly() {
    let sidecar = SidecarProc::start(free_port(), &[("LUMEN_BUDGET_MIN_EVENTS", "100")]).await;
    let last = now_ms() / 60_000 - 1;
    for (seq, minute) in (last + 1 - MINUTES..=last).enumerate() {
        let batch = minute_batch(minute * 60_000, seq as u64 + 1, last - minute);
        let (status, body) = post_batch(sidecar.addr, &batch).await;
        assert_eq!(status, 200, "{body}");
    }
    let url = sidecar.base();

    // The configured targets: the live budgets, and no alert.
    let (status, live) = get(sidecar.addr, "/v1/budget").await;
    assert_eq!(status, 200, "{live}");
    let live: Value = serde_json::from_str(&live).expect("JSON");
    let (code, out, err) = cli(&["slo", "what-if", "--url", &url, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let same: Value = serde_json::from_str(&out).expect("JSON");
    for (a, b) in same["budget"]["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .zip(live["slos"].as_array().expect("slos"))
    {
        for field in ["name", "events", "bad", "remaining_percent"] {
            assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
        }
    }
    // The replay ends where the live budgets are: the alerts it leaves
    // firing are the ones /v1/budget says fire now.
    let still: std::collections::BTreeSet<String> = same["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["to_ms"].is_null())
        .map(|a| format!("{} {} {}", a["slo"], a["severity"], a["long_window"]))
        .collect();
    let firing: std::collections::BTreeSet<String> = live["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .flat_map(|s| {
            s["alerts"]
                .as_array()
                .expect("alerts")
                .iter()
                .filter(|a| a["firing"] == true)
                .map(move |a| format!("{} {} {}", s["name"], a["severity"], a["long_window"]))
        })
        .collect();
    assert_eq!(still, firing);
    // The configured availability target (99.5 %) never pages on this burst.
    assert!(
        !same["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["slo"] == "availability" && a["severity"] == "page"),
        "{}",
        same["alerts"]
    );
    assert_eq!(
        same["budget"]["slos"][0]["events"],
        MINUTES * ROUTES * PER_ROUTE,
        "every request of the three hours"
    );

    // 99.9 %: the burst pages (1 h and 5 m), inside it, and it ends after.
    let (code, out, err) = cli(&[
        "slo",
        "what-if",
        "--url",
        &url,
        "--target",
        "availability=99.9",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let strict: Value = serde_json::from_str(&out).expect("JSON");
    let page = strict["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["slo"] == "availability" && a["long_window"] == "1h")
        .unwrap_or_else(|| panic!("the 1 h page fires: {}", strict["alerts"]))
        .clone();
    let burst_start = (last - BURST.end + 1) * 60_000;
    let burst_end = (last - BURST.start + 1) * 60_000;
    let from = page["from_ms"].as_u64().expect("from");
    let to = page["to_ms"].as_u64().expect("it ended");
    assert!((burst_start..burst_end).contains(&from), "{page}");
    assert!(to > burst_end && to <= burst_end + 10 * 60_000, "{page}");
    assert!(
        strict["recounted_from_ms"].is_null(),
        "the same events, another share"
    );
    // The text says it with times.
    let (code, text, _) = cli(&[
        "slo",
        "what-if",
        "--url",
        &url,
        "--target",
        "availability=99.9",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("availability ≥ 99.9 %") && text.contains("page (1h and 5m)"),
        "{text}"
    );

    // A stricter latency threshold is counted again from the histograms:
    // with P95 under 1 ms every request is slow.
    let (code, out, err) = cli(&[
        "slo",
        "what-if",
        "--url",
        &url,
        "--target",
        "latency_p95=1ms",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let slow: Value = serde_json::from_str(&out).expect("JSON");
    assert!(slow["recounted_from_ms"].is_u64(), "{slow}");
    let p95 = &slow["budget"]["slos"][1];
    assert_eq!(p95["name"], "latency_p95");
    assert_eq!(
        p95["events"],
        MINUTES * ROUTES * PER_ROUTE,
        "every minute held"
    );
    // Exactly the requests at or above 1 ms (below 2 ms the HDR buckets
    // are single microseconds), drawn again from the same seeds.
    let at_least_1ms: u64 = (1..=MINUTES)
        .flat_map(|seq| (0..ROUTES).map(move |r| (seq, r)))
        .map(|(seq, r)| {
            Distribution::LogNormal {
                median_us: 20_000.0,
                sigma: 1.0,
            }
            .sample(PER_ROUTE as usize, seq * 100 + r)
            .into_iter()
            .filter(|v| *v >= 1_000)
            .count() as u64
        })
        .sum();
    assert_eq!(p95["bad"], at_least_1ms, "{p95}");
    assert!(
        slow["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["slo"] == "latency_p95" && a["severity"] == "page")
    );

    // Bad input: a precise refusal, exit 3.
    let (code, _, err) = cli(&[
        "slo",
        "what-if",
        "--url",
        &url,
        "--target",
        "latency_p95=soon",
    ]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--target latency_p95=soon"), "{err}");
    let (status, body) = get(sidecar.addr, "/v1/what-if?bogus=1").await;
    assert_eq!(status, 400);
    assert!(body.contains("bogus: not a what-if parameter"), "{body}");
    let (status, body) = get(sidecar.addr, "/v1/what-if?availability=101").await;
    assert_eq!(status, 400);
    assert!(body.contains("availability:"), "{body}");
}
