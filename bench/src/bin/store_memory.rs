//! Resident memory of the sidecar's window store after 24 h of minute slots
//! (simulated time) for 1, 16 and 64 routes, each route with 600 requests a
//! minute of lognormal latency (5–50 ms medians). Each size is measured in a
//! fresh child process so that one fill does not hide in another's RSS.
//!
//! Run: `cargo run -p lumen-bench --release --bin store_memory`; it writes
//! `target/lumen-bench/store_memory.json` for the `results` bin.

use std::process::Command;

use lumen_bench::workload::{filled_store, filled_store_fresh, filled_store_within};
use lumen_bench::write_figures;

/// Requests per route per minute.
const PER_MINUTE: u64 = 600;
/// Minutes of data (24 h).
const MINUTES: u64 = 1440;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn measure(routes: usize) {
    let before = rss_bytes();
    let (store, now_ms) = filled_store(routes, MINUTES, PER_MINUTE);
    let after = rss_bytes();
    // A 24 h evaluation builds and keeps the 10-minute and hour rollups.
    let data = store.window(now_ms, std::time::Duration::from_secs(86_400));
    assert_eq!(
        data.total.counts.requests(),
        routes as u64 * MINUTES * PER_MINUTE
    );
    drop(data);
    let with_rollups = rss_bytes();
    let line = serde_json::json!({
        "routes": routes,
        "minutes": MINUTES,
        "requests_per_route_minute": PER_MINUTE,
        "rss_growth_bytes": after.saturating_sub(before),
        "store_heap_bytes": store.heap_bytes(),
        "rss_growth_with_rollups_bytes": with_rollups.saturating_sub(before),
    });
    println!("{line}");
}

/// The peak resident memory of this process so far.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The Cloud Run kit's sidecar memory limit.
const KIT_LIMIT: u64 = 256 << 20;

/// 64 routes × 24 h within the budget the sidecar gives itself in the kit
/// (30 % of 256 MiB), then a 24 h evaluation and a checkpoint: the peak RSS
/// and the checkpoint file against the kit's limit.
fn measure_bounded(fresh: bool) {
    let budget =
        (KIT_LIMIT as f64 * lumen_sidecar::app::memory_limit::STORE_SHARE_OF_LIMIT) as usize;
    let (store, now_ms) = if fresh {
        // The case: σ = 1, every route-minute its own latencies.
        filled_store_fresh(64, MINUTES, PER_MINUTE, 1.0, Some(budget))
    } else {
        filled_store_within(64, MINUTES, PER_MINUTE, Some(budget))
    };
    let after_fill = rss_bytes();
    let data = store.window(now_ms, std::time::Duration::from_secs(86_400));
    assert_eq!(data.total.counts.requests(), 64 * MINUTES * PER_MINUTE);
    drop(data);
    let path = std::env::temp_dir().join(format!(
        "lumen-bench-checkpoint-{}.json",
        std::process::id()
    ));
    let copy = store.clone();
    let file = lumen_sidecar::store::snapshot::write_streamed(&path, &copy, None, now_ms)
        .expect("checkpoint written");
    drop(copy);
    let _ = std::fs::remove_file(&path);
    let peak = peak_rss_bytes();
    println!(
        "{}",
        serde_json::json!({
            "routes": 64,
            "fresh_sigma_1": fresh,
            "cap_bytes": budget,
            "store_heap_bytes": store.heap_bytes(),
            "rss_after_fill_bytes": after_fill,
            "peak_rss_bytes": peak,
            "checkpoint_bytes": file,
            "share_of_kit_limit": (peak + file) as f64 / KIT_LIMIT as f64,
        })
    );
}

/// The budget ledger after 30 days (service totals: no route dimension).
fn measure_budget() {
    use lumen_sidecar::store::{BudgetCounts, BudgetLedger};
    let before = rss_bytes();
    let mut ledger = BudgetLedger::default();
    let minutes = 30 * 1440;
    for m in 0..minutes {
        ledger.add(
            m,
            &BudgetCounts {
                total: 38_400,
                unavailable: m % 7,
                errors: m % 11,
                slow_p95: 1_500,
                slow_p99: 300,
            },
            false,
        );
        if m % 60 == 0 {
            ledger.evict(m);
        }
    }
    ledger.evict(minutes - 1);
    let after = rss_bytes();
    let (fine, coarse) = ledger.len();
    println!(
        "{}",
        serde_json::json!({ "budget_days": 30, "minute_slots": fine, "hour_slots": coarse, "rss_growth_bytes": after.saturating_sub(before) })
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("budget") {
        measure_budget();
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("bounded") {
        measure_bounded(false);
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("bounded-fresh") {
        measure_bounded(true);
        return;
    }
    if let Some(routes) = std::env::args().nth(1).and_then(|a| a.parse().ok()) {
        measure(routes);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    for routes in [1_usize, 16, 64] {
        let out = Command::new(&exe)
            .arg(routes.to_string())
            .output()
            .expect("child runs");
        assert!(out.status.success(), "child for {routes} routes failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("child prints JSON");
        println!(
            "{routes:>3} routes: RSS +{:.1} MiB (+{:.1} MiB with rollups), store {:.1} MiB ({:.0} bytes per route-minute)",
            v["rss_growth_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
            v["rss_growth_with_rollups_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
            v["store_heap_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
            v["store_heap_bytes"].as_f64().unwrap_or(0.0) / (routes as f64 * MINUTES as f64),
        );
        results.push(v);
    }
    let out = Command::new(&exe)
        .arg("budget")
        .output()
        .expect("child runs");
    let budget: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
            .expect("child prints JSON");
    println!(
        "budget ledger, 30 days: {} minute and {} hour slots, RSS +{:.2} MiB",
        budget["minute_slots"],
        budget["hour_slots"],
        budget["rss_growth_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0
    );
    results.push(budget);
    write_figures("store_memory.json", &serde_json::json!(results));
}
