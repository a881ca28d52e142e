//! SLOs as code: `slo export --format openslo` writes documents the
//! OpenSLO v1 specification accepts (checked here against the rules its
//! README states), `slo import` reads them back into settings, and export
//! → import → export is identical; what Lumen cannot evaluate is refused
//! with the document and the field.

use std::collections::BTreeSet;
use std::process::Command;

use lumen_tests::{binary, workspace_root};
use serde::Deserialize;
use serde_yaml::Value;

fn lumen(args: &[&str], config: Option<&std::path::Path>) -> (i32, String, String) {
    let mut cmd = Command::new(binary("lumen-sidecar"));
    cmd.args(args)
        .env_remove("LUMEN_CONFIG")
        .env_remove("LUMEN_SERVICE");
    if let Some(c) = config {
        cmd.env("LUMEN_CONFIG", c);
    }
    let out = cmd.output().expect("lumen-sidecar runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// OpenSLO's `duration-shorthand`: a positive integer and one of
/// m h d w M Q Y (README, "Custom Data Types").
fn is_duration(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && n.parse::<u64>().is_ok_and(|n| n > 0)
        && ["m", "h", "d", "w", "M", "Q", "Y"].contains(&unit)
}

/// RFC 1123 labels, as `metadata.name` must be (README, "General Schema").
fn is_name(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn description_ok(spec: &Value) -> bool {
    spec.get("description")
        .is_none_or(|d| d.as_str().is_some_and(|d| d.chars().count() <= 1050))
}

fn metric_source_ok(m: &Value) -> bool {
    let s = &m["metricSource"];
    s.is_mapping()
        && s.get("spec").is_some()
        && (s.get("type").is_some() || s.get("metricSourceRef").is_some())
}

/// The violations of the OpenSLO v1 rules in `doc`.
fn violations(doc: &Value, known_policies: &BTreeSet<String>) -> Vec<String> {
    let mut v = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            v.push(what.to_owned());
        }
    };
    check(
        doc["apiVersion"] == "openslo/v1",
        "apiVersion is openslo/v1",
    );
    let kinds = [
        "DataSource",
        "SLO",
        "SLI",
        "AlertPolicy",
        "AlertCondition",
        "AlertNotificationTarget",
        "Service",
    ];
    check(
        doc["kind"].as_str().is_some_and(|k| kinds.contains(&k)),
        "kind is one of the seven",
    );
    check(
        is_name(&doc["metadata"]["name"]),
        "metadata.name is an RFC 1123 label",
    );
    let spec = &doc["spec"];
    check(spec.is_mapping(), "spec is a mapping");
    check(description_ok(spec), "description at most 1050 characters");
    match doc["kind"].as_str() {
        Some("SLO") => {
            check(spec["service"].is_string(), "SLO: service");
            let (inline, by_ref) = (
                spec.get("indicator").is_some(),
                spec.get("indicatorRef").is_some(),
            );
            check(inline != by_ref, "SLO: indicator or indicatorRef");
            let windows = spec["timeWindow"].as_sequence();
            check(
                windows.is_some_and(|w| w.len() == 1),
                "SLO: exactly one timeWindow",
            );
            if let Some(w) = windows.and_then(|w| w.first()) {
                check(
                    is_duration(&w["duration"]),
                    "SLO: timeWindow duration shorthand",
                );
                let rolling = w["isRolling"].as_bool();
                check(
                    rolling == Some(true)
                        || (w["calendar"]["startTime"].is_string()
                            && w["calendar"]["timeZone"].is_string()),
                    "SLO: a rolling or calendar-aligned window",
                );
            }
            check(
                ["Occurrences", "Timeslices", "RatioTimeslices"]
                    .contains(&spec["budgetingMethod"].as_str().unwrap_or("")),
                "SLO: budgetingMethod enum",
            );
            let objectives = spec["objectives"].as_sequence();
            check(
                objectives.is_some_and(|o| !o.is_empty()),
                "SLO: objectives required",
            );
            for o in objectives.into_iter().flatten() {
                let target = o["target"].as_f64().map(|t| (0.0..1.0).contains(&t));
                let percent = o["targetPercent"]
                    .as_f64()
                    .map(|t| (0.0..100.0).contains(&t));
                check(
                    matches!((target, percent), (Some(true), None) | (None, Some(true))),
                    "objective: target [0, 1) or targetPercent [0, 100)",
                );
            }
            let sli = &spec["indicator"]["spec"];
            check(
                is_name(&spec["indicator"]["metadata"]["name"]),
                "SLI: metadata.name",
            );
            let ratio = &sli["ratioMetric"];
            check(
                ratio.is_mapping() != sli["thresholdMetric"].is_mapping(),
                "SLI: ratioMetric or thresholdMetric",
            );
            if ratio.is_mapping() {
                check(
                    ratio["counter"].is_bool(),
                    "ratioMetric: counter is a boolean",
                );
                check(
                    ratio.get("good").is_some() != ratio.get("bad").is_some(),
                    "ratioMetric: good or bad",
                );
                check(ratio.get("total").is_some(), "ratioMetric: total");
                for part in ["good", "bad", "total"] {
                    if let Some(m) = ratio.get(part) {
                        check(
                            metric_source_ok(m),
                            "ratioMetric: metricSource with type and spec",
                        );
                    }
                }
            }
            for p in spec["alertPolicies"].as_sequence().into_iter().flatten() {
                check(
                    p["alertPolicyRef"]
                        .as_str()
                        .is_some_and(|r| known_policies.contains(r)),
                    "SLO: alertPolicyRef names an AlertPolicy of the stream",
                );
            }
        }
        Some("AlertPolicy") => {
            for field in ["alertWhenBreaching", "alertWhenResolved", "alertWhenNoData"] {
                check(spec[field].is_bool(), "AlertPolicy: the three booleans");
            }
            let conditions = spec["conditions"].as_sequence();
            check(
                conditions.is_some_and(|c| c.len() == 1),
                "AlertPolicy: exactly one condition",
            );
            for c in conditions.into_iter().flatten() {
                check(
                    c["kind"] == "AlertCondition" && is_name(&c["metadata"]["name"]),
                    "condition: inline AlertCondition",
                );
                check(c["spec"]["severity"].is_string(), "condition: severity");
                let cond = &c["spec"]["condition"];
                check(cond["kind"] == "burnrate", "condition: kind burnrate");
                check(
                    ["lte", "gte", "lt", "gt"].contains(&cond["op"].as_str().unwrap_or("")),
                    "condition: op enum",
                );
                check(
                    cond["threshold"].is_f64() || cond["threshold"].is_u64(),
                    "condition: threshold number",
                );
                check(
                    is_duration(&cond["lookbackWindow"]),
                    "condition: lookbackWindow shorthand",
                );
                check(
                    cond.get("alertAfter")
                        .is_none_or(|a| a == "0m" || is_duration(a)),
                    "condition: alertAfter",
                );
            }
            let targets = spec["notificationTargets"].as_sequence();
            check(
                targets.is_some_and(|t| !t.is_empty()),
                "AlertPolicy: notificationTargets required",
            );
            for t in targets.into_iter().flatten() {
                check(
                    t.get("targetRef").is_some()
                        || (t["kind"] == "AlertNotificationTarget"
                            && t["spec"]["target"].is_string()),
                    "notification target: targetRef or inline target",
                );
            }
        }
        Some("Service") => {}
        other => v.push(format!("unexpected kind {other:?}")),
    }
    v
}

fn documents(stream: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .collect()
}

#[test]
fn exported_documents_follow_the_openslo_v1_spec_and_round_trip() {
    let dir = workspace_root().join("target/openslo-test");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("lumen.toml");
    std::fs::write(
        &config,
        "service = \"Checkout API\"\n[slo]\navailability = 99.9\nlatency_p95_ms = 150\nlatency_p99_ms = 900\nerror_rate = 2.5\nerror_classes = [\"5xx\"]\n[budget]\nperiod = \"month\"\n",
    )
    .expect("config");
    let (code, first, err) = lumen(&["slo", "export", "--format", "openslo"], Some(&config));
    assert_eq!(code, 0, "{err}");
    let docs = documents(&first);
    let policies: BTreeSet<String> = docs
        .iter()
        .filter(|d| d["kind"] == "AlertPolicy")
        .map(|d| d["metadata"]["name"].as_str().expect("a name").to_owned())
        .collect();
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "SLO").count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(policies.len(), 4, "a policy per burn-rate row");
    for d in &docs {
        let bad = violations(d, &policies);
        assert!(
            bad.is_empty(),
            "{}: {bad:?}",
            d["metadata"]["name"].as_str().unwrap_or("?")
        );
    }
    let availability = docs
        .iter()
        .find(|d| d["metadata"]["annotations"]["lumen.dev/slo"] == "availability")
        .expect("the availability SLO");
    assert_eq!(
        availability["spec"]["objectives"][0]["target"].as_f64(),
        Some(0.999)
    );
    assert_eq!(availability["spec"]["timeWindow"][0]["duration"], "1M");
    assert_eq!(availability["spec"]["service"], "checkout-api");
    let good = availability["spec"]["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]["spec"]["query"]
        .as_str()
        .expect("a query");
    assert!(
        good.contains("slo_name=\"availability\"") && good.contains("result=\"good\""),
        "{good}"
    );

    // Import writes the settings; exporting them gives the same documents.
    let exported = dir.join("slos.yaml");
    std::fs::write(&exported, &first).expect("write");
    let (code, toml, err) = lumen(&["slo", "import", exported.to_str().expect("utf-8")], None);
    assert_eq!(code, 0, "{err}");
    let imported = dir.join("imported.toml");
    std::fs::write(&imported, &toml).expect("write");
    let (code, second, err) = lumen(&["slo", "export", "--format", "openslo"], Some(&imported));
    assert_eq!(code, 0, "{err}\n{toml}");
    assert_eq!(
        first, second,
        "export → import → export differs; the import was:\n{toml}"
    );
    let (code, shown, err) = lumen(&["config", "show"], Some(&imported));
    assert_eq!(code, 0, "{err}");
    for line in [
        "availability = 99.9",
        "latency_p95_ms = 150",
        "error_rate = 2.5",
        "period = \"month\"",
    ] {
        assert!(shown.contains(line), "{line} not in\n{shown}");
    }
}

#[test]
fn what_lumen_cannot_evaluate_is_refused_by_document_and_field() {
    let dir = workspace_root().join("target/openslo-test");
    std::fs::create_dir_all(&dir).expect("dir");
    let slo = |extra: &str, window: &str, method: &str| {
        format!(
            "apiVersion: openslo/v1\nkind: Service\nmetadata:\n  name: api\nspec: {{}}\n---\napiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: api-latency\n{extra}spec:\n  service: api\n  budgetingMethod: {method}\n  timeWindow:\n  - {window}\n  indicator:\n    metadata:\n      name: latency\n    spec:\n      thresholdMetric:\n        metricSource:\n          type: Prometheus\n          spec:\n            query: histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))\n  objectives:\n  - op: lte\n    value: 0.25\n    target: 0.95\n"
        )
    };
    let run = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        lumen(&["slo", "import", path.to_str().expect("utf-8")], None)
    };
    // A latency threshold over Lumen's histogram is read: P95 < 250 ms.
    let (code, toml, err) = run(
        "threshold.yaml",
        &slo("", "duration: 28d\n    isRolling: true", "Occurrences"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        toml.contains("latency_p95_ms = 250") && toml.contains("period = \"28d\""),
        "{toml}"
    );
    // Each refusal names the document and the field, and exits 3.
    for (file, text, field) in [
        (
            "timeslices.yaml",
            slo("", "duration: 28d\n    isRolling: true", "Timeslices"),
            "spec.budgetingMethod",
        ),
        (
            "fortnight.yaml",
            slo("", "duration: 14d\n    isRolling: true", "Occurrences"),
            "spec.timeWindow[0].duration",
        ),
        (
            "berlin.yaml",
            slo(
                "",
                "duration: 1M\n    calendar:\n      startTime: 2024-01-01 00:00:00\n      timeZone: Europe/Berlin\n    isRolling: false",
                "Occurrences",
            ),
            "spec.timeWindow[0].calendar.timeZone",
        ),
        (
            "unknown.yaml",
            slo(
                "  annotations:\n    lumen.dev/slo: saturation\n",
                "duration: 30d\n    isRolling: true",
                "Occurrences",
            ),
            "metadata.annotations.lumen.dev/slo",
        ),
    ] {
        let (code, out, err) = run(file, &text);
        assert_eq!(code, 3, "{file}: {out}");
        assert!(
            err.contains("document 2 (api-latency)") && err.contains(field),
            "{file}: {err}"
        );
        assert!(
            out.is_empty(),
            "{file}: nothing is written on a refusal: {out}"
        );
    }
    let ratio = slo("", "duration: 30d\n    isRolling: true", "Occurrences").replace(
        "thresholdMetric:\n        metricSource:\n          type: Prometheus\n          spec:\n            query: histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))",
        "ratioMetric:\n        counter: true\n        good:\n          metricSource:\n            type: Datadog\n            spec:\n              query: sum:hits{ok}\n        total:\n          metricSource:\n            type: Datadog\n            spec:\n              query: sum:hits{*}",
    );
    let (code, _, err) = run("ratio.yaml", &ratio);
    assert_eq!(code, 3);
    assert!(
        err.contains("spec.indicator") && err.contains("lumen.dev/slo"),
        "{err}"
    );
    let (code, _, err) = run(
        "none.yaml",
        "apiVersion: openslo/v1\nkind: Service\nmetadata:\n  name: api\nspec: {}\n",
    );
    assert_eq!(code, 3);
    assert!(err.contains("no SLO document"), "{err}");
}
