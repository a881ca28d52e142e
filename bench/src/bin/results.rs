//! Prints the benches' figures with their ratios and rewrites the matching
//! tables of `bench/RESULTS.md`. Run after the benches:
//! `cargo run -p lumen-bench --release --bin results`.

use lumen_bench::{Machine, criterion_median_ns, replace_section, workspace_root};

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

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
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
    std::fs::write(&path, doc).expect("bench/RESULTS.md is writable");
    println!("wrote {}", path.display());
}
