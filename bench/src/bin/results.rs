//! Prints the benches' figures with their ratios and rewrites the matching
//! tables of `bench/RESULTS.md`. Run after the benches:
//! `cargo run -p lumen-bench --release --bin results`.

use lumen_bench::{Machine, criterion_median_ns, figures_path, replace_section, workspace_root};

const OVERHEAD_CASES: [(&str, &str); 5] = [
    ("bare", "bare service_fn"),
    ("lumen", "Lumen"),
    ("lumen_route_labels", "Lumen, route labels (closure)"),
    ("axum_prometheus", "axum-prometheus 0.10"),
    (
        "opentelemetry_tower",
        "opentelemetry-instrumentation-tower 0.19 (metrics only)",
    ),
];

fn overhead_section(machine: &Machine) -> Option<String> {
    let mut out = vec![
        format!("Measured {} on {}.", today(), machine.line()),
        String::new(),
        "Command: `cargo bench -p lumen-bench --features peers --bench request_overhead`, then `cargo run -p lumen-bench --release --bin results`.".to_owned(),
        String::new(),
        "| layer | 1 thread, ns/request | added over bare | 2 threads, ns/request per thread | added over bare | 2-thread ÷ 1-thread added | added ÷ Lumen's (1 thread) |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let median =
        |threads: &str, id: &str| criterion_median_ns(&format!("request_overhead_{threads}"), id);
    let bare1 = median("1_thread", "bare")?;
    let bare2 = median("2_threads", "bare")?;
    let lumen1 = median("1_thread", "lumen")? - bare1;
    for (id, name) in OVERHEAD_CASES {
        let (t1, t2) = (median("1_thread", id)?, median("2_threads", id)?);
        let (a1, a2) = (t1 - bare1, t2 - bare2);
        let (scaling, vs_lumen) = if id == "bare" {
            ("".to_owned(), "".to_owned())
        } else {
            (format!("{:.2}×", a2 / a1), format!("{:.1}×", a1 / lumen1))
        };
        let added = |a: f64| {
            if id == "bare" {
                "".to_owned()
            } else {
                format!("{a:.1}")
            }
        };
        out.push(format!(
            "| {name} | {t1:.1} | {} | {t2:.1} | {} | {scaling} | {vs_lumen} |",
            added(a1),
            added(a2)
        ));
    }
    Some(out.join("\n"))
}

fn sidecar_section(machine: &Machine) -> Option<String> {
    let mut out = vec![
        format!("Measured {} on {}.", today(), machine.line()),
        String::new(),
        "Command: `cargo bench -p lumen-bench --bench sidecar_scale`, then `cargo run -p lumen-bench --release --bin results`.".to_owned(),
        String::new(),
        "| ingest (decode + dedup + store), one thread | µs per batch | batches per second | target |".to_owned(),
        "| --- | ---: | ---: | --- |".to_owned(),
    ];
    for routes in [1, 10, 64] {
        let ns = criterion_median_ns("sidecar_ingest", &format!("{routes}_routes"))?;
        let target = if routes == 10 { "≥ 5,000" } else { "" };
        out.push(format!(
            "| {routes} route{} of 200 requests | {:.1} | {:.0} | {target} |",
            if routes > 1 { "s" } else { "" },
            ns / 1000.0,
            1e9 / ns
        ));
    }
    if let Some(ns) = criterion_median_ns("sidecar_budget", "30d_every_slo_and_window") {
        out.push(String::new());
        out.push(format!(
            "Every budget and burn rate (4 SLOs, 7 windows, 4 alert rows) over a 30-day ledger: {:.3} ms (target < 20 ms; the ledger holds service totals, so 64 routes cost the same).",
            ns / 1e6
        ));
    }
    out.push(String::new());
    out.push(
        "| evaluation of 64 routes (window merge, SLIs, SLOs, report) | ms | target |".to_owned(),
    );
    out.push("| --- | ---: | --- |".to_owned());
    for (id, what, target) in [
        (
            "1h_64_routes",
            "1 h window, rollups of past blocks cached (steady state)",
            "< 5 ms",
        ),
        (
            "1h_64_routes_cold",
            "1 h window, every rollup built (first evaluation after a start)",
            "",
        ),
        (
            "24h_64_routes",
            "24 h window, rollups cached (steady state)",
            "< 50 ms",
        ),
        ("24h_64_routes_cold", "24 h window, every rollup built", ""),
    ] {
        let ns = criterion_median_ns("sidecar_evaluate", id)?;
        out.push(format!("| {what} | {:.2} | {target} |", ns / 1e6));
    }
    Some(out.join("\n"))
}

fn memory_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("store_memory.json")?;
    let mut out = vec![
        format!("Measured {} on {}.", today(), machine.line()),
        String::new(),
        "Command: `cargo run -p lumen-bench --release --bin store_memory`, then `cargo run -p lumen-bench --release --bin results`.".to_owned(),
        String::new(),
        "| routes | minutes | requests per route-minute | RSS growth, MiB | with rollups after a 24 h evaluation, MiB | store bytes per route-minute |".to_owned(),
        "| ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let mut budget_line = None;
    let largest = rows
        .iter()
        .filter_map(|r| r["rss_growth_with_rollups_bytes"].as_f64())
        .fold(0.0_f64, f64::max)
        / 1_048_576.0;
    for r in rows {
        let mib = |k: &str| r[k].as_f64().unwrap_or(0.0) / 1_048_576.0;
        if r.get("budget_days").is_some() {
            budget_line = Some(format!(
                "\nThe error-budget ledger for 30 days ({} minute slots, {} hour slots; service totals, independent of routes): RSS +{:.2} MiB. With 64 routes, 24 h of minute slots and their rollups, the sidecar's data comes to {:.1} MiB (target: at most 256 MiB).",
                r["minute_slots"],
                r["hour_slots"],
                mib("rss_growth_bytes"),
                largest + mib("rss_growth_bytes")
            ));
            continue;
        }
        let routes = r["routes"].as_f64()?;
        let minutes = r["minutes"].as_f64()?;
        out.push(format!(
            "| {routes} | {minutes} | {} | {:.1} | {:.1} | {:.0} |",
            r["requests_per_route_minute"],
            mib("rss_growth_bytes"),
            mib("rss_growth_with_rollups_bytes"),
            r["store_heap_bytes"].as_f64()? / (routes * minutes)
        ));
    }
    out.extend(budget_line);
    Some(out.join("\n"))
}

fn restart_memory_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("restart_memory.json")?;
    let r = rows.first()?;
    let mib = |k: &str| r[k].as_f64().unwrap_or(0.0) / 1_048_576.0;
    let mut out = header(
        machine,
        "sudo cargo run -p lumen-bench --release --bin restart_memory",
    );
    out.push(format!(
        "The release sidecar in a memory cgroup of the kit's {:.0} MiB, its state on a {:.0} MiB tmpfs charged to that cgroup, fed a production day ({} routes, {} requests, lognormal σ 1) over HTTP, stopped with SIGTERM and started again, then a 24 h evaluation and a checkpoint. The store's budget the sidecar set itself: {}.",
        mib("limit_bytes"),
        mib("volume_bytes"),
        r["routes"],
        r["requests"],
        r["budget_log"]
            .as_str()
            .and_then(|l| l.split("cap_mib=").nth(1))
            .map_or("?".to_owned(), |m| format!("{} MiB", m.trim()))
    ));
    out.push(String::new());
    out.push("| run | peak RSS, MiB | state files, MiB | peak RSS + files, share of the limit | cgroup peak (RSS, cache, tmpfs), MiB |".to_owned());
    out.push("| --- | ---: | ---: | ---: | ---: |".to_owned());
    let limit = mib("limit_bytes");
    out.push(format!(
        "| filled with the day | {:.1} | {:.1} | {:.1} % | {:.1} |",
        mib("fill_peak_rss_bytes"),
        mib("state_files_at_stop_bytes"),
        100.0 * (mib("fill_peak_rss_bytes") + mib("state_files_at_stop_bytes")) / limit,
        mib("fill_cgroup_peak_bytes"),
    ));
    out.push(format!(
        "| restarted with the day | {:.1} | {:.1} | {:.1} % (target: at most 60 %) | {:.1} |",
        mib("restart_peak_rss_bytes"),
        mib("state_files_bytes"),
        100.0 * r["share_of_limit"].as_f64()?,
        mib("restart_cgroup_peak_bytes"),
    ));
    Some(out.join("\n"))
}

