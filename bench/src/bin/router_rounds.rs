//! The router-shape variants ([`lumen_bench::router_shape`]) measured
//! interleaved, as machine noise drifts: 7 rounds, each running every
//! variant for 200,000 calls per thread, on 1 and then 2 threads; the
//! median round of each. Run:
//! `cargo run -p lumen-bench --release --features peers --bin router_rounds`;
//! it writes `target/lumen-bench/router_rounds.json` for the `results` bin.

use lumen_bench::router_shape::{run, variants};
use lumen_bench::workspace_root;

const ROUNDS: usize = 7;
const CALLS: u64 = 200_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (variants, upkeep) = variants();
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
        for ((name, _), mut ns) in variants.iter().zip(per_variant) {
            ns.sort_by(f64::total_cmp);
            let row = serde_json::json!({
                "threads": threads,
                "variant": name,
                "median_ns": ns[ns.len() / 2],
                "rounds_ns": ns,
            });
            eprintln!("{row}");
            rows.push(row);
        }
    }
    let dir = workspace_root().join("target").join("lumen-bench");
    std::fs::create_dir_all(&dir).expect("target dir");
    std::fs::write(
        dir.join("router_rounds.json"),
        serde_json::Value::from(rows).to_string(),
    )
    .expect("written");
}
