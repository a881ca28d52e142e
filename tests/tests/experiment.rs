//! A/B experiments end to end with real processes: the example API (its
//! answers cached in a real Redis, its TTL read through
//! `tuning().param("answer_ttl_s")`), its sidecar, and the
//! `lumen-sidecar experiment` commands.
//!
//! - Every request the app serves under the experiment lands in exactly one
//!   arm: the arms add up to the requests sent and to the sidecar's count
//!   of the route; the counts survive a sidecar restart (the checkpoint);
//!   `status` shows the decision report and `stop` keeps A.
//! - With looks every second in `apply` mode, a TTL of 60 s beats 1 s on
//!   the cache hit rate, the decision is kept with its always-valid
//!   interval, and the winning TTL reaches the app on the tuning channel.

use std::process::{Command, Output};
use std::time::Duration;

use lumen_tests::json_client::JsonClient;
use lumen_tests::{ApiProc, RedisProc, SidecarProc, binary, eventually, free_port, get_ok};
use serde_json::Value;

const ASK: &str = "/api/v1/mentor/ask";

async fn experiments(sidecar: &SidecarProc) -> Value {
    serde_json::from_str(&get_ok(&format!("{}/v1/experiments", sidecar.base())).await)
        .expect("JSON")
}

async fn app_cache(api: &ApiProc) -> Value {
    serde_json::from_str(&get_ok(&format!("{}/api/v1/cache", api.base)).await).expect("JSON")
}

