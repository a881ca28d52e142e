//! The generated Prometheus rules judge the fleet, proven by `promtool test
//! rules` on synthetic series of several instances: a quiet instance whose
//! every request fails does not page (one instance's compliance is 0, the
//! fleet's is 100), a busy instance's failures do, at exact times.

use std::process::Command;

use lumen_tests::*;

const SERVICE: &str = "fleet-api";

/// A counter series of `instance` growing by `per_minute` from minute
/// `from` (absent before), for 40 minutes in all.
fn series(metric_labels: &str, instance: &str, from: u32, per_minute: u64) -> String {
    let values = if from == 0 {
        format!("0+{per_minute}x40")
    } else {
        format!("_x{from} 0+{per_minute}x{}", 40 - from)
    };
    format!(
        "      - series: '{{__name__=\"lumen_slo_events_total\",service_name=\"{SERVICE}\",instance=\"{instance}\",http_route=\"/ask\",{metric_labels}}}'\n        values: '{values}'\n"
    )
}

/// Good and bad events per minute of the four SLOs for one instance.
fn instance(name: &str, from: u32, per_slo: [(u64, u64); 4]) -> String {
    let slos = ["availability", "latency_p95", "latency_p99", "error_rate"];
    let mut o = String::new();
    for (slo, (good, bad)) in slos.iter().zip(per_slo) {
        for (result, n) in [("good", good), ("bad", bad)] {
            o.push_str(&series(
                &format!("slo_name=\"{slo}\",result=\"{result}\""),
                name,
                from,
                n,
            ));
        }
    }
    o
}

/// A cache lookup counter of one instance.
fn lookups(instance: &str, result: &str, per_minute: u64) -> String {
    format!(
        "      - series: 'lumen_cache_lookups_total{{service_name=\"{SERVICE}\",instance=\"{instance}\",http_route=\"/ask\",result=\"{result}\"}}'\n        values: '0+{per_minute}x40'\n"
    )
}

#[test]
fn the_rules_page_on_the_fleet_not_on_one_quiet_instance() {
    let out = run(Command::new(binary("lumen-sidecar"))
        .args(["alerts", "render", "--format", "prometheus"])
        .env_remove("LUMEN_CONFIG")
        .env("LUMEN_SERVICE", SERVICE)
        .env("LUMEN_WINDOW", "5m"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::env::temp_dir().join(format!("lumen-fleet-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("lumen.rules.yml"), &out.stdout).expect("rules");
    let rules = String::from_utf8_lossy(&out.stdout);
    // The annotations promtool compares, as the rule file words them.
    let description = |alert: &str| -> String {
        let at = rules
            .find(&format!("alert: {alert}\n"))
            .unwrap_or_else(|| panic!("no {alert}"));
        let line = rules[at..]
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("description: "))
            .expect("a description");
        serde_json::from_str::<String>(line).expect("quoted")
    };

    let mut input = String::new();
    // a: busy and healthy. b: one request a minute, every one bad in every
    // SLO (alone it meets none). c: from minute 10, 500 requests a minute,
    // 200 of them 5xx.
    input.push_str(&instance(
        "a",
        0,
        [(1000, 0), (980, 20), (995, 5), (1000, 0)],
    ));
    input.push_str(&instance("b", 0, [(0, 1), (0, 1), (0, 1), (0, 1)]));
    input.push_str(&instance(
        "c",
        10,
        [(300, 200), (500, 0), (500, 0), (300, 200)],
    ));
    // The cache: a hits 90 of 100, b none of 10: the fleet's rate is 90/110
    // (82 %), the mean of the instances' rates 45 %.
    input.push_str(&lookups("a", "hit", 90));
    input.push_str(&lookups("a", "miss", 10));
    input.push_str(&lookups("b", "hit", 0));
    input.push_str(&lookups("b", "miss", 10));

    let warning = |alert: &str, name: &str, value: &str| {
        format!(
            "          - exp_labels: {{severity: warning}}\n            exp_annotations:\n              summary: {}\n              description: {}\n",
            serde_json::to_string(&format!("{name} ({value})")).expect("json"),
            serde_json::to_string(&description(alert)).expect("json"),
        )
    };
    // The maturity the MaturityScorePoor alert holds against 50.
    // Three of six maturity metrics have data (availability, error rate,
    // hit rate): at 9 m all score 100; from c's 5xx on, availability and
    // error rate score 0, so the maturity is 100 / 3 and pages 10 min on.
    let maturity = {
        let at = rules.find("alert: MaturityScorePoor\n").expect("the alert");
        let line = rules[at..]
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("expr: "))
            .expect("an expr");
        let expr = serde_json::from_str::<String>(line).expect("quoted");
        expr.strip_suffix(" < 50")
            .expect("a threshold of 50")
            .to_owned()
    };
    let burn_alert = "          - exp_labels: {severity: page, slo_name: availability}\n            exp_annotations:\n              summary: \"Availability error budget burning at 14.4x over 1h and 5m\"\n";
    // Recording groups first: promtool otherwise orders groups at random,
    // and an alert reading a recorded series would lag it by a minute or not.
    let test = format!(
        "rule_files: [lumen.rules.yml]\nevaluation_interval: 1m\ngroup_eval_order: [lumen-slo-recording, lumen-slo-burn-recording, lumen-alerts, lumen-slo-burn-alerts]\ntests:\n  - interval: 1m\n    input_series:\n{input}    promql_expr_test:\n      - expr: lumen:slo_compliance:fleet\n        eval_time: 9m\n        exp_samples: [{{labels: 'lumen:slo_compliance:fleet', value: 100}}]\n      - expr: lumen:cache_hit_rate:fleet\n        eval_time: 9m\n        exp_samples: [{{labels: 'lumen:cache_hit_rate:fleet', value: {}}}]\n      - expr: {maturity_expr}\n        eval_time: 9m\n        exp_samples: [{{labels: '{{}}', value: 100}}]\n      - expr: {maturity_expr}\n        eval_time: 20m\n        exp_samples: [{{labels: '{{}}', value: {}}}]\n    alert_rule_test:\n      - {{eval_time: 20m, alertname: MaturityScorePoor}}\n      - eval_time: 21m\n        alertname: MaturityScorePoor\n        exp_alerts:\n{}\n      - {{eval_time: 9m, alertname: SloComplianceWarning}}\n      - {{eval_time: 13m, alertname: SloComplianceWarning}}\n      - eval_time: 14m\n        alertname: SloComplianceWarning\n        exp_alerts:\n{}      - {{eval_time: 30m, alertname: CacheHitRateLow}}\n      - {{eval_time: 17m, alertname: LumenBudgetBurn_availability_1h_5m}}\n      - eval_time: 18m\n        alertname: LumenBudgetBurn_availability_1h_5m\n        exp_alerts:\n{burn_alert}",
        100.0 * 90.0 / 110.0,
        100.0 / 3.0,
        warning(
            "MaturityScorePoor",
            "Maturity Score Poor",
            &(100.0_f64 / 3.0).to_string()
        ),
        warning("SloComplianceWarning", "SLO Compliance Warning", "50"),
        maturity_expr = serde_json::to_string(&maturity).expect("json"),
    );
    std::fs::write(dir.join("test.yml"), &test).expect("test");
    let promtool =
        find_program("promtool").expect("promtool is installed (Debian's prometheus package)");
    let result = run(Command::new(promtool)
        .current_dir(&dir)
        .args(["test", "rules", "test.yml"]));
    assert!(
        result.status.success(),
        "promtool test rules:\n{}{}\n{test}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}
