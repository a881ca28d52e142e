//! The router-shape variants ([`lumen_bench::router_shape`]) counted in
//! instructions instead of nanoseconds: each variant runs in a child
//! process under valgrind's callgrind, which counts the instructions
//! executed inside `call_once` (one request: built, served, body drained),
//! once for 1,000 and once for 11,000 requests on one thread; the
//! difference over 10,000 is the instructions per request, free of the
//! set-up and of the machine's timing noise. Instructions are not time (an
//! atomic add or a cache miss costs more than an add), but they are exact
//! and repeatable: what a change to the request path adds or removes.
//!
//! Run: `cargo run -p lumen-bench --release --features peers --bin
//! router_instructions` (needs `valgrind`: Debian's `valgrind` package); it
//! writes `target/lumen-bench/router_instructions.json` for the `results` bin.

use std::process::Command;

use lumen_bench::router_shape::{ROUTER_CASES, run, variants};
use lumen_bench::write_figures;

/// The child's variable: `NAME:REQUESTS`.
const CHILD: &str = "LUMEN_BENCH_INSTRUCTIONS_CHILD";
const FEW: u64 = 1_000;
const MANY: u64 = 11_000;

fn main() {
    if let Ok(child) = std::env::var(CHILD) {
        let (name, requests) = child.split_once(':').expect("NAME:REQUESTS");
        serve(name, requests.parse().expect("a request count"));
        return;
    }
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|o| o.status.success()) {
        eprintln!("router_instructions: valgrind is not installed (apt-get install valgrind)");
        std::process::exit(2);
    }
    let me = std::env::current_exe().expect("this program's path");
    let count = |name: &str, requests: u64| -> u64 {
        let out = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--toggle-collect=lumen_bench::router_shape::call_once*",
                "--callgrind-out-file=/dev/null",
            ])
            .arg(&me)
            .env(CHILD, format!("{name}:{requests}"))
            .output()
            .expect("valgrind runs");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} under valgrind failed:\n{log}");
        // "==PID== Collected : 84052131"
        log.lines()
            .find_map(|l| {
                l.split_once("Collected :")
                    .map(|(_, n)| n.trim().to_owned())
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no instruction count in valgrind's output:\n{log}"))
    };
    let per_request: Vec<(&str, f64)> = ROUTER_CASES
        .iter()
        .map(|(name, _)| {
            let (few, many) = (count(name, FEW), count(name, MANY));
            (*name, (many - few) as f64 / (MANY - FEW) as f64)
        })
        .collect();
    let of = |id: &str| {
        per_request
            .iter()
            .find(|(name, _)| *name == id)
            .map(|(_, n)| *n)
            .expect("a variant of that name")
    };
    let (bare, pass) = (of("bare"), of("pass_through"));
    let rows: Vec<serde_json::Value> = per_request
        .iter()
        .map(|(name, n)| {
            let row = serde_json::json!({
                "variant": name,
                "instructions": n,
                "added": n - bare,
                "over_pass": n - pass,
            });
            eprintln!("{row}");
            row
        })
        .collect();
    write_figures("router_instructions.json", &serde_json::Value::from(rows));
}

/// Serves `requests` requests through variant `name` on one thread.
fn serve(name: &str, requests: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (variants, _upkeep) = variants();
    let (_, shape) = variants
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a variant of that name");
    run(shape, 1, requests);
}