fn cli(sidecar: &SidecarProc, args: &[&str]) -> Output {
    Command::new(binary("lumen-sidecar"))
        .arg("experiment")
        .args(args)
        .args(["--url", &sidecar.base()])
        .env_remove("LUMEN_AUTH_TOKEN")
        .output()
        .expect("the CLI runs")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// The arms' assigned requests.
fn assigned(e: &Value) -> [u64; 2] {
    [0, 1].map(|i| {
        let c = &e["arms"][i]["counts"];
        c["requests"].as_u64().expect("requests") + c["cancelled"].as_u64().expect("cancelled")
    })
}

/// The route's requests as the sidecar counts them (every arm and none).
async fn route_requests(sidecar: &SidecarProc) -> u64 {
    let slo = sidecar.slo("1h").await;
    slo["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["route"] == ASK)
        .and_then(|r| r["requests"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_lands_in_one_arm_and_the_counts_survive_a_restart() {
    let redis = RedisProc::start().await;
    let dir = std::env::temp_dir().join(format!("lumen-e2e-experiment-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let snapshot = dir.join("lumen.snapshot");
    let port = free_port();
    let env = [
        ("LUMEN_SNAPSHOT_PATH", snapshot.to_str().expect("utf-8")),
        // No look during the count: the experiment stays open.
        ("LUMEN_EXPERIMENT_CHECK_INTERVAL", "1h"),
    ];
    let sidecar = SidecarProc::start(port, &env).await;
    let api = ApiProc::start(
        sidecar.addr,
        &[("REDIS_URL", redis.url.as_str()), ("CACHE_TTL", "1s")],
    )
    .await;

    let start = [
        "start",
        "--param",
        "answer_ttl_s",
        "--a",
        "1",
        "--b",
        "60",
        "--duration",
        "10m",
    ];
    let started = cli(&sidecar, &start);
    assert_eq!(started.status.code(), Some(0), "{}", text(&started.stderr));
    assert!(
        text(&started.stdout)
            .starts_with("experiment 1 started: answer_ttl_s = 1 (A) against 60 (B), B gets 50 %"),
        "{}",
        text(&started.stdout)
    );
    // One at a time: a second start is refused with the reason, exit 3.
    let again = cli(&sidecar, &start);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        text(&again.stderr).contains("experiment 1 on answer_ttl_s is running"),
        "{}",
        text(&again.stderr)
    );
    // A bad start names its field.
    let bad = cli(&sidecar, &["start", "--param", "x", "--a", "1", "--b", "1"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        text(&bad.stderr).contains("the arms must differ"),
        "{}",
        text(&bad.stderr)
    );

    // The app hears of it on its next ingest answer.
    eventually(
        "the app running experiment 1",
        Duration::from_secs(20),
        || {
            let api = &api;
            async move { (app_cache(api).await["experiment"] == 1).then_some(()) }
        },
    )
    .await;

    // 400 requests: 200 questions, each asked twice.
    let client = JsonClient::default();
    let sent = 400;
    for _round in 0..2 {
        for q in 0..200 {
            client
                .post_json(
                    &format!("{}{ASK}", api.base),
                    &format!("{{\"question\":\"experiment question {q}\"}}"),
                )
                .await;
        }
    }
    let running = eventually("the arms to add up to 400", Duration::from_secs(30), || {
        let s = &sidecar;
        async move {
            let x = experiments(s).await;
            let e = x["running"].clone();
            (assigned(&e).iter().sum::<u64>() == sent).then_some(e)
        }
    })
    .await;
    assert_eq!(
        route_requests(&sidecar).await,
        sent,
        "no request outside the arms"
    );
    let [a, b] = assigned(&running);
    assert!(a > 0 && b > 0, "both arms served: {a} / {b}");
    for arm in [0, 1] {
        let c = &running["arms"][arm]["counts"];
        // Each request made one lookup, and was assigned by its question.
        assert_eq!(c["lookups"], c["requests"], "{c}");
        assert_eq!(c["assigned_by_key"], c["requests"], "{c}");
        assert_eq!(c["assigned_random"], 0, "{c}");
    }
    // A question keeps its arm: asked twice, its second lookup is in the
    // same arm, where the 60 s TTL keeps the first answer.
    assert!(
        running["arms"][1]["counts"]["hits"].as_u64() >= Some(b / 2 - 1),
        "{running}"
    );

    // A restart keeps the experiment and its counts (the checkpoint).
    assert_eq!(sidecar.proc.terminate(), Some(0));
    let sidecar = SidecarProc::start(port, &env).await;
    let restored = experiments(&sidecar).await["running"].clone();
    assert_eq!(restored["id"], 1, "{restored}");
    assert_eq!(assigned(&restored), [a, b]);
    for arm in [0, 1] {
        let (now, then) = (&restored["arms"][arm], &running["arms"][arm]);
        assert_eq!(now["counts"], then["counts"]);
        assert_eq!(
            (&now["p95_ms"], &now["p99_ms"]),
            (&then["p95_ms"], &then["p99_ms"])
        );
    }

    // status prints the decision report; stop keeps A.
    let status = cli(&sidecar, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let shown = text(&status.stdout);
    assert!(
        shown.contains("### Experiment 1: `answer_ttl_s` 1 (A) against 60 (B): running"),
        "{shown}"
    );
    let stopped = cli(&sidecar, &["stop"]);
    assert_eq!(stopped.status.code(), Some(0), "{}", text(&stopped.stderr));
    assert_eq!(
        text(&stopped.stdout),
        "experiment 1 stopped; answer_ttl_s stays 1\n"
    );
    let x = experiments(&sidecar).await;
    assert!(x["running"].is_null());
    let decided = &x["decided"][0];
    assert_eq!(decided["outcome"]["kind"], "stopped");
    assert_eq!(decided["kept_value"], 1);
    assert_eq!(decided["applied"], false, "not in apply mode");
    let md = get_ok(&format!(
        "{}/v1/experiments?format=markdown",
        sidecar.base()
    ))
    .await;
    assert!(
        md.contains(&format!("| requests assigned | {a} | {b} |")),
        "{md}"
    );
    assert!(md.contains("Sample ratio: not tested"), "{md}");
    let none = cli(&sidecar, &["stop"]);
    assert_eq!(none.status.code(), Some(3));
    assert!(text(&none.stderr).contains("no experiment is running"));
    // The app hears that it stopped.
    eventually(
        "the app without an experiment",
        Duration::from_secs(20),
        || {
            let api = &api;
            async move { app_cache(api).await["experiment"].is_null().then_some(()) }
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winner_is_decided_on_live_traffic_and_reaches_the_app() {
    let redis = RedisProc::start().await;
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("LUMEN_FEEDBACK_MODE", "apply"),
            ("LUMEN_FEEDBACK_INTERVAL", "1h"),
            ("LUMEN_EXPERIMENT_CHECK_INTERVAL", "1s"),
        ],
    )
    .await;
    let api = ApiProc::start(
        sidecar.addr,
        &[("REDIS_URL", redis.url.as_str()), ("CACHE_TTL", "1s")],
    )
    .await;
    let client = JsonClient::default();
    let answer = client
        .post_json(
            &format!("{}/v1/experiments", sidecar.base()),
            r#"{"param": "answer_ttl_s", "a": 1, "b": 60, "duration": "10m", "tau": 0.2}"#,
        )
        .await;
    let started: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(started["spec"]["tau"], 0.2);
    eventually(
        "the app running the experiment",
        Duration::from_secs(20),
        || {
            let api = &api;
            async move { app_cache(api).await["experiment"].is_number().then_some(()) }
        },
    )
    .await;

    // 150 questions in turn, one every 10 ms: a question comes back every
    // 1.5 s, after A's 1 s TTL and well within B's 60 s.
    let load = {
        let (client, base) = (client.clone(), api.base.clone());
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(10));
            for n in 0_u64.. {
                pace.tick().await;
                client
                    .post_json(
                        &format!("{base}{ASK}"),
                        &format!("{{\"question\":\"winner question {}\"}}", n % 150),
                    )
                    .await;
            }
        })
    };
    let decided = eventually("a decision", Duration::from_secs(90), || {
        let s = &sidecar;
        async move {
            let x = experiments(s).await;
            x["decided"][0].is_object().then(|| x["decided"][0].clone())
        }
    })
    .await;
    assert_eq!(decided["outcome"]["kind"], "winner", "{decided}");
    assert_eq!(decided["outcome"]["arm"], "b", "{decided}");
    assert_eq!(
        (decided["kept_value"].as_u64(), decided["applied"].as_bool()),
        (Some(60), Some(true))
    );
    let primary = &decided["verdict"]["primary"];
    assert_eq!(primary["metric"], "cache_hit_rate");
    assert!(
        primary["difference"]["low"].as_f64() > Some(0.0),
        "{primary}"
    );
    assert!(
        primary["b_percent"].as_f64() > primary["a_percent"].as_f64(),
        "{primary}"
    );
    let guardrails: Vec<&str> = decided["verdict"]["guardrails"]
        .as_array()
        .expect("guardrails")
        .iter()
        .map(|g| g["metric"].as_str().expect("name"))
        .collect();
    assert_eq!(
        guardrails,
        ["error_rate", "under_p95_target", "under_p99_target"]
    );
    assert!(
        decided["timeline"].as_array().map(Vec::len) >= Some(1),
        "{decided}"
    );
    // The winning TTL reaches the app; the experiment is over there.
    eventually(
        "the app on the winning TTL",
        Duration::from_secs(20),
        || {
            let api = &api;
            async move {
                let c = app_cache(api).await;
                (c["experiment"].is_null() && c["ttl_param_fixed_s"] == 60).then_some(())
            }
        },
    )
    .await;
    load.abort();
    // The report carries the decision.
    let report = get_ok(&format!("{}/v1/report", sidecar.base())).await;
    assert!(
        report.contains("## Experiments (this instance's requests; mode apply)"),
        "{report}"
    );
    assert!(report.contains("B wins on cache_hit_rate"), "{report}");
    assert!(
        report.contains("Kept: `answer_ttl_s` = 60 (set on the tuning channel)."),
        "{report}"
    );
}

/// A batch of one instance's requests in experiment 1's arms: `a` and `b`
/// requests, half of each a cache hit, assigned at random.
fn arms_batch(instance: &str, seq: u64, a: u64, b: u64) -> String {
    use lumen_middleware::wire::Arm;
    use lumen_tests::arm_batch::{ArmLoad, arm_batch};
    let load = |arm, requests: u64| ArmLoad {
        arm,
        requests,
        hits: requests / 2,
    };
    let batch = arm_batch(
        instance,
        seq,
        "fleet-api",
        ASK,
        1,
        &[load(Arm::A, a), load(Arm::B, b)],
    );
    serde_json::to_string(&batch).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_runs_one_experiment_on_every_instances_requests() {
    let redis = RedisProc::start().await;
    let env = |instance: &'static str| {
        [
            ("LUMEN_FLEET_REDIS_URL", redis.url.clone()),
            ("LUMEN_FLEET_WRITE_INTERVAL", "1s".to_owned()),
            ("LUMEN_FLEET_INSTANCE", instance.to_owned()),
            ("LUMEN_EXPERIMENT_CHECK_INTERVAL", "1s".to_owned()),
            ("LUMEN_SERVICE", "fleet-api".to_owned()),
            // An instance costs 1 USD a second, a miss nothing.
            ("LUMEN_COST_INSTANCE_VCPU", "1".to_owned()),
            ("LUMEN_COST_VCPU_SECOND_USD", "1".to_owned()),
            ("LUMEN_COST_INSTANCE_MEMORY_GIB", "0".to_owned()),
            ("LUMEN_ROI_COST_PER_MISS_USD", "0".to_owned()),
        ]
    };
    let start = |instance: &'static str| {
        let env = env(instance);
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            SidecarProc::start(free_port(), &env).await
        }
    };
    let (one, two) = (start("sidecar-1").await, start("sidecar-2").await);
    let client = JsonClient::default();
    // Started through one sidecar, it runs on both.
    client
        .post_json(
            &format!("{}/v1/experiments", one.base()),
            r#"{"param": "answer_ttl_s", "a": 60, "b": 600, "duration": "1h"}"#,
        )
        .await;
    eventually(
        "the second sidecar running it",
        Duration::from_secs(20),
        || {
            let s = &two;
            async move {
                let x = experiments(s).await;
                (x["running"]["id"] == 1 && x["scope"] == "fleet").then_some(())
            }
        },
    )
    .await;
    // Each sidecar's app served some requests in the arms; the second's
    // ingest answer carries the arms too.
    let ack = client
        .post_json(
            &format!("{}/v1/ingest", one.base()),
            &arms_batch("app-1", 1, 40, 45),
        )
        .await;
    assert!(ack.contains("\"applied_seq\":1"), "{ack}");
    let ack: Value = serde_json::from_str(
        &client
            .post_json(
                &format!("{}/v1/ingest", two.base()),
                &arms_batch("app-2", 1, 30, 35),
            )
            .await,
    )
    .expect("JSON");
    assert_eq!(ack["tuning"]["experiment"]["id"], 1, "{ack}");
    // Both serve the fleet's sums, looked at once a second by one of them.
    for sidecar in [&one, &two] {
        eventually("the fleet's sums", Duration::from_secs(30), || async move {
            let e = experiments(sidecar).await["running"].clone();
            (assigned(&e) == [70, 80]).then_some(())
        })
        .await;
    }
    let running = experiments(&two).await["running"].clone();
    let looks: Vec<u64> = running["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|l| l["at_ms"].as_u64().expect("a time"))
        .collect();
    assert!(looks.len() >= 2, "{running}");
    assert!(
        looks.windows(2).all(|w| w[1] - w[0] >= 900),
        "one look a second for the fleet, not one per sidecar: {looks:?}"
    );
    // Stopped through the other sidecar: decided on the fleet's sums, and
    // both say so.
    let stopped: Value = serde_json::from_str(
        &client
            .post_json(&format!("{}/v1/experiments/stop", two.base()), "")
            .await,
    )
    .expect("JSON");
    assert_eq!(assigned(&stopped), [70, 80], "{stopped}");
    assert_eq!(stopped["outcome"]["kind"], "stopped");
    // A request's cost is every instance's time in the experiment (as the
    // store has it) over the fleet's 150 requests: at most both sidecars'
    // whole experiment, where this sidecar's own time over its own 65
    // requests would be 2.3 times that.
    let per_request = [0, 1].map(|i| {
        stopped["arms"][i]["cost_per_request_usd"]
            .as_f64()
            .unwrap_or_else(|| panic!("a fleet cost per request: {stopped}"))
    });
    assert_eq!(per_request[0], per_request[1], "no miss cost: {stopped}");
    let lasted_s = (stopped["decided_ms"].as_u64().expect("decided")
        - stopped["started_ms"].as_u64().expect("started")) as f64
        / 1000.0;
    assert!(
        (0.0..=2.0 * lasted_s + 1e-9).contains(&(per_request[0] * 150.0)),
        "{} USD over {lasted_s} s: {stopped}",
        per_request[0] * 150.0
    );
    eventually(
        "the first sidecar seeing the stop",
        Duration::from_secs(20),
        || {
            let s = &one;
            async move {
                let x = experiments(s).await;
                (x["running"].is_null() && x["decided"][0]["id"] == 1).then_some(())
            }
        },
    )
    .await;
    let ack: Value = serde_json::from_str(
        &client
            .post_json(
                &format!("{}/v1/ingest", one.base()),
                &arms_batch("app-1", 2, 5, 5),
            )
            .await,
    )
    .expect("JSON");
    assert!(ack["tuning"]["experiment"].is_null(), "{ack}");
    // Requests an app served in an arm before it heard of the stop still
    // count in the decided experiment, summed over the fleet.
    for sidecar in [&one, &two] {
        eventually(
            "the stragglers in the fleet's sums",
            Duration::from_secs(30),
            || async move {
                let e = experiments(sidecar).await["decided"][0].clone();
                (assigned(&e) == [75, 85]).then_some(())
            },
        )
        .await;
    }
}
