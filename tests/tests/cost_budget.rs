//! The cost, end to end: a sidecar's accrued-cost counter (real process,
//! real HTTP) against its lifetime and prices; the budget section of
//! `/v1/health`, `/v1/budget` and `check --verbose`; and `cost-budget apply`
//! against a stand-in of the Cloud Billing Budget API that checks every
//! request as the API documents it.

use std::process::Command;
use std::time::{Duration, Instant};

use lumen_middleware::{LumenConfig, pair};
use lumen_tests::billing_budget_api::budget_api;
use lumen_tests::cloud_run_api::TOKEN;
use lumen_tests::{SidecarProc, binary, free_port, get_ok};
use serde_json::Value;

/// The cost counter's sample in `/metrics` text, with its labels.
fn cost_sample(metrics: &str) -> (String, f64) {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("lumen_instance_cost_usd_total{"))
        .unwrap_or_else(|| panic!("no cost counter in {metrics}"));
    let (series, value) = line.rsplit_once(' ').expect("a sample");
    (series.to_owned(), value.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_cost_counts_its_lifetime_at_its_prices() {
    let spawned = Instant::now();
    // 2 vCPU at $1 a vCPU-second, 4 GiB at $0.25 a GiB-second: $3 a second.
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("LUMEN_COST_INSTANCE_VCPU", "2"),
            ("LUMEN_COST_VCPU_SECOND_USD", "1"),
            ("LUMEN_COST_INSTANCE_MEMORY_GIB", "4"),
            ("LUMEN_COST_GIB_SECOND_USD", "0.25"),
            ("LUMEN_COST_MONTHLY_BUDGET_USD", "200"),
            ("LUMEN_ROI_REDIS_MONTHLY_COST_USD", "30"),
        ],
    )
    .await;
    let ready = Instant::now();
    let (layer, shipper) = pair({
        let mut c = LumenConfig::default();
        c.service = "cost-api".into();
        c.revision = Some("cost-api-00007-x".into());
        c.sidecar_url = format!("http://{}/v1/ingest", sidecar.addr);
        c.interval = Duration::from_secs(3600);
        c
    })
    .expect("config");
    let shipper = shipper.spawn();
    for i in 0..200 {
        layer
            .recorder()
            .record_request(Some("/ask"), &http::Method::GET, 10_000, 200);
        layer.recorder().record_cache(Some("/ask"), i % 4 != 0);
    }
    assert_eq!(shipper.flush().await.expect("runs").unsent_requests, 0);

    let before = Instant::now();
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    let after = Instant::now();
    let (series, value) = cost_sample(&metrics);
    assert!(
        series.contains("service_name=\"cost-api\"")
            && series.contains("revision_name=\"cost-api-00007-x\""),
        "{series}"
    );
    // Started between the spawn and readiness; read between before and after.
    let low = 3.0 * before.duration_since(ready).as_secs_f64();
    let high = 3.0 * after.duration_since(spawned).as_secs_f64();
    assert!(
        (low..=high).contains(&value),
        "{value} not in [{low}, {high}]"
    );
    assert!(metrics.contains("# TYPE lumen_instance_cost_usd_total counter"));

    // The budget section: this instance's, internally consistent.
    let health: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/health", sidecar.base())).await)
            .expect("JSON");
    let b = &health["budget"];
    assert_eq!(b["scope"], "instance", "{health}");
    let f = |k: &str| b[k].as_f64().unwrap_or_else(|| panic!("{k} in {b}"));
    let left_s = (f("month_end_ms") - health["evaluated_at_ms"].as_f64().expect("time")) / 1000.0;
    let expected = f("month_to_date_usd")
        + f("compute_usd_per_hour") / 3600.0 * left_s
        + (30.0 - f("cache_usd"));
    assert!(
        (f("forecast_usd") - expected).abs() < 1e-6 * expected,
        "{b}"
    );
    assert!((f("compute_usd_per_hour") - 3.0 * 3600.0).abs() < 1e-9);
    assert_eq!(b["over_budget"], true, "$3 a second is over $200 a month");
    // ROI counts the instance's compute: far below zero at $3 a second.
    let roi = &health["roi"];
    assert!(
        roi["compute_cost_usd"].as_f64().expect("compute") > 0.0,
        "{roi}"
    );
    assert!(roi["cost_usd"].as_f64() > roi["compute_cost_usd"].as_f64());
    let budget: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/budget", sidecar.base())).await)
            .expect("JSON");
    assert_eq!(budget["cost"]["scope"], "instance");
    let out = Command::new(binary("lumen-sidecar"))
        .args(["check", "--verbose", "--url", &sidecar.base()])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Budget (this instance)") && text.contains("OVER BUDGET"),
        "{text}"
    );
}

