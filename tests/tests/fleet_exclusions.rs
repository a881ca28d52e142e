//! Windows kept off the error budgets in the fleet reads over a Prometheus
//! query API (`check --prometheus`, the budget view, the rollback gate):
//! two real sidecars fed an hour of a production-shaped workload (32
//! routes, about 28,000 requests a minute each, lognormal latencies,
//! σ = 1), their `/metrics` scraped every minute of the script into a real
//! Prometheus (backfilled with promtool). An incident is marked on one
//! sidecar only; the reader's configuration has a recurring maintenance
//! window overlapping it. The fleet's budgets, its SLO window and the gate
//! leave exactly those minutes' requests out, once each, for both
//! instances.

use std::time::Duration;

use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::fleet::{FleetReader, QueryApi};
use lumen_sidecar::gate::read_evidence;
use lumen_sidecar::store::parse_recurring;
use lumen_tests::prometheus_backfill::Backfill;
use lumen_tests::sidecar_http::post;
use lumen_tests::workload::Workload;
use lumen_tests::*;

const SERVICE: &str = "api";
const REVISION: &str = "api-00001-abc";
const MINUTES: u64 = 60;
const MINUTE: u64 = 60_000;
/// The incident marked on the first sidecar: minutes 30 to 39 of the script.
const MARKED: std::ops::Range<u64> = 30..40;
/// The reader's recurring maintenance: minutes 38 to 44 (overlapping).
const PLANNED: std::ops::Range<u64> = 38..45;

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    lumen_tests::fleet_load::sidecar_cli(args[0], &args[1..])
}

/// `HH:MM` of the day of Unix minute `minute`.
fn of_day(minute: u64) -> String {
    let m = minute % 1440;
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_and_maintenance_leave_the_prometheus_fleet_reads_and_the_gate() {
    let now = now_ms();
    // Three hours ago, on the hour: every sample is older than the head
    // block, and the script's minutes cannot cross midnight inside the
    // excluded spans.
    let t0 = (now / 3_600_000) * 3_600_000 - 3 * 3_600_000;
    let at = |minute: u64| t0 + minute * MINUTE;
    let workloads: Vec<Workload> = (0..2)
        .map(|seed| {
            Workload {
                routes: 32,
                seed: 40 + seed,
                ..Workload::day()
            }
            .ending_now(MINUTES)
        })
        .collect();
    let a = SidecarProc::start(free_port(), &[]).await;
    let b = SidecarProc::start(free_port(), &[]).await;

    // The incident, marked on the first sidecar only, before the script.
    let (code, out, err) = cli(&[
        "slo",
        "exclude",
        "--url",
        &a.base(),
        "--from",
        &at(MARKED.start).to_string(),
        "--to",
        &at(MARKED.end).to_string(),
        "--reason",
        "db failover",
        "--by",
        "ana",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");

    // The script: minute m's batches arrive at its end, and the scrape at
    // t0 + (m + 1) min sees them.
    let mut backfill = Backfill::default();
    for m in 0..MINUTES {
        for (i, (sidecar, w)) in [&a, &b].into_iter().zip(&workloads).enumerate() {
            let (status, body) = post(
                sidecar.addr,
                w.batch(SERVICE, &format!("instance-{i}"), m + 1, m),
                "application/json",
                None,
            )
            .await;
            assert_eq!(status, 200, "minute {m}: {body}");
            let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
            if m == 0 && i == 0 {
                assert!(
                    metrics.contains("lumen_budget_exclusion_info{")
                        && metrics.contains("reason=\"db failover\""),
                    "the marking sidecar exports its mark"
                );
            }
            backfill.add_scrape(&metrics, &format!("sidecar-{i}:9464"), at(m + 1));
        }
    }
    // A mark no sidecar could have written (its span is not minutes) is
    // left aside, not trusted.
    backfill.add_scrape(
        &format!(
            "lumen_budget_exclusion_info{{service_name=\"{SERVICE}\",revision_name=\"{REVISION}\",from_unix_s=\"{}\",to_unix_s=\"soon\",reason=\"bogus\"}} 1",
            at(5) / 1000
        ),
        "sidecar-9:9464",
        at(50),
    );
    let (_prometheus, api, _dir) = backfill.serve("fleet-exclusions").await;

    let planned_window = format!(
        "daily {}-{}",
        of_day(at(PLANNED.start) / MINUTE),
        of_day(at(PLANNED.end) / MINUTE)
    );
    let config = SidecarConfig {
        budget_maintenance: parse_recurring(&planned_window).expect("a valid window"),
        ..SidecarConfig::default()
    };
    let reader = FleetReader {
        api: QueryApi::new(&api, None),
        service: SERVICE.into(),
        revision: None,
        config,
    };

    // What the fleet did, and what is kept off: minutes 30 to 44, once.
    let excluded = MARKED.start..PLANNED.end;
    let sum = |minutes: &mut dyn Iterator<Item = u64>| {
        Workload::fleet_requests_and_unavailable(&workloads, minutes)
    };
    let all = sum(&mut (0..MINUTES));
    let off = sum(&mut excluded.clone());
    assert!(
        off.0 > 0 && off.1 > 0,
        "the excluded minutes hold requests and errors"
    );

    let budget = reader
        .budget(at(MINUTES))
        .await
        .expect("the fleet's budget");
    let doc = serde_json::to_value(&budget).expect("JSON");
    assert_eq!(
        availability_events(&doc),
        (all.0 - off.0, all.1 - off.1),
        "both instances' minutes 30 to 44 are left out, once"
    );
    assert_eq!(budget.excluded_requests, off.0);
    // The period's spans: the maintenance of each earlier day of the
    // period (no data there), then today's, merged with the mark.
    let span = budget.excluded.last().expect("spans");
    assert!(
        budget.excluded[..budget.excluded.len() - 1]
            .iter()
            .all(|s| s.to_ms - s.from_ms == 7 * MINUTE
                && s.reason.starts_with("maintenance daily")),
        "{:?}",
        budget.excluded
    );
    assert_eq!((span.from_ms, span.to_ms), (at(30), at(45)));
    assert!(
        span.reason.contains("db failover") && span.reason.contains("maintenance daily"),
        "{}",
        span.reason
    );

    // The burn rate over the last 30 minutes counts minutes 45 to 59 only.
    let (last_30_requests, _) = sum(&mut (45..MINUTES));
    let slo = reader
        .slo_report(Duration::from_secs(30 * 60), at(MINUTES))
        .await
        .expect("the fleet's SLO window");
    assert_eq!(
        slo.requests, last_30_requests,
        "minutes 30 to 44 leave the window"
    );
    let hour = reader
        .slo_report(Duration::from_secs(3600), at(MINUTES))
        .await
        .expect("the fleet's hour");
    assert_eq!(hour.requests, all.0 - off.0);

    // The gate: no trigger judged inside either window; after them its
    // 10-minute window counts only the minutes outside.
    let window = Duration::from_secs(600);
    for (minute, reason) in [(35, "db failover"), (42, "maintenance daily")] {
        let e = read_evidence(&reader, REVISION, window, at(minute) + 30_000)
            .await
            .expect("the gate's reading");
        let got = e.excluded.unwrap_or_default();
        assert!(got.contains(reason), "minute {minute}: {got}");
    }
    let e = read_evidence(&reader, REVISION, window, at(50))
        .await
        .expect("the gate's reading");
    assert_eq!(e.excluded, None, "minute 50 is judged");
    assert_eq!(
        e.requests,
        sum(&mut (45..50)).0,
        "minutes 40 to 44 are left out"
    );
}