fn ingest_under_load_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("ingest_under_load.json")?;
    let r = rows.first()?;
    let ms = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let mut out = header(
        machine,
        "cargo run -p lumen-bench --release --bin ingest_under_load",
    );
    out.push(format!(
        "{} small batches posted one after another to the release sidecar, alone and while two peers post batches at the inflate budget ({} MiB of histograms each; {} of them during the run).",
        r["samples"],
        r["expensive_inflated_bytes"].as_u64()? >> 20,
        r["expensive_batches"]
    ));
    out.push(String::new());
    out.push("| small batches | median answer, ms | 99th percentile, ms |".to_owned());
    out.push("| --- | ---: | ---: |".to_owned());
    out.push(format!(
        "| alone | {:.2} | {:.2} |",
        ms("quiet_median_ms"),
        ms("quiet_p99_ms")
    ));
    out.push(format!(
        "| beside the expensive peers | {:.2} | {:.2} |",
        ms("loaded_median_ms"),
        ms("loaded_p99_ms")
    ));
    Some(out.join("\n"))
}

fn read_rows(file: &str) -> Option<Vec<serde_json::Value>> {
    let path = figures_path(file);
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn header(machine: &Machine, command: &str) -> Vec<String> {
    vec![
        format!("Measured {} on {}.", today(), machine.line()),
        String::new(),
        format!("Command: `{command}`, then `cargo run -p lumen-bench --release --bin results`."),
        String::new(),
    ]
}

fn accuracy_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("accuracy.json")?;
    let mut out = header(machine, "cargo run -p lumen-bench --release --bin accuracy");
    out.push(
        "Relative error against the exact nearest-rank quantile of the same 1,000,000 values."
            .to_owned(),
    );
    out.push(String::new());
    out.push("| distribution | quantile | exact, ms | Lumen | Prometheus classic buckets | OpenTelemetry explicit buckets | OpenTelemetry exponential, 160 buckets |".to_owned());
    out.push("| --- | --- | ---: | ---: | ---: | ---: | ---: |".to_owned());
    let mut worst_lumen = 0.0_f64;
    for r in rows {
        let err = |k: &str| r[k]["relative_error"].as_f64().unwrap_or(f64::NAN) * 100.0;
        worst_lumen = worst_lumen.max(err("lumen"));
        out.push(format!(
            "| {} | P{} | {:.3} | {:.4} % | {:.2} % | {:.2} % | {:.3} % |",
            r["distribution"].as_str()?,
            r["quantile"].as_f64()? * 100.0,
            r["exact_ms"].as_f64()?,
            err("lumen"),
            err("prometheus_classic"),
            err("otel_explicit"),
            err("otel_exponential_160"),
        ));
    }
    out.push(String::new());
    out.push(format!(
        "Largest Lumen error: {worst_lumen:.4} % (target ≤ 0.1 %)."
    ));
    Some(out.join("\n"))
}

