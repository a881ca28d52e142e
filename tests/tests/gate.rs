//! The rollback gate end to end: four revisions' sidecars (real processes)
//! fed a scripted two hours through the middleware's shipper, their
//! `/metrics` scraped every 15 s of the script into a real Prometheus
//! (backfilled with promtool), and the gate reading that past on tokio's
//! paused clock against stand-ins of the Cloud Run Admin API and Slack's
//! Web API that check every request as documented. The approval commands
//! are the ones the Slack message gives, run as real processes.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::fleet::{FleetReader, QueryApi};
use lumen_sidecar::gate::slack_interactions::{
    APPROVE_ACTION, SlackApprovers, SlackDecisions, VETO_ACTION,
};
use lumen_sidecar::gate::{
    CloudRunService, GateExit, GateRules, GateSettings, GateSlack, GateState, GateStatus,
    SlackTarget, gate, router,
};
use lumen_sidecar::google::AccessTokens;
use lumen_sidecar::http_client::OffClock;
use lumen_tests::cloud_run_api::{RunApi, StandInRevision, TOKEN, run_api};
use lumen_tests::google_stand_in::metadata_server;
use lumen_tests::prometheus_backfill::Backfill;
use lumen_tests::slack_api::{BOT_TOKEN, CHANNEL, Click, SlackApi, slack_api, slack_signature};
use lumen_tests::{Proc, SidecarProc, binary, free_port, get_ok, now_ms};
use tokio::runtime::Runtime;

const SERVICE: &str = "api";
const PROJECT: &str = "lumen-demo";
const REGION: &str = "europe-west1";
const STEP_MS: u64 = 15_000;
const MINUTE: u64 = 60_000;

const GOOD: &str = "api-00001-good";
const IDLE: &str = "api-00002-idle";
const BROKEN: &str = "api-00003-broken";
const BAD: &str = "api-00004-bad";
const BLIP: &str = "api-00005-blip";
const THIN: &str = "api-00006-thin";

/// How a revision's traffic goes in the script.
struct Script {
    revision: &'static str,
    /// Minutes of the script it serves.
    serves: (u64, u64),
    /// Requests per 15 s.
    per_step: u64,
    /// Whether the request at `minute` (fractional) fails (a 503).
    fails: fn(f64, u64) -> bool,
}

const SCRIPTS: [Script; 4] = [
    Script {
        revision: GOOD,
        serves: (0, 120),
        per_step: 40,
        fails: |_, _| false,
    },
    Script {
        revision: BAD,
        serves: (30, 120),
        per_step: 40,
        fails: |_, i| i % 2 == 0,
    },
    Script {
        revision: BLIP,
        serves: (30, 120),
        per_step: 40,
        fails: |minute, i| minute < 34.0 && i % 2 == 0,
    },
    Script {
        revision: THIN,
        serves: (30, 120),
        per_step: 1,
        fails: |_, _| true,
    },
];

/// Prometheus holding the script, and when the script starts (Unix ms).
struct World {
    real: Runtime,
    _prometheus: Proc,
    api: String,
    t0: u64,
}

fn minute_ms(t0: u64, minute: u64) -> u64 {
    t0 + minute * MINUTE
}