fn budget_cli(base: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary("lumen-sidecar"))
        .args([
            "cost-budget",
            "apply",
            "--billing-account",
            "012345-6789AB-CDEF01",
        ])
        .args(["--api-base", base, "--billing-api-base", base])
        .args(["--service", "mentor-api"])
        .args(if extra.contains(&"--project") {
            &[][..]
        } else {
            &["--project", "123456789012"][..]
        })
        .args(extra)
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN)
        .env_remove("LUMEN_CONFIG")
        .env_remove("GOOGLE_CLOUD_QUOTA_PROJECT")
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_apply_creates_then_updates_with_the_etag() {
    let api = budget_api().await;
    let notify = [
        "--pubsub-topic",
        "projects/lumen-demo/topics/budget",
        "--email-channel",
        "projects/lumen-demo/notificationChannels/42",
    ];
    // Dry run: reads the list, prints the request, sends nothing.
    let (code, out, err) = budget_cli(&api.base, &[&["--dry-run"][..], &notify].concat());
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("would send\nPOST ") && out.contains("FORECASTED_SPEND"),
        "{out}"
    );
    // The account's currency, then the list.
    assert_eq!(api.state().requests.len(), 2, "{:?}", api.state().requests);
    assert!(api.state().budgets.is_empty());

    // Create: $200 (the default), four thresholds, both notifications.
    let (code, out, err) = budget_cli(&api.base, &notify);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("created budget billingAccounts/012345-6789AB-CDEF01/budgets/b1")
            && out.contains("\"Lumen: mentor-api (project 123456789012)\""),
        "{out}"
    );
    {
        let s = api.state();
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        let b = &s.budgets[0];
        assert_eq!(b["amount"]["specifiedAmount"]["units"], "200");
        assert_eq!(b["budgetFilter"]["projects"][0], "projects/123456789012");
        let rules: Vec<(f64, String)> = b["thresholdRules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                (
                    r["thresholdPercent"].as_f64().expect("percent"),
                    r["spendBasis"].as_str().expect("basis").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            [
                (0.5, "CURRENT_SPEND".to_owned()),
                (0.9, "CURRENT_SPEND".to_owned()),
                (1.0, "CURRENT_SPEND".to_owned()),
                (1.0, "FORECASTED_SPEND".to_owned())
            ]
        );
        assert_eq!(
            b["notificationsRule"]["pubsubTopic"],
            "projects/lumen-demo/topics/budget"
        );
    }

    // Apply again with another amount: the same budget, updated with its etag.
    let (code, out, err) = budget_cli(&api.base, &[&["--amount", "250.5"][..], &notify].concat());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("updated budget"), "{out}");
    let s = api.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.budgets.len(), 1);
    assert_eq!(s.budgets[0]["amount"]["specifiedAmount"]["units"], "250");
    assert_eq!(
        s.budgets[0]["amount"]["specifiedAmount"]["nanos"],
        500_000_000
    );
    assert_eq!(s.budgets[0]["etag"], "e2");
    assert!(
        s.requests
            .iter()
            .any(|r| r.starts_with("PATCH") && r.contains("updateMask="))
    );
    drop(s);

    // Bad input: refused before any request, the flag named, exit 3.
    let before = api.state().requests.len();
    let (code, _, err) = budget_cli(&api.base, &["--pubsub-topic", "budget"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--pubsub-topic"), "{err}");
    let six: Vec<String> = (0..6)
        .flat_map(|i| {
            [
                "--email-channel".to_owned(),
                format!("projects/p/notificationChannels/{i}"),
            ]
        })
        .collect();
    let six: Vec<&str> = six.iter().map(String::as_str).collect();
    let (code, _, err) = budget_cli(&api.base, &six);
    assert_eq!(code, Some(3));
    assert!(err.contains("at most 5"), "{err}");
    let (code, _, err) = budget_cli(&api.base, &["--project", "lumen-demo"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("project NUMBER"), "{err}");
    assert_eq!(api.state().requests.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_of_two_projects_on_one_account_stay_apart() {
    let api = budget_api().await;
    // Someone else's budgets fill the first pages of the list.
    for i in 0..3 {
        api.state().budgets.push(serde_json::json!({
            "name": format!("billingAccounts/012345-6789AB-CDEF01/budgets/x{i}"),
            "displayName": "Lumen monthly budget",
            "etag": "e1",
            "budgetFilter": {"projects": [format!("projects/55500{i}")]},
            "amount": {"specifiedAmount": {"currencyCode": "USD", "units": "10"}},
        }));
    }
    for (project, amount) in [("111111111111", "100"), ("222222222222", "300")] {
        let (code, out, err) = budget_cli(&api.base, &["--project", project, "--amount", amount]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("created budget"), "{out}");
    }
    // The first project again: its own budget is updated, nobody else's.
    let (code, out, err) = budget_cli(&api.base, &["--project", "111111111111", "--amount", "150"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("updated budget"), "{out}");
    let s = api.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    let units: Vec<(String, String)> = s
        .budgets
        .iter()
        .map(|b| {
            (
                b["budgetFilter"]["projects"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                b["amount"]["specifiedAmount"]["units"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        units[3..],
        [
            ("projects/111111111111".to_owned(), "150".to_owned()),
            ("projects/222222222222".to_owned(), "300".to_owned())
        ]
    );
    assert!(units[..3].iter().all(|(_, u)| u == "10"), "{units:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_euro_account_gets_a_euro_budget_and_a_person_names_a_quota_project() {
    let api = budget_api().await;
    {
        let mut s = api.state();
        s.currency = "EUR".into();
        s.needs_quota_project = true;
    }
    // A person's credentials without a quota project: Google's 403, said.
    let (code, _, err) = budget_cli(&api.base, &["--amount", "180"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("quota project"), "{err}");
    // The config's amount is USD: refused for a EUR account, nothing created.
    let (code, _, err) = budget_cli(&api.base, &["--quota-project", "ops-billing"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("bills in EUR") && err.contains("--amount"),
        "{err}"
    );
    assert!(api.state().budgets.is_empty());
    let (code, out, err) = budget_cli(
        &api.base,
        &["--quota-project", "ops-billing", "--amount", "180"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("180 EUR"), "{out}");
    let s = api.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(
        s.budgets[0]["amount"]["specifiedAmount"]["currencyCode"],
        "EUR"
    );
    assert!(s.quota_projects.iter().all(|p| p == "ops-billing") && s.quota_projects.len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sidecar_without_a_cache_charges_no_cache_and_nothing_before_it_started() {
    let spawned = Instant::now();
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let mut config = LumenConfig::default();
    config.service = "no-cache".into();
    config.sidecar_url = sidecar.base();
    config.interval = Duration::from_secs(3600);
    let (layer, shipper) = pair(config).expect("valid");
    let mut shipper = shipper.spawn();
    for i in 0..30 {
        layer.recorder().record_response(Some("/r"), 1_000 + i, 200);
    }
    let _ = shipper.flush().await.expect("the shipper runs");
    let cost = |doc: &Value| doc["cost"].clone();
    let budget: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/budget", sidecar.base())).await)
            .expect("JSON");
    let alive_s = spawned.elapsed().as_secs_f64();
    let c = cost(&budget);
    assert_eq!(c["cache_usd"], 0.0, "no cache configured or reported: {c}");
    // The default instance: $0.0000195 a second, for at most its lifetime.
    let to_date = c["month_to_date_usd"].as_f64().expect("a figure");
    assert!(
        to_date <= 0.000_019_5 * alive_s + 1e-9,
        "{to_date} after {alive_s} s: {c}"
    );
    // Once the app reports a lookup there is a cache: charged from when the
    // sidecar started, not from the 1st of the month.
    layer.recorder().record_cache(Some("/r"), true);
    layer.recorder().record_response(Some("/r"), 1_000, 200);
    let _ = shipper.flush().await.expect("the shipper runs");
    let budget: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/budget", sidecar.base())).await)
            .expect("JSON");
    let alive_s = spawned.elapsed().as_secs_f64();
    let cache = cost(&budget)["cache_usd"].as_f64().expect("a figure");
    let month_s = (cost(&budget)["month_end_ms"].as_f64().expect("ms")
        - cost(&budget)["month_start_ms"].as_f64().expect("ms"))
        / 1000.0;
    assert!(
        cache > 0.0 && cache <= 50.0 * alive_s / month_s + 1e-9,
        "{cache}: {budget}"
    );
    let text = Command::new(binary("lumen-sidecar"))
        .args(["check", "--verbose", "--url", &sidecar.base()])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("$0.00 this month so far"), "{text}");
    let _ = shipper.shutdown(Duration::from_secs(1)).await;
}
