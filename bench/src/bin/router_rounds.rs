//! The router-shape variants ([`lumen_bench::router_shape`]) measured
//! interleaved, as machine noise drifts: 120 short rounds (a few
//! milliseconds each, so a round's variants see the same machine), each
//! running every variant for 25,000 calls per thread, on 1 and then 2
//! threads; the
//! median round of each, and what a variant adds over the bare router (and
//! over the pass-through layer) as the median of the rounds' paired
//! differences (each round's variant against the same round's bare router:
//! drift between rounds cancels). Run:
//! `cargo run -p lumen-bench --release --features peers --bin router_rounds`;
//! it writes `target/lumen-bench/router_rounds.json` for the `results` bin.
//! `LUMEN_BENCH_ONLY=NAME` runs that variant with the bare router and the
//! pass-through layer only, for a profiler (`perf record`).

use lumen_bench::router_shape::{run, variants};
use lumen_bench::write_figures;

const ROUNDS: usize = 120;
const CALLS: u64 = 25_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (mut variants, upkeep) = variants();
    // For profiling one variant alone (`perf record`): its name here.
    if let Ok(only) = std::env::var("LUMEN_BENCH_ONLY") {
        variants.retain(|(name, _)| *name == only || *name == "bare" || *name == "pass_through");
    }
    let mut rows = Vec::new();
    for threads in [1_usize, 2] {
        let mut per_variant: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for round in 0..ROUNDS {
            // Rotate the order so no variant always runs first.
            for k in 0..variants.len() {
                let i = (k + round) % variants.len();
                let t = run(&variants[i].1, threads, CALLS);
                upkeep();
                per_variant[i].push(t.as_nanos() as f64 / CALLS as f64);
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let paired =
            |of: &[f64], base: &[f64]| median(of.iter().zip(base).map(|(a, b)| a - b).collect());
        let index = |id: &str| {
            variants
                .iter()
                .position(|(name, _)| *name == id)
                .expect("a variant of that name")
        };
        let (bare, pass) = (
            per_variant[index("bare")].clone(),
            per_variant[index("pass_through")].clone(),
        );
        for ((name, _), ns) in variants.iter().zip(per_variant) {
            let row = serde_json::json!({
                "threads": threads,
                "calls": CALLS,
                "variant": name,
                "median_ns": median(ns.clone()),
                "added_ns": paired(&ns, &bare),
                "over_pass_ns": paired(&ns, &pass),
                "rounds_ns": ns,
            });
            eprintln!("{row}");
            rows.push(row);
        }
    }
    write_figures("router_rounds.json", &serde_json::Value::from(rows));
}