fn wire_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("wire_cost.json")?;
    let mut out = header(
        machine,
        "cargo run -p lumen-bench --release --bin wire_cost",
    );
    out.push("| requests in the interval | bytes per route (series JSON) | of which histogram (base64) | distinct latency buckets |".to_owned());
    out.push("| ---: | ---: | ---: | ---: |".to_owned());
    for r in rows {
        out.push(format!(
            "| {} | {} | {} | {} |",
            r["requests"], r["series_bytes"], r["histogram_base64_bytes"], r["distinct_buckets"]
        ));
    }
    Some(out.join("\n"))
}

fn throughput_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("throughput.json")?;
    let first = rows.first()?;
    let mut out = header(
        machine,
        "cargo run -p lumen-bench --release --features peers --bin throughput",
    );
    out.push(format!(
        "{} interleaved rounds of {} s per server, {} keep-alive connections, medians over rounds.",
        first["rounds"], first["seconds"], first["connections"]
    ));
    out.push(String::new());
    out.push("| server | requests per second | ratio to bare | P99 latency, µs |".to_owned());
    out.push("| --- | ---: | ---: | ---: |".to_owned());
    for r in rows {
        out.push(format!(
            "| {} | {:.0} | {:.3} | {:.0} |",
            r["variant"].as_str()?,
            r["median_rps"].as_f64()?,
            r["ratio_to_bare"].as_f64()?,
            r["median_p99_us"].as_f64()?
        ));
    }
    Some(out.join("\n"))
}