/// Feeds the sidecars the script, one 15-s step at a time, and scrapes
/// each after each step.
async fn script(sidecars: &[(SidecarProc, &Script)], t0: u64) -> Backfill {
    let mut backfill = Backfill::default();
    let mut shippers = Vec::new();
    for (sidecar, s) in sidecars {
        let (layer, shipper) = pair({
            let mut c = LumenConfig::default();
            c.service = SERVICE.into();
            c.revision = Some(s.revision.into());
            c.sidecar_url = format!("http://{}/v1/ingest", sidecar.addr);
            c.interval = Duration::from_secs(3600);
            c
        })
        .expect("valid config");
        shippers.push((layer, shipper.spawn()));
    }
    let steps = 120 * MINUTE / STEP_MS;
    for step in 0..=steps {
        let at = t0 + step * STEP_MS;
        let minute = (step * STEP_MS) as f64 / MINUTE as f64;
        for ((sidecar, s), (layer, shipper)) in sidecars.iter().zip(&mut shippers) {
            let serving = minute >= s.serves.0 as f64 && minute <= s.serves.1 as f64;
            if serving {
                let r = layer.recorder();
                for i in 0..s.per_step {
                    let status = if (s.fails)(minute, i) { 503 } else { 200 };
                    r.record_request(Some("/ask"), &http::Method::GET, 20_000 + i * 100, status);
                    r.record_cache(Some("/ask"), i % 5 != 0);
                }
                let flushed = shipper.flush().await.expect("the shipper runs");
                assert_eq!(flushed.unsent_requests, 0, "{}", s.revision);
            }
            let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
            if serving || minute > s.serves.1 as f64 {
                backfill.add_scrape(&metrics, &format!("{}:9464", s.revision), at);
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
        for s in &SCRIPTS {
            sidecars.push((SidecarProc::start(free_port(), &[]).await, s));
        }
        let backfill = script(&sidecars, t0).await;
        assert!(backfill.len() > 10_000, "{} samples", backfill.len());
        let (proc, api, _dir) = backfill.serve("gate-prom").await;
        (proc, api)
    });
    World {
        real,
        _prometheus: prometheus,
        api,
        t0,
    }
}

fn revisions(t0: u64) -> Vec<StandInRevision> {
    let created = |minutes_before: u64| {
        let ms = t0 - minutes_before * MINUTE;
        rfc3339(ms)
    };
    vec![
        StandInRevision {
            name: GOOD.into(),
            create_time: created(24 * 60),
            ready: true,
        },
        StandInRevision {
            name: IDLE.into(),
            create_time: created(120),
            ready: true,
        },
        StandInRevision {
            name: BROKEN.into(),
            create_time: created(60),
            ready: false,
        },
        StandInRevision {
            name: BAD.into(),
            create_time: created(1),
            ready: true,
        },
        StandInRevision {
            name: BLIP.into(),
            create_time: rfc3339(t0 + 29 * MINUTE),
            ready: true,
        },
        StandInRevision {
            name: THIN.into(),
            create_time: rfc3339(t0 + 29 * MINUTE + 30_000),
            ready: true,
        },
    ]
}

fn rfc3339(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let (y, m, d) = lumen_sidecar::eval::calendar::civil_from_days(days);
    let s = (ms % 86_400_000) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}000Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// What a scenario sets.
struct Scenario {
    serving: &'static str,
    start_minute: u64,
    require_approval: bool,
    dry_run: bool,
    /// A command the test runs from the window's Slack message (`approve`
    /// or `veto`), as soon as the message is posted.
    command: Option<&'static str>,
    /// Set on the stand-ins once the window's message is posted.
    once_open: Option<fn(&RunApi, &SlackApi)>,
    /// The API knows approvers by token (ana: `t-ana`, ben: `t-ben`); the
    /// command carries ana's, after one with ben's token claiming to be
    /// ana is refused.
    approvers: bool,
    /// The window's message has buttons, and the test clicks them as Slack
    /// would (see [`slack_clicks`]).
    slack_clicks: bool,
}

impl Scenario {
    fn on(serving: &'static str, start_minute: u64) -> Self {
        Self {
            serving,
            start_minute,
            require_approval: false,
            dry_run: false,
            command: None,
            once_open: None,
            approvers: false,
            slack_clicks: false,
        }
    }
}

/// What a scenario ended with.
struct Ended {
    exit: GateExit,
    status: GateStatus,
    run: RunApi,
    slack: SlackApi,
}

fn rules() -> GateRules {
    GateRules {
        hold_for: Duration::from_secs(60),
        ..GateRules::default()
    }
}

const APPROVAL: Duration = Duration::from_secs(300);

/// The `lumen-sidecar gate …` command line a Slack message gives for `action`.
fn command_from(message: &str, action: &str) -> Vec<String> {
    let label = format!("{}{}: `", action[..1].to_uppercase(), &action[1..]);
    let start = message
        .find(&label)
        .unwrap_or_else(|| panic!("no {action} command in {message}"))
        + label.len();
    let end = start + message[start..].find('`').expect("closing backtick");
    let line = &message[start..end];
    let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("lumen-sidecar"),
        "{line}"
    );
    words.remove(0);
    words
}

