//! Progressive rollouts end to end: three revisions' sidecars (real
//! processes) fed a scripted hundred minutes through the middleware's
//! shipper (20,000 requests a minute, lognormal latencies, σ = 1), their
//! `/metrics` scraped every 15 s of the script into a real Prometheus
//! (backfilled with promtool), and `gate rollout` reading that past on
//! tokio's paused clock against the Cloud Run Admin API stand-in (traffic
//! splits, tags, etags, operations) and Slack's.
//!
//! The script: `old` serves alone; `good` (as healthy as `old`) takes
//! 5 %, 25 %, 50 % then all requests from minute 5; later `bad` (2.5 points
//! more server errors, still inside the service's SLOs) takes 5 % from
//! minute 80. A good rollout reaches 100 %; the bad one is caught at its
//! first step, by the comparison alone, and the traffic is returned.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::eval::{Finding, RolloutTests};
use lumen_sidecar::fleet::{FleetReader, QueryApi};
use lumen_sidecar::gate::{
    CloudRunService, DEFAULT_MAX_HOLD, DEFAULT_STEPS, GateExit, GateRules, GateSettings, GateSlack,
    GateStatus, RolloutPhase, RolloutPlan, SlackTarget, TriggerKind, gate, router,
};
use lumen_sidecar::google::AccessTokens;
use lumen_sidecar::http_client::OffClock;
use lumen_tests::cloud_run_api::{RunApi, StandInRevision, TOKEN, run_api};
use lumen_tests::prometheus_backfill::Backfill;
use lumen_tests::slack_api::{BOT_TOKEN, CHANNEL, SlackApi, slack_api};
use lumen_tests::{Proc, SidecarProc, binary, free_port, get_ok};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

const SERVICE: &str = "api";
const PROJECT: &str = "lumen-demo";
const REGION: &str = "europe-west1";
const STEP_MS: u64 = 15_000;
const MINUTE: u64 = 60_000;
/// Requests of the whole service per 15 s: 20,000 a minute.
const PER_STEP: u64 = 5_000;
const MINUTES: u64 = 100;

const OLD: &str = "api-00001-old";
const GOOD: &str = "api-00002-good";
const BAD: &str = "api-00003-bad";

/// Percent of the service's requests `revision` takes at `minute`.
fn share(revision: &str, minute: f64) -> u64 {
    let good = match minute {
        m if m < 5.0 => 0,
        m if m < 17.0 => 5,
        m if m < 29.0 => 25,
        m if m < 41.0 => 50,
        m if m < 75.0 => 100,
        _ => 0,
    };
    let bad = if minute >= 80.0 { 5 } else { 0 };
    match revision {
        GOOD => good,
        BAD => bad,
        _ => 100 - good - bad,
    }
}

/// Each revision's share of server errors.
fn server_errors(revision: &str) -> f64 {
    if revision == BAD { 0.03 } else { 0.005 }
}