/// The real-use shape: the interleaved rounds (the headline), the
/// instruction counts and criterion's medians.
fn router_section(machine: &Machine) -> Option<String> {
    let mut out = header(
        machine,
        "cargo run -p lumen-bench --release --features peers --bin router_rounds",
    );
    out.extend(router_rounds_table()?);
    if let Some(table) = router_instructions_table() {
        out.push(String::new());
        out.extend(table);
    }
    if let (Some(one), Some(two)) = (
        criterion_median_ns("record_path", "1_thread"),
        criterion_median_ns("record_path", "2_threads"),
    ) {
        out.push(String::new());
        out.push(format!("The recording call alone (`cargo bench -p lumen-bench --bench record_path`: `Recorder::record_request`, the route's lookup, the status class, the histogram index and the adds on the thread's own stripe): {one:.1} ns on 1 thread, {two:.1} ns per thread on 2 ({:.2}×).", two / one));
    }
    if let Some(table) = router_criterion_table() {
        out.push(String::new());
        out.extend(table);
    }
    Some(out.join("\n"))
}

/// Criterion's sequential table (`router_overhead`).
fn router_criterion_table() -> Option<Vec<String>> {
    use lumen_bench::router_shape::ROUTER_CASES;
    let median =
        |threads: &str, id: &str| criterion_median_ns(&format!("router_overhead_{threads}"), id);
    let mut out = vec![
        "Sequential (`cargo bench -p lumen-bench --features peers --bench router_overhead`: criterion, each variant measured after the other, so drift between them is not cancelled):".to_owned(),
        String::new(),
        "| layer | 1 thread, ns/request | added over bare | over pass-through | 2 threads, ns/request per thread | added over bare | over pass-through | added ÷ Lumen's with labels (1 thread) |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let (bare1, bare2) = (median("1_thread", "bare")?, median("2_threads", "bare")?);
    let (pass1, pass2) = (
        median("1_thread", "pass_through")?,
        median("2_threads", "pass_through")?,
    );
    let lumen1 = median("1_thread", "lumen_matched_path")? - bare1;
    for (id, name) in ROUTER_CASES {
        let (t1, t2) = (median("1_thread", id)?, median("2_threads", id)?);
        let cell = |v: f64| {
            if id == "bare" {
                String::new()
            } else {
                format!("{v:.0}")
            }
        };
        let over_pass = |v: f64| {
            if id == "bare" || id == "pass_through" {
                String::new()
            } else {
                format!("{v:.0}")
            }
        };
        out.push(format!(
            "| {name} | {t1:.0} | {} | {} | {t2:.0} | {} | {} | {} |",
            cell(t1 - bare1),
            over_pass(t1 - pass1),
            cell(t2 - bare2),
            over_pass(t2 - pass2),
            if id == "bare" {
                String::new()
            } else {
                format!("{:.1}×", (t1 - bare1) / lumen1)
            },
        ));
    }
    Some(out)
}

/// The interleaved rounds' table (`router_rounds.json`), the headline.
fn router_rounds_table() -> Option<Vec<String>> {
    use lumen_bench::router_shape::ROUTER_CASES;
    let rows = read_rows("router_rounds.json")?;
    let rounds = rows.first()?["rounds_ns"].as_array()?.len();
    let calls = thousands(rows.first()?["calls"].as_u64()?);
    let mut out = vec![
        format!("Interleaved ({rounds} rounds of {calls} calls per variant and thread, the order rotated each round): the median round, and what a layer adds as the median of the rounds' paired differences (each round against the same round's bare router or pass-through layer, so drift between rounds cancels); the last columns divide a layer's addition (1 thread) by Lumen's:"),
        String::new(),
        "| layer | 1 thread, ns/request | added over bare | over pass-through | 2 threads, ns/request per thread | added over bare | over pass-through | slowest ÷ fastest round (1 thread) | ÷ Lumen with labels | ÷ Lumen around the Router |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let get = |threads: u64, id: &str| {
        rows.iter()
            .find(|r| r["threads"] == threads && r["variant"] == id)
            .cloned()
    };
    let m = |threads: u64, id: &str, key: &str| get(threads, id).and_then(|r| r[key].as_f64());
    let labelled = m(1, "lumen_matched_path", "added_ns")?;
    let around = m(1, "lumen_outside", "added_ns")?;
    for (id, name) in ROUTER_CASES {
        let (t1, t2) = (m(1, id, "median_ns")?, m(2, id, "median_ns")?);
        let spread = get(1, id)
            .and_then(|r| {
                let v: Vec<f64> = r["rounds_ns"]
                    .as_array()?
                    .iter()
                    .filter_map(serde_json::Value::as_f64)
                    .collect();
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(0.0, f64::max);
                Some(hi / lo)
            })
            .unwrap_or(f64::NAN);
        let over = |threads: u64, key: &str, skip: &[&str]| {
            if skip.contains(&id) {
                String::new()
            } else {
                m(threads, id, key).map_or(String::new(), |v| format!("{v:.0}"))
            }
        };
        let ratio = |of: f64| {
            if id == "bare" {
                String::new()
            } else {
                m(1, id, "added_ns").map_or(String::new(), |v| format!("{:.1}×", v / of))
            }
        };
        out.push(format!(
            "| {name} | {t1:.0} | {} | {} | {t2:.0} | {} | {} | {spread:.2} | {} | {} |",
            over(1, "added_ns", &["bare"]),
            over(1, "over_pass_ns", &["bare", "pass_through"]),
            over(2, "added_ns", &["bare"]),
            over(2, "over_pass_ns", &["bare", "pass_through"]),
            ratio(labelled),
            ratio(around),
        ));
    }
    Some(out)
}

/// `n` with a comma between groups of three digits: 25,000.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The instruction counts' table (`router_instructions.json`).
fn router_instructions_table() -> Option<Vec<String>> {
    use lumen_bench::router_shape::ROUTER_CASES;
    let rows = read_rows("router_instructions.json")?;
    let of = |id: &str, key: &str| {
        rows.iter()
            .find(|r| r["variant"] == id)
            .and_then(|r| r[key].as_f64())
    };
    let around = of("lumen_outside", "added")?;
    let mut out = vec![
        "Instructions (`cargo run -p lumen-bench --release --features peers --bin router_instructions`: each variant under valgrind's callgrind, one thread, the instructions executed per request, from the difference between 11,000 and 1,000 requests; exact and repeatable, though not time: a locked add or a cache miss costs more than an add):".to_owned(),
        String::new(),
        "| layer | instructions/request | added over bare | over pass-through | added ÷ Lumen around the Router's |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    for (id, name) in ROUTER_CASES {
        let cell = |key: &str, skip: &[&str]| {
            if skip.contains(&id) {
                String::new()
            } else {
                of(id, key).map_or(String::new(), |v| format!("{v:.0}"))
            }
        };
        out.push(format!(
            "| {name} | {} | {} | {} | {} |",
            cell("instructions", &[]),
            cell("added", &["bare"]),
            cell("over_pass", &["bare", "pass_through"]),
            if id == "bare" {
                String::new()
            } else {
                of(id, "added").map_or(String::new(), |v| format!("{:.1}×", v / around))
            }
        ));
    }
    Some(out)
}

fn fleet_store_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("fleet_store.json")?;
    let mut out = header(
        machine,
        "cargo run -p lumen-bench --release --bin fleet_store",
    );
    out.push("| load | sidecars × routes | requests per route-minute, σ | Redis memory, MiB | minutes / 10-min / hour values, MiB | 1 h window, ms (target < 200) | 24 h window, ms (target < 2,000) |".to_owned());
    out.push("| --- | --- | --- | ---: | --- | ---: | ---: |".to_owned());
    for r in rows {
        let mib = |tier: &str| {
            r["value_bytes_by_tier"][tier]["bytes"]
                .as_f64()
                .unwrap_or(0.0)
                / 1_048_576.0
        };
        let read = |w: &str| {
            r["reads"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["window"] == w))
                .and_then(|x| x["median_ms"].as_f64())
                .unwrap_or(f64::NAN)
        };
        out.push(format!(
            "| {} | {} × {} | {}, {} | {:.1} | {:.1} / {:.1} / {:.1} | {:.0} | {:.0} |",
            r["load"].as_str()?,
            r["instances"],
            r["routes"],
            r["requests_per_route_minute"],
            r["sigma"],
            r["redis_used_memory_bytes"].as_f64()? / 1_048_576.0,
            mib("m"),
            mib("t"),
            mib("h"),
            read("1h"),
            read("24h"),
        ));
    }
    Some(out.join("\n"))
}

