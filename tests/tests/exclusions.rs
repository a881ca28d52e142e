//! Windows kept off the error budget, end to end: a real sidecar fed 90
//! minutes of a production-shaped workload (64 routes, about 34,500
//! requests a minute, lognormal latencies), a recurring maintenance window
//! from its configuration and a one-off window marked afterwards with
//! `slo exclude`. The budgets leave exactly those minutes' requests out,
//! the spans are listed, the mark survives a kill, and what cannot be
//! excluded is refused with nothing changed.

use lumen_tests::sidecar_http::{get, post};
use lumen_tests::workload::Workload;
use lumen_tests::*;
use serde_json::Value;

const MINUTES: u64 = 90;

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    lumen_tests::fleet_load::sidecar_cli(args[0], &args[1..])
}

/// Requests and server errors (with inner failures) of minute `m`.
fn counts(w: &Workload, m: u64) -> (u64, u64) {
    w.requests_and_unavailable(m)
}

async fn budget(sidecar: &SidecarProc) -> Value {
    let (status, body) = get(sidecar.addr, "/v1/budget").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn availability(b: &Value) -> (u64, u64) {
    availability_events(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_minutes_leave_the_budget_exactly() {
    let w = Workload {
        sigma: 1.0,
        ..Workload::day()
    }
    .ending_now(MINUTES);
    let first = w.start_ms / 60_000;
    // The recurring window: ten minutes of each day starting 60 minutes
    // into the workload (moved earlier if it would cross midnight).
    let mut planned = first + 60;
    if planned % 1440 > 1430 {
        planned -= planned % 1440 - 1430;
    }
    let of_day = planned % 1440;
    let window = format!(
        "daily {:02}:{:02}-{:02}:{:02}",
        of_day / 60,
        of_day % 60,
        (of_day + 10) / 60,
        (of_day + 10) % 60
    );
    let state = std::env::temp_dir().join(format!("lumen-exclusions-{}", now_ms()));
    let state_arg = state.to_string_lossy().into_owned();
    let env = [
        ("LUMEN_BUDGET_MAINTENANCE", window.as_str()),
        ("LUMEN_STATE_DIR", state_arg.as_str()),
    ];
    let sidecar = SidecarProc::start(free_port(), &env).await;
    for m in 0..MINUTES {
        let (status, body) = post(
            sidecar.addr,
            w.batch("excl-api", "excl-1", m + 1, m),
            "application/json",
            None,
        )
        .await;
        assert_eq!(status, 200, "minute {m}: {body}");
    }
    let minute_of = |abs: u64| abs - first;
    let sum = |range: std::ops::Range<u64>| {
        range.fold((0, 0), |(n, b), m| {
            let (x, y) = counts(&w, m);
            (n + x, b + y)
        })
    };
    let all = sum(0..MINUTES);
    let in_planned = sum(minute_of(planned)..minute_of(planned) + 10);
    let b = budget(&sidecar).await;
    assert_eq!(
        availability(&b),
        (all.0 - in_planned.0, all.1 - in_planned.1),
        "the maintenance window is left out"
    );
    assert_eq!(b["excluded_requests"], in_planned.0);
    // The exported SLO counters (what Cloud Monitoring's SLOs and the
    // Prometheus rules count) leave the planned window out too; every
    // request is still in the request counters.
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    let summed = |name: &str, filter: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    assert_eq!(
        summed("lumen_slo_events_total{", "slo_name=\"availability\""),
        all.0 - in_planned.0,
        "the SLO events leave the maintenance minutes out"
    );
    assert_eq!(summed("http_server_requests_total{", ""), all.0);

    // The SLOs and health of the last 30 minutes leave the maintenance
    // minutes out too (read within one minute, so the window is known).
    let slo_requests = loop {
        let before = now_ms() / 60_000;
        let (status, body) = get(sidecar.addr, "/v1/slo?window=30m").await;
        assert_eq!(status, 200, "{body}");
        if now_ms() / 60_000 == before {
            let doc: Value = serde_json::from_str(&body).expect("JSON");
            let expected: u64 = (before - 29..=before)
                .filter(|abs| !(planned..planned + 10).contains(abs))
                .filter(|abs| *abs >= first && *abs < first + MINUTES)
                .map(|abs| counts(&w, abs - first).0)
                .sum();
            break (doc["requests"].as_u64(), expected);
        }
    };
    assert_eq!(
        slo_requests.0,
        Some(slo_requests.1),
        "the SLO window without the maintenance"
    );

    // A known incident, marked afterwards: minutes 20 to 30 of the workload.
    let (from, to) = (w.minute_start_ms(20), w.minute_start_ms(30));
    let (code, out, err) = cli(&[
        "slo",
        "exclude",
        "--url",
        &sidecar.base(),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--reason",
        "db failover",
        "--by",
        "ana",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let incident = sum(20..30);
    assert!(
        out.contains(&format!("{} requests held so far left out", incident.0)),
        "{out}"
    );
    // Twice is once.
    let (code, out, _) = cli(&[
        "slo",
        "exclude",
        "--url",
        &sidecar.base(),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--reason",
        "db failover",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains(" 0 requests held so far left out"), "{out}");
    let expected = (
        all.0 - in_planned.0 - incident.0,
        all.1 - in_planned.1 - incident.1,
    );
    let b = budget(&sidecar).await;
    assert_eq!(availability(&b), expected);
    assert_eq!(b["excluded_requests"], in_planned.0 + incident.0);
    let reasons: Vec<&str> = b["excluded"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["reason"].as_str().expect("reason"))
        .collect();
    assert!(reasons.contains(&"db failover"), "{reasons:?}");
    assert!(
        reasons.contains(&format!("maintenance {window}").as_str()),
        "{reasons:?}"
    );
    let (code, listed, _) = cli(&["slo", "exclusions", "--url", &sidecar.base()]);
    assert_eq!(code, Some(0));
    assert!(
        listed.contains("db failover (marked by ana)") && listed.contains(&window),
        "{listed}"
    );

    // Refused, nothing changed: longer than 7 days, no reason, the end
    // before the start, not a time, not JSON. (Minutes older than those
    // held one by one are refused too: the ledger's unit test.)
    let week_on = (from + 8 * 1440 * 60_000).to_string();
    for (args, says) in [
        (
            vec![
                "--from".to_owned(),
                from.to_string(),
                "--to".into(),
                week_on.clone(),
                "--reason".into(),
                "x".into(),
            ],
            "at most 7 days",
        ),
        (
            vec![
                "--from".to_owned(),
                from.to_string(),
                "--to".into(),
                to.to_string(),
                "--reason".into(),
                " ".into(),
            ],
            "reason",
        ),
        (
            vec![
                "--from".to_owned(),
                to.to_string(),
                "--to".into(),
                from.to_string(),
                "--reason".into(),
                "x".into(),
            ],
            "after from",
        ),
        (
            vec![
                "--from".to_owned(),
                "yesterday".into(),
                "--to".into(),
                to.to_string(),
                "--reason".into(),
                "x".into(),
            ],
            "RFC 3339",
        ),
    ] {
        let mut all_args = vec![
            "slo".to_owned(),
            "exclude".into(),
            "--url".into(),
            sidecar.base(),
        ];
        all_args.extend(args);
        let refs: Vec<&str> = all_args.iter().map(String::as_str).collect();
        let (code, _, err) = cli(&refs);
        assert_eq!(code, Some(3), "{refs:?}");
        assert!(err.contains(says), "{refs:?}: {err}");
    }
    let (status, body) = lumen_tests::sidecar_http::post_to(
        sidecar.addr,
        "/v1/exclusions",
        b"from=1".to_vec(),
        "application/x-www-form-urlencoded",
        None,
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(availability(&budget(&sidecar).await), expected);

    // Killed and started again on its state: the mark is kept.
    drop(sidecar);
    let sidecar = SidecarProc::start(free_port(), &env).await;
    let b = budget(&sidecar).await;
    assert_eq!(availability(&b), expected, "after a kill");
    assert_eq!(b["excluded_requests"], in_planned.0 + incident.0);
}