fn run_scenario(world: &World, sc: Scenario, setup: fn(&RunApi, &SlackApi)) -> Ended {
    let (run, slack) = world.real.block_on(async {
        (
            run_api(PROJECT, REGION, SERVICE, revisions(world.t0), sc.serving).await,
            slack_api().await,
        )
    });
    setup(&run, &slack);
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (exit, status) = paused.block_on(async {
        let source = FleetReader {
            api: QueryApi::new(&world.api, None),
            service: SERVICE.into(),
            revision: None,
            config: SidecarConfig::default(),
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
            window: Duration::from_secs(120),
            interval: Duration::from_secs(15),
            approval_window: APPROVAL,
            require_approval: sc.require_approval,
            dry_run: sc.dry_run,
            rules: rules(),
            target_lookback: Duration::from_secs(7 * 86_400),
            api_url: format!("http://{addr}"),
            slack_buttons: sc.slack_clicks,
            rollout: None,
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
            minute_ms(world.t0, sc.start_minute),
        );
        let approvers = if sc.approvers {
            vec![
                ("ana".to_owned(), "t-ana".to_owned()),
                ("ben".to_owned(), "t-ben".to_owned()),
            ]
        } else {
            Vec::new()
        };
        let decisions = sc.slack_clicks.then(|| {
            // Ana by her id, Ben as a member of the on-call group.
            slack
                .state()
                .groups
                .insert("S0ONCALL".into(), vec!["U0BEN".into()]);
            std::sync::Arc::new(SlackDecisions::new(
                SIGNING_SECRET,
                SlackApprovers::parse(Some("U0ANA"), Some("S0ONCALL")).expect("valid"),
                Some((slack.base.clone(), BOT_TOKEN.to_owned())),
                OffClock::on(world.real.handle().clone()),
            ))
        });
        tokio::spawn(async move {
            axum::serve(
                listener,
                router(shared, commands, None, approvers, decisions),
            )
            .await
        });
        let watched = tokio::spawn(gate.run(true));
        if sc.command.is_some() || sc.once_open.is_some() {
            slack.wait_for(1).await;
            if let Some(set) = sc.once_open {
                set(&run, &slack);
            }
            if let Some(action) = sc.command {
                let message = slack.state().messages[0].blocks_text.clone();
                let mut args = command_from(&message, action);
                args.extend(["--by".into(), "ana".into()]);
                if sc.approvers {
                    // Ben's token, claiming to be ana: refused, nothing decided.
                    let mut as_ben = args.clone();
                    as_ben.extend(["--api-token".into(), "t-ben".into()]);
                    let out = tokio::task::spawn_blocking(move || {
                        Command::new(binary("lumen-sidecar"))
                            .args(&as_ben)
                            .output()
                            .expect("lumen-sidecar runs")
                    })
                    .await
                    .expect("the command ran");
                    assert_eq!(out.status.code(), Some(3));
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(err.contains("the token is ben's"), "{err}");
                    args.extend(["--api-token".into(), "t-ana".into()]);
                }
                let out = tokio::task::spawn_blocking(move || {
                    Command::new(binary("lumen-sidecar"))
                        .args(&args)
                        .output()
                        .expect("lumen-sidecar runs")
                })
                .await
                .expect("the command ran");
                assert!(
                    out.status.success(),
                    "{action}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if sc.slack_clicks {
            slack.wait_for(1).await;
            slack_clicks(world, &slack, addr).await;
        }
        let exit = watched.await.expect("the gate ran");
        if sc.slack_clicks {
            // After the window: a click changes nothing, and says so.
            let url = format!("http://{addr}/slack/interactions");
            let window = slack.state().buttons[0].2.clone();
            let late = slack.click_body(&Click {
                action_id: VETO_ACTION.into(),
                value: window,
                user: "U0ANA".into(),
                trigger_id: "trigger-late".into(),
                timestamp_s: now_ms() / 1000,
            });
            let before = slack.state().responses.len();
            let real = world.real.handle().clone();
            let status = tokio::task::spawn_blocking(move || {
                real.block_on(SlackApi::send_interaction(
                    &url,
                    SIGNING_SECRET,
                    now_ms() / 1000,
                    &late,
                    None,
                ))
            })
            .await
            .expect("sent");
            assert_eq!(status, 200);
            let (waiting, real) = (slack.clone(), world.real.handle().clone());
            tokio::task::spawn_blocking(move || {
                real.block_on(async {
                    let n = waiting.state().messages.len() + before + 1;
                    waiting.wait_for_total(n).await;
                })
            })
            .await
            .expect("answered");
            let answer = slack.state().responses[before].clone();
            assert_eq!(answer["response_type"], "ephemeral", "{answer}");
            assert!(
                answer["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Nothing changed")),
                "{answer}"
            );
        }
        let status = get_status(addr).await;
        (exit, status)
    });
    Ended {
        exit,
        status,
        run,
        slack,
    }
}

/// The Slack app's signing secret in the click scenario.
const SIGNING_SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

/// Runs `f` on the real runtime while the gate's paused clock holds still.
async fn on_real<T: Send + 'static>(
    world: &World,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let real = world.real.handle().clone();
    tokio::task::spawn_blocking(move || real.block_on(f))
        .await
        .expect("ran on the real runtime")
}