struct World {
    real: Runtime,
    _prometheus: Proc,
    api: String,
    t0: u64,
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

async fn script(sidecars: &[(SidecarProc, &'static str)], t0: u64) -> Backfill {
    let mut backfill = Backfill::default();
    let mut shippers = Vec::new();
    for (sidecar, revision) in sidecars {
        let (layer, shipper) = pair({
            let mut c = LumenConfig::default();
            c.service = SERVICE.into();
            c.revision = Some((*revision).into());
            c.sidecar_url = format!("http://{}/v1/ingest", sidecar.addr);
            c.interval = Duration::from_secs(3600);
            c
        })
        .expect("valid config");
        shippers.push((layer, shipper.spawn()));
    }
    let mut rng = SmallRng::seed_from_u64(36);
    let mut served = [false; 3];
    for step in 0..=MINUTES * MINUTE / STEP_MS {
        let at = t0 + step * STEP_MS;
        let minute = (step * STEP_MS) as f64 / MINUTE as f64;
        for (i, ((sidecar, revision), (layer, shipper))) in
            sidecars.iter().zip(&mut shippers).enumerate()
        {
            let n = PER_STEP * share(revision, minute) / 100;
            if n > 0 {
                served[i] = true;
                let r = layer.recorder();
                for _ in 0..n {
                    let status = if rng.random_bool(server_errors(revision)) {
                        503
                    } else {
                        200
                    };
                    // Lognormal, median 20 ms, σ = 1.
                    let us = (20_000.0 * standard_normal(&mut rng).exp()) as u64;
                    r.record_request(Some("/ask"), &http::Method::GET, us.max(1), status);
                }
                let flushed = shipper.flush().await.expect("the shipper runs");
                assert_eq!(flushed.unsent_requests, 0, "{revision}");
            }
            if served[i] {
                let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
                backfill.add_scrape(&metrics, &format!("{revision}:9464"), at);
            }
        }
    }
    backfill
}

fn world() -> World {
    let real = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let now = lumen_sidecar::app::now_ms();
    // Three hours ago, on the hour: every sample is older than the head block.
    let t0 = (now / 3_600_000) * 3_600_000 - 3 * 3_600_000;
    let (prometheus, api) = real.block_on(async {
        let mut sidecars = Vec::new();
        for revision in [OLD, GOOD, BAD] {
            sidecars.push((SidecarProc::start(free_port(), &[]).await, revision));
        }
        let backfill = script(&sidecars, t0).await;
        let (proc, api, _dir) = backfill.serve("rollout-prom").await;
        (proc, api)
    });
    World {
        real,
        _prometheus: prometheus,
        api,
        t0,
    }
}

fn rfc3339(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let (y, m, d) = lumen_sidecar::eval::calendar::civil_from_days(days);
    let s = (ms % 86_400_000) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn revisions(t0: u64) -> Vec<StandInRevision> {
    [
        (OLD, t0 - 86_400_000),
        (GOOD, t0 + 4 * MINUTE),
        (BAD, t0 + 79 * MINUTE),
    ]
    .into_iter()
    .map(|(name, created)| StandInRevision {
        name: name.into(),
        create_time: rfc3339(created),
        ready: true,
    })
    .collect()
}

struct Ended {
    exit: GateExit,
    status: GateStatus,
    page: String,
    run: RunApi,
    slack: SlackApi,
}

/// How the rollout is asked for.
#[derive(Clone, Copy)]
enum Asked {
    /// `gate rollout --to REVISION` (the gate ends with it).
    Command,
    /// `gate start --to REVISION` sent to a gate service already watching.
    Service,
}

/// The gate service: `gate start` as a real process, refused while the
/// rollout it started runs; the gate followed on its clock until the
/// rollout ends.
async fn through_the_service(
    world: &World,
    addr: SocketAddr,
    to: &str,
    shared: lumen_sidecar::gate::watch::SharedGate,
) -> GateExit {
    let start = |to: String| {
        let url = format!("http://{addr}");
        tokio::task::spawn_blocking(move || {
            Command::new(binary("lumen-sidecar"))
                .args(["gate", "start", "--url", &url, "--to", &to, "--by", "ana"])
                .output()
                .expect("lumen-sidecar runs")
        })
    };
    let out = start(to.to_owned()).await.expect("ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("rollout of {to}")));
    let mut refused_once = false;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let phase = lumen_sidecar::gate::watch::lock(&shared)
            .snapshot()
            .rollout
            .map(|r| r.phase);
        match phase {
            Some(RolloutPhase::Stepping) if !refused_once => {
                let out = start(to.to_owned()).await.expect("ran");
                assert_eq!(out.status.code(), Some(3));
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("is running"), "{err}");
                refused_once = true;
            }
            Some(RolloutPhase::Promoted) => return GateExit::Healthy,
            Some(RolloutPhase::Returned) => return GateExit::RolledBack,
            Some(RolloutPhase::Stopped { .. }) => return GateExit::Holding,
            _ => {}
        }
    }
    let _ = world;
    panic!("the rollout did not end")
}

/// Rolls `to` out from `start_minute` of the script, as `gate rollout`
/// with its defaults would (readings every 30 s), or through a gate
/// service.
fn roll_out(world: &World, to: &str, start_minute: u64, asked: Asked) -> Ended {
    let (run, slack) = world.real.block_on(async {
        (
            run_api(PROJECT, REGION, SERVICE, revisions(world.t0), OLD).await,
            slack_api().await,
        )
    });
    // A tagged URL on the old revision, which every traffic change keeps.
    run.state().tags = vec![("stable".into(), OLD.into())];
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (exit, status, page) = paused.block_on(async {
        // The service's SLOs, which neither new revision breaks: only the
        // comparison can tell the bad one from the old.
        let mut config = SidecarConfig::default();
        config.slo.availability_percent = 95.0;
        config.slo.error_rate_percent = 5.0;
        let source = FleetReader {
            api: QueryApi::new(&world.api, None),
            service: SERVICE.into(),
            revision: None,
            config,
        };
        let cloud_run = CloudRunService::new(
            &run.base,
            std::sync::Arc::new(AccessTokens::fixed(TOKEN)),
            PROJECT,
            REGION,
            SERVICE,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let settings = GateSettings {
            service: SERVICE.into(),
            window: Duration::from_secs(600),
            interval: Duration::from_secs(30),
            approval_window: Duration::from_secs(300),
            require_approval: false,
            dry_run: false,
            rules: GateRules {
                hold_for: Duration::from_secs(60),
                ..GateRules::default()
            },
            target_lookback: Duration::from_secs(7 * 86_400),
            api_url: format!("http://{addr}"),
            slack_buttons: false,
            rollout: matches!(asked, Asked::Command).then(|| RolloutPlan {
                to: to.into(),
                steps: DEFAULT_STEPS.to_vec(),
                step_for: Duration::from_secs(600),
                max_hold: DEFAULT_MAX_HOLD,
                tests: RolloutTests::default(),
            }),
        };
        let (gate, shared, commands) = gate(
            settings,
            source,
            cloud_run,
            GateSlack::new(SlackTarget::WebApi {
                base: slack.base.clone(),
                token: BOT_TOKEN.into(),
                channel: CHANNEL.into(),
            }),
            OffClock::on(world.real.handle().clone()),
            world.t0 + start_minute * MINUTE,
        );
        let api = router(shared.clone(), commands, None, Vec::new(), None);
        tokio::spawn(async move { axum::serve(listener, api).await });
        let exit = match asked {
            Asked::Command => gate.run(true).await,
            Asked::Service => {
                let watching = tokio::spawn(gate.run(false));
                let exit = through_the_service(world, addr, to, shared).await;
                watching.abort();
                exit
            }
        };
        let real = world.real.handle().clone();
        let (status, page) = tokio::task::spawn_blocking(move || {
            let out = Command::new(binary("lumen-sidecar"))
                .args([
                    "gate",
                    "status",
                    "--json",
                    "--url",
                    &format!("http://{addr}"),
                ])
                .output()
                .expect("lumen-sidecar runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let page = real.block_on(get_ok(&format!("http://{addr}/")));
            (
                serde_json::from_slice::<GateStatus>(&out.stdout).expect("a gate status"),
                page,
            )
        })
        .await
        .expect("status");
        (exit, status, page)
    });
    for h in &status.history {
        eprintln!("{:>6.1} min: {}", h.at_ms as f64 / 60_000.0, h.what);
    }
    Ended {
        exit,
        status,
        page,
        run,
        slack,
    }
}

fn no_violations(e: &Ended) {
    assert!(
        e.run.state().violations.is_empty(),
        "{:?}",
        e.run.state().violations
    );
    assert!(
        e.slack.state().violations.is_empty(),
        "{:?}",
        e.slack.state().violations
    );
}

#[test]
fn rollouts_on_real_prometheus_data() {
    let world = world();

    // 1. The good revision: every step, then all traffic; the tag kept.
    let e = roll_out(&world, GOOD, 5, Asked::Command);
    no_violations(&e);
    let rollout = e.status.rollout.clone().expect("a rollout");
    assert_eq!(e.exit, GateExit::Healthy, "{rollout:#?}");
    assert_eq!(rollout.phase, RolloutPhase::Promoted);
    assert_eq!(
        e.run.state().splits_set,
        vec![
            format!("{GOOD} 5%, {OLD} 95%"),
            format!("{GOOD} 25%, {OLD} 75%"),
            format!("{GOOD} 50%, {OLD} 50%"),
            format!("{GOOD} 100%"),
        ]
    );
    assert_eq!(e.run.state().serving, GOOD);
    assert_eq!(
        e.run.state().tags,
        vec![("stable".to_owned(), OLD.to_owned())]
    );
    // Promoted on evidence: the last reading has every test, each no
    // worse, on thousands of requests a side.
    let last = rollout.comparison.expect("compared");
    assert_eq!(last.finding, Finding::NoWorse);
    let tested: Vec<&str> = last.metrics.iter().map(|m| m.metric.as_str()).collect();
    assert_eq!(
        tested,
        [
            "availability",
            "latency_p95",
            "latency_p99",
            "error_rate",
            "latency_shift"
        ]
    );
    for m in &last.metrics {
        assert!(m.new_requests > 10_000 && m.old_requests > 10_000, "{m:?}");
    }
    // Each step lasted at least its ten minutes, on data.
    let percents: Vec<u64> = rollout.points.iter().map(|p| p.percent).collect();
    for p in [5, 25, 50, 100] {
        let readings = percents.iter().filter(|x| **x == p).count();
        assert!(readings >= 20, "{readings} readings at {p}%");
    }
    // Nothing regressed, so no window opened.
    assert!(e.status.rollback.is_none());
    let texts: Vec<String> = e
        .slack
        .state()
        .messages
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(
        texts[0].contains("Lumen rollout") && texts[0].contains("5%"),
        "{texts:?}"
    );
    assert_eq!(
        texts.iter().filter(|t| t.contains(":arrow_up:")).count(),
        3,
        "{texts:?}"
    );
    assert!(
        texts.last().is_some_and(|t| t.contains("complete")),
        "{texts:?}"
    );

    // 2. The bad revision: caught at 5 % by the comparison alone, the
    // traffic returned to the old revision after the approval window.
    let e = roll_out(&world, BAD, 80, Asked::Command);
    no_violations(&e);
    let rollout = e.status.rollout.clone().expect("a rollout");
    assert_eq!(e.exit, GateExit::RolledBack, "{rollout:#?}");
    assert_eq!(rollout.phase, RolloutPhase::Returned);
    assert_eq!(
        e.run.state().splits_set,
        vec![format!("{BAD} 5%, {OLD} 95%"), format!("{OLD} 100%")]
    );
    assert_eq!(
        e.run.state().tags,
        vec![("stable".to_owned(), OLD.to_owned())]
    );
    assert!(rollout.points.iter().all(|p| p.percent == 5));
    let worse = rollout.comparison.expect("compared");
    assert!(worse.worse().contains(&"availability"), "{worse:#?}");
    // The absolute triggers stayed clear: the comparison alone acted.
    let windows: Vec<&str> = e
        .status
        .history
        .iter()
        .filter(|h| h.what.contains("opened"))
        .map(|h| h.what.as_str())
        .collect();
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert!(
        windows[0].contains(TriggerKind::Regression.as_str()),
        "{windows:?}"
    );
    assert!(!windows[0].contains("slo_compliance"), "{windows:?}");
    // The window's message explains the verdict.
    let messages = e.slack.state().messages.clone();
    let window = messages
        .iter()
        .find(|m| m.text.contains("Lumen rollback gate"))
        .expect("a window message");
    for needed in [
        "availability",
        "WORSE",
        "interval",
        "requests",
        "false alarms",
    ] {
        assert!(
            window.blocks_text.contains(needed),
            "{needed}: {}",
            window.blocks_text
        );
    }
    assert!(messages.last().is_some_and(|m| m.text.contains(":rewind:")));
    // The page charts each test over the readings.
    assert!(
        e.page.contains("<svg") && e.page.contains("availability"),
        "{}",
        e.page
    );

    // 3. The same good rollout asked of a gate service that was watching
    // the old revision: carried out the same way, recorded under who asked.
    let e = roll_out(&world, GOOD, 5, Asked::Service);
    no_violations(&e);
    assert_eq!(e.exit, GateExit::Healthy);
    let rollout = e.status.rollout.clone().expect("a rollout");
    // The gate knows no approvers here: the name is as claimed.
    assert_eq!(rollout.started_by.as_deref(), Some("ana (claimed)"));
    assert_eq!(
        e.run.state().splits_set.len(),
        4,
        "{:?}",
        e.run.state().splits_set
    );
    assert_eq!(e.run.state().serving, GOOD);
}

#[test]
fn the_rollout_command_refuses_what_it_cannot_do() {
    let base = [
        "gate",
        "rollout",
        "--service",
        "api",
        "--region",
        "r",
        "--project",
        "p",
        "--prometheus",
        "http://127.0.0.1:9",
        "--to",
        "api-2",
    ];
    for (extra, says) in [
        (&["--steps", "5,50"][..], "the last step must be 100"),
        (&["--steps", "50,25,100"][..], "steps must rise"),
        (&["--dry-run"][..], "a rollout moves traffic"),
        (&["--alpha", "0.7"][..], "--alpha"),
    ] {
        let out = Command::new(binary("lumen-sidecar"))
            .args(base)
            .args(extra)
            .output()
            .expect("lumen-sidecar runs");
        assert_eq!(out.status.code(), Some(3), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{extra:?}: {err}");
    }
}
