use super::*;

#[test]
fn names_are_unique() {
    let mut names = service_metric_names();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "a metric is defined twice");
}

#[test]
fn counters_end_in_total_and_units_are_base_units() {
    for m in CATALOGUE {
        if m.kind == MetricKind::Counter {
            assert!(m.name.ends_with("_total"), "{} is a counter", m.name);
        }
        for word in m.name.split(['_', '.']) {
            assert!(
                !["ms", "us", "sec", "s", "milliseconds", "microseconds"].contains(&word),
                "{} is not in base units",
                m.name
            );
        }
        assert!(!m.help.is_empty(), "{} has no help", m.name);
    }
}

#[test]
fn the_seed_names_stay() {
    for name in [
        "maturity_score",
        "roi_percentage",
        "slo_compliance",
        "cache_hit_rate",
    ] {
        assert!(find(name).is_some(), "{name} is missing");
    }
}

#[test]
fn the_metrics_page_table_is_the_catalogue() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let readme = std::fs::read_to_string(path).expect("docs/ is beside the crate");
    let table = markdown_table();
    assert!(
        readme.contains(&table),
        "docs/metrics.md's table differs from the catalogue; replace it with:\n{table}"
    );
}