fn fleet_churn_section(machine: &Machine) -> Option<String> {
    let rows = read_rows("fleet_churn.json")?;
    let mut out = header(
        machine,
        "cargo run -p lumen-bench --release --bin fleet_churn",
    );
    out.push("| instance lifetimes in the day (alive at once) | Redis memory, MiB: as written → compacted (target ≤ 64) | 1 h window, ms: as written → compacted (target ≤ 200) | 24 h window, ms: as written → compacted (target ≤ 1,000) | instances in 24 h | compaction: blocks, fields, s |".to_owned());
    out.push("| ---: | ---: | ---: | ---: | ---: | ---: |".to_owned());
    for r in rows {
        let ms = |reads: &serde_json::Value, w: &str| {
            reads
                .as_array()
                .and_then(|a| a.iter().find(|x| x["window"] == w))
                .and_then(|x| x["median_ms"].as_f64())
                .unwrap_or(f64::NAN)
        };
        let c = &r["compacted"];
        let instances = r["reads"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["window"] == "24h"))
            .map(|x| x["instances_read"].to_string())
            .unwrap_or_default();
        out.push(format!(
            "| {} ({}) | {:.1} → {:.1} | {:.0} → {:.0} | {:.0} → {:.0} | {} | {}, {}, {:.1} |",
            r["lifetimes"],
            r["alive_at_once"],
            r["redis_used_memory_bytes"].as_f64()? / 1_048_576.0,
            c["redis_used_memory_bytes"].as_f64()? / 1_048_576.0,
            ms(&r["reads"], "1h"),
            ms(&c["reads"], "1h"),
            ms(&r["reads"], "24h"),
            ms(&c["reads"], "24h"),
            instances,
            c["blocks"],
            c["fields"],
            c["compaction_ms"].as_f64()? / 1000.0,
        ));
    }
    Some(out.join("\n"))
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn tuning_section(machine: &Machine) -> Option<String> {
    let read = criterion_median_ns("tuning_channel", "tuning read (ttl_or)")?;
    let record = criterion_median_ns("tuning_channel", "cache record (hit_miss only)")
        .or_else(|| criterion_median_ns("tuning_channel", "cache record (hit/miss only)"))?;
    let keyed = criterion_median_ns("tuning_channel", "cache record_key (1 % of keys sampled)")?;
    let tier = criterion_median_ns("tuning_channel", "cache record_tier");
    let assign = criterion_median_ns("tuning_channel", "experiment assign (by key)");
    let optional =
        |name: &str, ns: Option<f64>| ns.map(|ns| format!("| {name} | {ns:.1} | {ns:.0} % |"));
    Some(
        [
            format!("Measured {} on {}.", today(), machine.line()),
            String::new(),
            "Command: `cargo bench -p lumen-bench --bench tuning_channel`, then `cargo run -p lumen-bench --release --bin results`.".to_owned(),
            String::new(),
            "| call on the request path | ns | share of the 100 ns layer budget (#17) |".to_owned(),
            "| --- | ---: | ---: |".to_owned(),
            format!("| `tuning().cache(..)` handle: `ttl_or` (one relaxed load) | {read:.2} | {:.1} % |", read),
            format!("| `CacheReport::record` (hit or miss) | {record:.1} | {:.0} % |", record),
            format!(
                "| `CacheReport::record_key` (count + SHARDS sampling test, 1 % of keys stored) | {keyed:.1} | {:.0} % |",
                keyed
            ),
        ]
        .into_iter()
        .chain(optional(
            "`CacheReport::record_tier` (one tier's lookup timed)",
            tier,
        ))
        .chain(optional(
            "`TunedParam::assign` by key (an experiment's arm and its value)",
            assign,
        ))
        .chain([
            String::new(),
            format!(
                "Sampling a key for the miss-ratio curve adds {:.1} ns to the cache count it extends.",
                keyed - record
            ),
        ])
        .collect::<Vec<_>>()
        .join("\n"),
    )
}

