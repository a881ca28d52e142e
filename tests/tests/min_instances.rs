//! Min instances end to end: a fleet's instance lifetimes in a real Redis
//! (the fleet store, as sidecars write it), `tune apply --min-instances` as
//! a process against a Cloud Run Admin API stand-in that checks every
//! request: the advice from the cold starts, a dry run that changes
//! nothing, the patch with the etag, the operation polled and verified,
//! the floor respected, a refused patch reported.

use std::process::Command;

use lumen_sidecar::app::now_ms;
use lumen_sidecar::fleet::store::{FleetKeys, InstanceInfo, encode};
use lumen_tests::cloud_run_api::{StandInRevision, TOKEN, run_api};
use lumen_tests::{RedisProc, binary};
use serde_json::Value;

const SERVICE: &str = "burst-api";
const MINUTE: u64 = 60_000;

fn info(started_ms: u64, last_seen_ms: u64) -> Vec<u8> {
    encode(&InstanceInfo {
        last_seen_ms,
        revision: Some("burst-api-00001-a".into()),
        deployments_7d: None,
        cpu_utilisation: None,
        memory_utilisation: None,
        started_ms: Some(started_ms),
        cost_usd_per_s: Some(0.0000195),
        cache_totals: Default::default(),
        cold_p95_ms: Some(850.0),
        warm_p95_ms: Some(40.0),
        experiment_counts: Default::default(),
    })
}

fn tune(redis: &str, run_base: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary("lumen-sidecar"))
        .args(["tune", "apply", "--min-instances", "--fleet-redis", redis])
        .args([
            "--service",
            SERVICE,
            "--project",
            "p",
            "--region",
            "europe-west1",
        ])
        .args(["--run-api-base", run_base])
        .args(extra)
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN)
        .env_remove("LUMEN_CONFIG")
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_starts_give_the_min_instances_and_tune_apply_sets_them() {
    let redis = RedisProc::start().await;
    let client = redis::Client::open(redis.url.as_str()).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    // Six hours: two instances throughout (running now), twelve bursts
    // each starting a third for 10 minutes, four of them also a fourth.
    let now = now_ms();
    let start = now - 360 * MINUTE;
    let key = FleetKeys::new(SERVICE).instances();
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("a".into(), info(start, now)),
        ("b".into(), info(start, now)),
    ];
    for burst in 0..12u64 {
        let at = start + 20 * MINUTE + burst * 25 * MINUTE;
        fields.push((format!("c{burst}"), info(at, at + 10 * MINUTE)));
        if burst % 3 == 0 {
            fields.push((format!("d{burst}"), info(at + MINUTE, at + 9 * MINUTE)));
        }
    }
    for (field, bytes) in &fields {
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg(field)
            .arg(bytes.as_slice())
            .query_async(&mut con)
            .await
            .expect("HSET");
    }
    let run = run_api(
        "p",
        "europe-west1",
        SERVICE,
        vec![StandInRevision {
            name: "burst-api-00001-a".into(),
            create_time: "2026-11-30T10:00:00.000000Z".into(),
            ready: true,
        }],
        "burst-api-00001-a",
    )
    .await;

    // The advice: 18 cold starts (2 + 12 + 4); 3 warm avoid 14 (78 %),
    // 4 avoid all 18: the recommendation for 90 %.
    let (code, out, err) = tune(&redis.url, &run.base, &["--json"]);
    assert_eq!(code, Some(0), "{err}");
    let json_end = out.rfind('}').expect("JSON") + 1;
    let advice: Value = serde_json::from_str(&out[..json_end]).expect("advice JSON");
    assert_eq!(advice["cold_starts"], 18, "{advice}");
    assert_eq!(advice["peak_instances"], 4);
    // The evidence that cold starts hurt: first minutes against warm ones.
    assert_eq!(
        (
            advice["cold_p95_ms"].as_f64(),
            advice["warm_p95_ms"].as_f64()
        ),
        (Some(850.0), Some(40.0))
    );
    assert_eq!(advice["recommended"], 4);
    let three = advice["options"]
        .as_array()
        .expect("options")
        .iter()
        .find(|o| o["min_instances"] == 3)
        .expect("3");
    assert_eq!(three["cold_starts_avoided"], 14);
    // A fourth warm instance idles 6 h less its four 8-minute bursts.
    let four = advice["options"]
        .as_array()
        .expect("options")
        .iter()
        .find(|o| o["min_instances"] == 4)
        .expect("4");
    let idle_s = ((360 - 12 * 10) * 60 + (360 - 4 * 8) * 60) as f64;
    let expected = idle_s * 0.000_019_5 * 30.0 * 86_400.0 / (360.0 * 60.0);
    let got = four["extra_monthly_usd"].as_f64().expect("cost");
    assert!(
        (got - expected).abs() / expected < 0.01,
        "{got} vs {expected}"
    );
    // A dry run by default: nothing sent but reads.
    assert!(
        out.contains("dry run: would PATCH") && out.contains("minInstanceCount = 4"),
        "{out}"
    );
    assert!(
        run.state().requests.iter().all(|r| r.starts_with("GET")),
        "{:?}",
        run.state().requests
    );
    assert_eq!(run.state().min_instances, None);

    // --confirm: patched with the etag, the operation polled, verified.
    let (code, out, err) = tune(&redis.url, &run.base, &["--confirm"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("set scaling.minInstanceCount = 4") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(run.state().min_instances, Some(4));
    assert!(
        run.state().violations.is_empty(),
        "{:?}",
        run.state().violations
    );

    // Never below the floor.
    let (code, out, _) = tune(&redis.url, &run.base, &["--floor", "6", "--confirm"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Min instances for burst-api: 6"), "{out}");
    assert_eq!(run.state().min_instances, Some(6));

    // A failed operation: reported, exit 3, the setting unchanged.
    run.state().fail_operation = true;
    let (code, _, err) = tune(&redis.url, &run.base, &["--floor", "8", "--confirm"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("failed"), "{err}");
    assert_eq!(run.state().min_instances, Some(6));
    // Without --min-instances there is nothing to apply.
    let out = Command::new(binary("lumen-sidecar"))
        .args([
            "tune",
            "apply",
            "--fleet-redis",
            &redis.url,
            "--service",
            SERVICE,
        ])
        .args(["--project", "p", "--region", "r"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--min-instances"));
}