/// Clicks the window message's buttons as Slack would, at the gate at
/// `addr`: forged, stale and unlisted clicks change nothing; Ben (in the
/// approvers' group) approves; Slack's retry of his click is not taken twice.
async fn slack_clicks(world: &World, slack: &SlackApi, addr: SocketAddr) {
    let url = format!("http://{addr}/slack/interactions");
    let buttons = slack.state().buttons.clone();
    let window = buttons
        .iter()
        .find(|(_, action, _)| action == APPROVE_ACTION)
        .expect("an Approve button")
        .2
        .clone();
    assert!(
        buttons
            .iter()
            .any(|(_, a, v)| a == VETO_ACTION && *v == window),
        "{buttons:?}"
    );
    let click = |user: &str, trigger: &str| Click {
        action_id: APPROVE_ACTION.into(),
        value: window.clone(),
        user: user.into(),
        trigger_id: trigger.into(),
        timestamp_s: now_ms() / 1000,
    };
    let send = |body: String, secret: &'static [u8], at_s: u64, signature: Option<String>| {
        let url = url.clone();
        on_real(world, async move {
            SlackApi::send_interaction(&url, secret, at_s, &body, signature.as_deref()).await
        })
    };
    let ana = slack.click_body(&click("U0ANA", "trigger-forged"));
    let now_s = now_ms() / 1000;
    // Forged, signed with another secret, too old, or changed after
    // signing: 401, nothing changed, nothing answered.
    assert_eq!(
        send(ana.clone(), SIGNING_SECRET, now_s, Some("v0=00ff".into())).await,
        401
    );
    assert_eq!(
        send(ana.clone(), b"another app's secret", now_s, None).await,
        401
    );
    assert_eq!(
        send(ana.clone(), SIGNING_SECRET, now_s - 400, None).await,
        401
    );
    let signed_for_ana = slack_signature(SIGNING_SECRET, &now_s.to_string(), &ana);
    let tampered = ana.replace("U0ANA", "U0EVE");
    assert_eq!(
        send(tampered, SIGNING_SECRET, now_s, Some(signed_for_ana)).await,
        401
    );
    // Eve is no approver: taken, refused to her alone, nothing changed.
    let eve = slack.click_body(&click("U0EVE", "trigger-eve"));
    assert_eq!(send(eve, SIGNING_SECRET, now_ms() / 1000, None).await, 200);
    let (waiting, messages) = (slack.clone(), slack.state().messages.len());
    on_real(
        world,
        async move { waiting.wait_for_total(messages + 1).await },
    )
    .await;
    let refusal = slack.state().responses[0].clone();
    assert_eq!(refusal["response_type"], "ephemeral", "{refusal}");
    assert!(
        refusal["text"]
            .as_str()
            .is_some_and(|t| t.contains("not one of the gate's approvers")),
        "{refusal}"
    );
    assert_eq!(
        slack.state().responses.len(),
        1,
        "the refused clicks were never answered"
    );
    assert!(
        matches!(get_status(addr).await.state, GateState::Open(_)),
        "nothing changed"
    );
    // Ben approves; Slack sends his click again (a retry): taken once.
    let ben = slack.click_body(&click("U0BEN", "trigger-ben"));
    assert_eq!(
        send(ben.clone(), SIGNING_SECRET, now_ms() / 1000, None).await,
        200
    );
    assert_eq!(send(ben, SIGNING_SECRET, now_ms() / 1000, None).await, 200);
}