fn main() {
    let machine = Machine::here();
    let path = workspace_root().join("bench").join("RESULTS.md");
    let mut doc =
        std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".to_owned());
    match overhead_section(&machine) {
        Some(section) => {
            println!("{section}\n");
            doc = replace_section(&doc, "overhead", &section);
        }
        None => {
            eprintln!("no request_overhead figures under target/criterion: run the bench first")
        }
    }
    type Section = fn(&Machine) -> Option<String>;
    let sections: [(&str, Section, &str); 11] = [
        ("tuning", tuning_section, "tuning_channel"),
        ("router", router_section, "router_rounds"),
        ("throughput", throughput_section, "throughput"),
        ("accuracy", accuracy_section, "accuracy"),
        ("sidecar", sidecar_section, "sidecar_scale"),
        ("memory", memory_section, "store_memory"),
        ("restart_memory", restart_memory_section, "restart_memory"),
        (
            "ingest_under_load",
            ingest_under_load_section,
            "ingest_under_load",
        ),
        ("wire", wire_section, "wire_cost"),
        ("fleet_store", fleet_store_section, "fleet_store"),
        ("fleet_churn", fleet_churn_section, "fleet_churn"),
    ];
    for (name, section, source) in sections {
        match section(&machine) {
            Some(text) => {
                println!("{text}\n");
                doc = replace_section(&doc, name, &text);
            }
            None => eprintln!("no {source} figures yet: run it first"),
        }
    }
    std::fs::write(&path, doc).expect("bench/RESULTS.md is writable");
    println!("wrote {}", path.display());
}