async fn get_status(addr: SocketAddr) -> GateStatus {
    let body = tokio::task::spawn_blocking(move || {
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("status");
    serde_json::from_str(&body).expect("a gate status")
}

fn thread_of(slack: &SlackApi) -> Vec<String> {
    let s = slack.state();
    let first = s.messages.first().map(|m| m.ts.clone());
    s.messages
        .iter()
        .skip(1)
        .map(|m| {
            assert_eq!(
                m.thread_ts, first,
                "a follow-up outside the window's thread: {}",
                m.text
            );
            m.text.clone()
        })
        .collect()
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

fn history_at(status: &GateStatus, what: &str) -> u64 {
    status
        .history
        .iter()
        .find(|h| h.what.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in {:?}", status.history))
        .at_ms
}

#[test]
fn the_gate_on_real_prometheus_data() {
    let world = world();

    // 1. A bad revision, the latest, serving through a LATEST entry with
    // two tagged URLs: the window opens after the 1-minute hold, ends after
    // 5 minutes without a veto, traffic moves to the newest older Ready
    // revision that served (not the idle or the broken one), verified; only
    // the traffic is patched (no template: no actAs needed), the tags stay.
    let e = run_scenario(&world, Scenario::on(BAD, 40), |run, _| {
        let mut s = run.state();
        s.revisions.truncate(4);
        s.latest_traffic = true;
        s.tags = vec![
            ("stable".into(), GOOD.into()),
            ("candidate".into(), BAD.into()),
        ];
    });
    no_violations(&e);
    assert_eq!(e.exit, GateExit::RolledBack, "{:?}", e.status);
    assert_eq!(e.run.state().serving, GOOD);
    assert!(!e.run.state().latest_traffic);
    assert_eq!(
        e.run.state().tags,
        vec![
            ("stable".to_owned(), GOOD.to_owned()),
            ("candidate".to_owned(), BAD.to_owned())
        ],
        "tagged URLs keep resolving"
    );
    assert!(
        e.run
            .state()
            .requests
            .iter()
            .filter(|r| r.starts_with("PATCH"))
            .all(|r| r.ends_with("?updateMask=traffic")),
        "{:?}",
        e.run.state().requests
    );
    assert_eq!(e.run.state().patches.len(), 1);
    assert_eq!(e.status.target.as_deref(), Some(GOOD));
    let opened = history_at(&e.status, "opened");
    let rolling = history_at(&e.status, "rolling back");
    assert!(opened >= 60_000, "held a minute first: {opened}");
    assert_eq!(
        rolling - opened,
        APPROVAL.as_millis() as u64,
        "rolled back at the window's end"
    );
    let first = e.slack.state().messages[0].blocks_text.clone();
    for needle in [
        BAD,
        GOOD,
        "slo_compliance: 50.0",
        "availability",
        "gate approve",
        "gate veto",
        "in 5 min unless vetoed",
    ] {
        assert!(first.contains(needle), "{needle:?} missing from {first}");
    }
    let thread = thread_of(&e.slack);
    assert_eq!(thread.len(), 1, "{thread:?}");
    assert!(
        thread[0].contains("Rolled back") && thread[0].contains("--to-latest"),
        "{thread:?}"
    );
    let report = e.status.rollback.as_ref().expect("a rollback report");
    assert_eq!(
        (report.from.as_str(), report.to.as_str(), report.conflicts),
        (BAD, GOOD, 0)
    );

    // 2. Vetoed with the command the message gives, by an approver the
    // token proves: no rollback, ever.
    let e = run_scenario(
        &world,
        Scenario {
            command: Some("veto"),
            approvers: true,
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::Holding);
    assert_eq!(e.run.state().serving, BAD);
    assert!(e.run.state().patches.is_empty());
    let thread = thread_of(&e.slack);
    assert!(
        thread.iter().any(|t| t.contains("vetoed by ana.")),
        "the token's holder, not a claim: {thread:?}"
    );

    // 3. Approved early: rolled back at once, long before the window's end.
    let e = run_scenario(
        &world,
        Scenario {
            command: Some("approve"),
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::RolledBack);
    assert_eq!(e.run.state().serving, GOOD);
    let opened = history_at(&e.status, "opened");
    let rolling = history_at(&e.status, "rolling back");
    assert!(
        rolling - opened < 15_000,
        "approved before the next reading: {}",
        rolling - opened
    );
    // Without approvers, the record says the name was only claimed.
    assert!(
        thread_of(&e.slack)
            .iter()
            .any(|t| t.contains("approved by ana (claimed)"))
    );

    // 3b. Approved from Slack by who the signature proves: forged, stale,
    // tampered and unlisted clicks change nothing; a group member's click
    // rolls back, its retry is not taken twice, and the message loses its
    // buttons; a click after the window is refused.
    let e = run_scenario(
        &world,
        Scenario {
            require_approval: true,
            slack_clicks: true,
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::RolledBack, "{:?}", e.status.history);
    assert_eq!(e.run.state().serving, GOOD);
    assert_eq!(e.run.state().patches.len(), 1, "one rollback");
    assert!(
        thread_of(&e.slack)
            .iter()
            .any(|t| t.contains("approved by u0ben (Slack user U0BEN)")),
        "{:?}",
        thread_of(&e.slack)
    );
    let responses = e.slack.state().responses.clone();
    let replaced: Vec<_> = responses
        .iter()
        .filter(|r| r["replace_original"] == true)
        .collect();
    assert_eq!(replaced.len(), 1, "{responses:?}");
    assert!(
        replaced[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("rollback approved by u0ben")),
        "{responses:?}"
    );
    assert!(
        replaced[0]["blocks"]
            .as_array()
            .is_some_and(|b| b.iter().all(|b| b["type"] != "actions")),
        "the buttons are gone: {responses:?}"
    );
    assert_eq!(
        responses.len(),
        3,
        "Eve's refusal, Ben's decision, the late click's refusal"
    );

    // 4. Approval required and none comes: escalation, no rollback.
    let e = run_scenario(
        &world,
        Scenario {
            require_approval: true,
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::Holding);
    assert!(e.run.state().patches.is_empty());
    let first = e.slack.state().messages[0].blocks_text.clone();
    assert!(first.contains("only if approved"), "{first}");
    let thread = thread_of(&e.slack);
    assert!(
        thread
            .iter()
            .any(|t| t.contains("<!here>") && t.contains("No rollback was made")),
        "{thread:?}"
    );

    // A dry run decides the same and changes nothing.
    let e = run_scenario(
        &world,
        Scenario {
            dry_run: true,
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::Holding);
    assert!(e.run.state().patches.is_empty());
    assert_eq!(e.run.state().serving, BAD);
    let thread = thread_of(&e.slack);
    assert!(
        thread
            .iter()
            .any(|t| t.contains("Dry run") && t.contains(GOOD)),
        "{thread:?}"
    );

    // 5. A trigger that clears inside the window: it closes, nothing rolls back.
    let e = run_scenario(&world, Scenario::on(BLIP, 31), |_, _| {});
    no_violations(&e);
    assert_eq!(e.exit, GateExit::Healthy, "{:?}", e.status.history);
    assert!(e.run.state().patches.is_empty());
    let closed = history_at(&e.status, "closed: Cleared");
    let opened = history_at(&e.status, "opened");
    assert!(closed - opened < APPROVAL.as_millis() as u64);
    assert!(thread_of(&e.slack).iter().any(|t| t.contains("cleared")));

    // 6. Thin traffic holds the gate: no window, no rollback, exit 3.
    let e = run_scenario(&world, Scenario::on(THIN, 40), |_, _| {});
    no_violations(&e);
    assert_eq!(e.exit, GateExit::NoData);
    assert!(e.slack.state().messages.is_empty());
    assert!(e.run.state().patches.is_empty());
    assert!(
        e.status.readings.iter().all(|(_, r)| !r.holds()),
        "{:?}",
        e.status.readings
    );

    // 7. Slack failing in passing (two 500s): retried, then posted; the
    // rollback goes ahead.
    let e = run_scenario(&world, Scenario::on(BAD, 40), |_, slack| {
        slack.state().fail_next = 2;
    });
    no_violations(&e);
    assert_eq!(e.exit, GateExit::RolledBack);
    assert_eq!(e.slack.state().failed_posts, 2);
    assert_eq!(e.slack.state().messages.len(), 2);
    assert!(e.status.slack_failures.is_empty());

    // Slack refusing for good: reported in the status, the rollback still made.
    let e = run_scenario(&world, Scenario::on(BAD, 40), |_, slack| {
        slack.state().refuse_all = true;
    });
    assert_eq!(e.exit, GateExit::RolledBack);
    assert_eq!(
        e.status.slack_failures.len(),
        2,
        "{:?}",
        e.status.slack_failures
    );
    assert!(e.status.slack_failures[0].contains("channel_not_found"));

    // 8. The Run API: a stale etag (400 FAILED_PRECONDITION, as AIP-154
    // allows) re-reads and re-decides; 503s are retried.
    let e = run_scenario(
        &world,
        Scenario {
            once_open: Some(|run, _| {
                let mut s = run.state();
                s.conflicts_left = 1;
                s.unavailable_left = 2;
            }),
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::RolledBack);
    assert_eq!(e.status.rollback.as_ref().map(|r| r.conflicts), Some(1));
    assert_eq!(e.run.state().serving, GOOD);
    let patches = e
        .run
        .state()
        .requests
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    assert_eq!(patches, 2, "{:?}", e.run.state().requests);

    // A PATCH that landed but whose answer was lost (500), then a stale
    // etag on the retry: the service read back decides, and it is done.
    let e = run_scenario(
        &world,
        Scenario {
            once_open: Some(|run, _| run.state().apply_then_fail = true),
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::RolledBack, "{:?}", e.status);
    assert_eq!(e.run.state().serving, GOOD);
    let thread = thread_of(&e.slack);
    assert!(
        thread.iter().any(|t| t.contains("Rolled back")),
        "{thread:?}"
    );

    // A failed operation: reported as failed, never as done; traffic unchanged.
    let e = run_scenario(
        &world,
        Scenario {
            once_open: Some(|run, _| run.state().fail_operation = true),
            ..Scenario::on(BAD, 40)
        },
        |_, _| {},
    );
    no_violations(&e);
    assert_eq!(e.exit, GateExit::NoData);
    assert_eq!(e.run.state().serving, BAD);
    let thread = thread_of(&e.slack);
    assert!(
        thread
            .iter()
            .any(|t| t.contains("FAILED") && t.contains("not ready")),
        "{thread:?}"
    );
    assert!(
        !thread.iter().any(|t| t.contains("Rolled back")),
        "{thread:?}"
    );
    assert!(e.status.rollback.is_none());

    // 9. The command line: `gate watch --once` as a post-deploy check.
    cli_checks(&world);
}

fn gate_cli(world: &World, run: &RunApi, slack: &SlackApi, extra: &[&str]) -> Command {
    let mut cmd = Command::new(binary("lumen-sidecar"));
    cmd.args([
        "gate",
        "watch",
        "--once",
        "--service",
        SERVICE,
        "--region",
        REGION,
        "--project",
        PROJECT,
    ])
    .args(["--prometheus", &world.api, "--run-api-base", &run.base])
    .args(["--slack-channel", CHANNEL, "--slack-api-base", &slack.base])
    .args([
        "--window",
        "2m",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .args(extra)
    .env("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN)
    .env_remove("GCE_METADATA_HOST")
    .env("SLACK_BOT_TOKEN", BOT_TOKEN)
    .env_remove("LUMEN_CONFIG")
    .env_remove("SLACK_WEBHOOK_URL");
    cmd
}

fn cli_checks(world: &World) {
    let at = |minute: u64| minute_ms(world.t0, minute).to_string();
    // Healthy: exit 0 at the first reading.
    let (run, slack) = world.real.block_on(async {
        (
            run_api(PROJECT, REGION, SERVICE, revisions(world.t0), GOOD).await,
            slack_api().await,
        )
    });
    let out = gate_cli(world, &run, &slack, &["--replay-from", &at(40)])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(GOOD) && text.contains("slo_compliance: 100.0"),
        "{text}"
    );
    // Thin: exit 3.
    let (run, slack) = world.real.block_on(async {
        (
            run_api(PROJECT, REGION, SERVICE, revisions(world.t0), THIN).await,
            slack_api().await,
        )
    });
    let out = gate_cli(world, &run, &slack, &["--replay-from", &at(40), "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    let status: GateStatus = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert!(
        status
            .readings
            .iter()
            .any(|(_, r)| matches!(r, lumen_sidecar::gate::Reading::Thin { .. }))
    );
    // A bad revision, approved with the message's command after the gate's
    // token expired (tokens from the metadata server live an hour; the
    // rollback falls due later): the refused call renews the token and the
    // rollback lands, exit 2.
    let (run, slack) = world.real.block_on(async {
        (
            run_api(PROJECT, REGION, SERVICE, revisions(world.t0), BAD).await,
            slack_api().await,
        )
    });
    let authority = run.authority();
    let metadata = world
        .real
        .block_on(metadata_server(authority.clone(), PROJECT));
    let mut child = gate_cli(
        world,
        &run,
        &slack,
        &[
            "--replay-from",
            &at(40),
            "--hold-for",
            "0s",
            "--interval",
            "1s",
            "--approval-window",
            "10m",
        ],
    )
    .env_remove("GOOGLE_OAUTH_ACCESS_TOKEN")
    .env("GCE_METADATA_HOST", &metadata)
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("runs");
    world.real.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), slack.wait_for(1))
            .await
            .expect("the window's message within a minute");
    });
    assert!(
        run.state().requests.iter().any(|r| r.starts_with("GET")),
        "the gate read the service with its first token"
    );
    let issued_before = authority.issued();
    authority.expire_all();
    let message = slack.state().messages[0].blocks_text.clone();
    let out = Command::new(binary("lumen-sidecar"))
        .args(command_from(&message, "approve"))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = child.wait().expect("the gate ends");
    assert_eq!(status.code(), Some(2));
    assert_eq!(run.state().serving, GOOD);
    assert!(
        authority.expired_refusals() >= 1 && authority.issued() > issued_before,
        "the expired token was refused ({}) and a new one fetched ({} -> {})",
        authority.expired_refusals(),
        issued_before,
        authority.issued()
    );
    assert!(
        run.state().violations.is_empty(),
        "{:?}",
        run.state().violations
    );
    // Approving with no gate listening: refused, exit 3, with the reason.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(binary("lumen-sidecar"))
        .args(["gate", "approve", "--url", &url, "--window", "w-1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer"));
    // Without naming the window: refused before anything is sent.
    let out = Command::new(binary("lumen-sidecar"))
        .args(["gate", "veto", "--url", &url])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--window"));
    // Off loopback without a token, the gate does not start.
    let out = Command::new(binary("lumen-sidecar"))
        .args([
            "gate",
            "watch",
            "--service",
            "mentor-api",
            "--region",
            "europe-west1",
            "--project",
            "p",
            "--prometheus",
            &url,
            "--listen",
            "0.0.0.0:0",
            "--once",
        ])
        .env_remove("LUMEN_GATE_TOKEN")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_gate_page_says_what_each_once_exit_means() {
    let readme =
        std::fs::read_to_string(lumen_tests::workspace_root().join("docs/rollback-gate.md"))
            .expect("the gate page");
    for exit in GateExit::ALL {
        let line = format!("- **{}** {}", exit.code(), exit.meaning());
        assert!(
            readme.contains(&line),
            "docs/rollback-gate.md lacks {line:?}"
        );
    }
    assert!(
        !readme.contains("**1** a\ntrigger holding"),
        "a holding trigger is no answer: the gate reads on"
    );
}
