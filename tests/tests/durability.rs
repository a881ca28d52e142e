//! Nothing acknowledged is ever lost: the sidecar killed with SIGKILL at
//! random points of a known load and restarted over its state directory,
//! and a state directory that cannot be written, against the middleware's
//! real shipper.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_tests::*;
use rand::{Rng, SeedableRng};

const SERVICE: &str = "durable-api";

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lumen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

async fn start(port: u16, dir: &Path) -> SidecarProc {
    SidecarProc::start(
        port,
        &[
            ("LUMEN_STATE_DIR", dir.to_str().expect("utf-8")),
            // Checkpoints (and the log's truncation) happen during the load too.
            ("LUMEN_SNAPSHOT_INTERVAL", "1s"),
        ],
    )
    .await
}

/// Requests in the sidecar's window.
async fn requests(sidecar: &SidecarProc) -> Option<u64> {
    let (status, body) = try_get(&format!("{}/v1/slo?window=1h", sidecar.base())).await?;
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200).then(|| doc["requests"].as_u64()).flatten()
}

/// A counter of the sidecar's `/metrics`, 0 when absent.
async fn counter(sidecar: &SidecarProc, name: &str) -> u64 {
    let text = get_ok(&format!("{}/metrics", sidecar.base())).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

fn shipper_config(port: u16) -> LumenConfig {
    let mut c = LumenConfig::default();
    c.service = SERVICE.into();
    c.sidecar_url = format!("http://127.0.0.1:{port}/v1/ingest");
    c.interval = Duration::from_millis(100);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_under_load_loses_and_doubles_nothing() {
    let dir = state_dir("wal-kill");
    let port = free_port();
    let mut sidecar = start(port, &dir).await;
    let (layer, shipper) = pair(shipper_config(port)).expect("valid config");
    let mut shipper = shipper.spawn();
    let recorder = layer.recorder();
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let mut sent = 0_u64;
    let mut replayed = 0_u64;
    for round in 0..5 {
        // A chunk the next checkpoint will hold…
        let first = rng.random_range(500..2_000_u64);
        for i in 0..first {
            recorder.record_response(Some("/work"), 1_000 + (i % 997) * 300, 200);
        }
        sent += first;
        eventually(
            &format!("round {round}: all {sent} requests acknowledged"),
            Duration::from_secs(60),
            || {
                let s = &sidecar;
                async move { requests(s).await.filter(|n| *n == sent) }
            },
        )
        .await;
        let checkpoints = counter(&sidecar, "lumen_snapshots_written_total").await;
        eventually(
            &format!("round {round}: a checkpoint after them"),
            Duration::from_secs(60),
            || {
                let s = &sidecar;
                async move {
                    (counter(s, "lumen_snapshots_written_total").await > checkpoints).then_some(())
                }
            },
        )
        .await;
        // …then a chunk only the log holds, killed at a random point of its
        // delivery: as soon as the sidecar has acknowledged that much of it.
        let chunk = rng.random_range(2_000..6_000_u64);
        for i in 0..chunk {
            let status = if i % 50 == 0 { 503 } else { 200 };
            recorder.record_response(Some("/work"), 1_000 + (i % 997) * 300, status);
        }
        sent += chunk;
        let at = sent - chunk + rng.random_range(1..chunk);
        eventually(
            &format!("round {round}: {at} of {sent} requests acknowledged"),
            Duration::from_secs(60),
            || {
                let s = &sidecar;
                async move { requests(s).await.filter(|n| *n >= at) }
            },
        )
        .await;
        drop(sidecar); // SIGKILL, no goodbye
        sidecar = start(port, &dir).await;
        replayed += counter(&sidecar, "lumen_wal_replayed_total").await;
        let restored = requests(&sidecar).await.expect("a report");
        assert!(
            restored >= at,
            "round {round}: {restored} requests after the restart, {at} were acknowledged before the kill\n{}",
            sidecar.proc.log_text()
        );
    }
    let report = shipper.flush().await.expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0, "{report:?}");
    eventually("every request counted", Duration::from_secs(60), || {
        let s = &sidecar;
        async move { requests(s).await.filter(|n| *n == sent) }
    })
    .await;
    let doc = sidecar.slo("1h").await;
    assert_eq!(doc["requests"], sent, "exactly once: {doc}");
    assert_eq!(
        doc["counts"]["5xx"].as_u64(),
        Some(
            doc["routes"][0]["counts"]["5xx"]
                .as_u64()
                .expect("one route")
        ),
    );
    assert!(
        replayed >= 5,
        "every restart found acknowledged batches only in the log"
    );
    // The checkpoints truncated the log: what is left is only what came
    // after the last one.
    let segments = lumen_sidecar::store::wal::list_segments(&dir).expect("the state dir");
    assert!(segments.len() <= 3, "{segments:?}");
    assert!(dir.join("checkpoint.bin").exists());
    // The exported counters continued through every kill: the checkpoint
    // keeps them with the store, the log replays the rest.
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    let summed = |prefix: &str, having: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(having))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(summed("http_server_requests_total{", ""), sent, "{metrics}");
    assert_eq!(
        summed(
            "lumen_slo_events_total{service_name=\"durable-api\",",
            "http_route=\"/work\",slo_name=\"availability\""
        ),
        sent,
        "{metrics}"
    );
    let _ = shipper
        .shutdown(Duration::from_secs(2))
        .await
        .expect("the shipper runs");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_answers_503_and_loses_nothing() {
    let dir = state_dir("wal-full");
    // The first three segments the writer opens are links to a file
    // elsewhere: the sidecar never writes through a link (O_NOFOLLOW), so
    // each open fails, as a log that cannot be written does.
    let elsewhere = state_dir("wal-link-target").join("target.log");
    std::fs::write(&elsewhere, b"").expect("target");
    for n in 1..=3 {
        std::os::unix::fs::symlink(
            &elsewhere,
            dir.join(lumen_sidecar::store::wal::segment_name(n)),
        )
        .expect("symlink");
    }
    let port = free_port();
    let sidecar =
        SidecarProc::start(port, &[("LUMEN_STATE_DIR", dir.to_str().expect("utf-8"))]).await;
    let (layer, shipper) = pair(shipper_config(port)).expect("valid config");
    let mut shipper = shipper.spawn();
    let recorder = layer.recorder();
    for i in 0..1_000_u64 {
        recorder.record_response(Some("/work"), 2_000 + i, 200);
    }
    // Three writes fail (503, nothing applied, the shipper keeps the batch),
    // the fourth segment is a real file.
    eventually(
        "all 1000 requests acknowledged",
        Duration::from_secs(60),
        || {
            let s = &sidecar;
            async move { requests(s).await.filter(|n| *n == 1_000) }
        },
    )
    .await;
    assert_eq!(counter(&sidecar, "lumen_wal_failures_total").await, 3);
    assert!(counter(&sidecar, "lumen_wal_appended_total").await >= 1);
    let log = sidecar.proc.log_text();
    assert!(log.contains("symbolic links"), "{log}");
    assert!(log.contains("not a regular file"), "{log}");
    assert_eq!(
        std::fs::read(&elsewhere).expect("the link's target"),
        b"",
        "nothing written through a link"
    );
    let report = shipper.flush().await.expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0, "{report:?}");
    let _ = shipper
        .shutdown(Duration::from_secs(2))
        .await
        .expect("the shipper runs");

    // What was acknowledged is in the log: it survives SIGKILL.
    drop(sidecar);
    let sidecar =
        SidecarProc::start(port, &[("LUMEN_STATE_DIR", dir.to_str().expect("utf-8"))]).await;
    assert_eq!(requests(&sidecar).await, Some(1_000));
    assert!(counter(&sidecar, "lumen_wal_replayed_total").await >= 1);
}

fn signal(proc: &Proc, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &proc.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_sidecar_never_blocks_the_app_and_its_batches_drain_after() {
    use lumen_examples::load::{LoadPlan, run_plan};
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    let api = ApiProc::start(sidecar.addr, &[]).await;
    let plan = |requests, seed| LoadPlan {
        requests,
        concurrency: 4,
        error_share: 0.0,
        slow_share: 0.0,
        repeat_share: 0.0,
        invalid_share: 0.0,
        seed,
    };
    let before = run_plan(&api.base, &plan(200, 1)).await;
    signal(&sidecar.proc, "STOP");
    // The app answers every request while its sidecar is frozen…
    let during = run_plan(&api.base, &plan(600, 2)).await;
    assert_eq!((during.answered, during.transport_errors), (600, 0));
    // …while its shipper times out against the frozen sidecar and keeps
    // the batches.
    eventually(
        "the shipper has found the sidecar unresponsive",
        Duration::from_secs(60),
        || {
            let log = api.proc.log_text();
            async move {
                log.contains("cannot deliver a batch to the sidecar")
                    .then_some(())
            }
        },
    )
    .await;
    let also = run_plan(&api.base, &plan(200, 3)).await;
    assert_eq!(also.answered, 200);
    signal(&sidecar.proc, "CONT");
    let total = before.answered + during.answered + also.answered + 1; // + the readiness probe
    eventually(
        "every request counted once",
        Duration::from_secs(60),
        || {
            let s = &sidecar;
            async move { requests(s).await.filter(|n| *n == total) }
        },
    )
    .await;
    let doc = sidecar.slo("1h").await;
    assert_eq!(doc["requests"], total, "{doc}");
}

/// What a restart must keep, read from a sidecar: the error budget's events
/// and bad events (every acknowledged request of the SLO period, exact),
/// the last hour's and the day's requests, at one minute of the clock (the
/// windows move with it).
#[derive(Debug, PartialEq)]
struct Kept {
    minute: u64,
    budget_events: u64,
    unavailable: u64,
    hour: u64,
    day: u64,
}

async fn kept(sidecar: &SidecarProc) -> Kept {
    loop {
        let minute = now_ms() / 60_000;
        let budget: serde_json::Value =
            serde_json::from_str(&get_ok(&format!("{}/v1/budget", sidecar.base())).await)
                .expect("JSON");
        let availability = budget["slos"]
            .as_array()
            .expect("slos")
            .iter()
            .find(|s| s["name"] == "availability")
            .expect("availability")
            .clone();
        let hour = sidecar.slo("1h").await["requests"]
            .as_u64()
            .expect("a count");
        let day = sidecar.slo("24h").await["requests"]
            .as_u64()
            .expect("a count");
        if now_ms() / 60_000 == minute {
            return Kept {
                minute,
                budget_events: availability["events"].as_u64().expect("events"),
                unavailable: availability["bad"].as_u64().expect("bad"),
                hour,
                day,
            };
        }
    }
}

/// A production day (64 routes, up to 3,000 requests a route-minute,
/// lognormal σ 1 misses and fast hits, 50 million requests) under the
/// Cloud Run kit's store cap, which merges it into 10-minute and hour
/// blocks: after `kill -9` (the log replayed over the last checkpoint) and
/// after SIGTERM (the final checkpoint alone), every acknowledged request
/// is there, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_production_day_survives_kill_9_and_sigterm_exactly() {
    use lumen_tests::workload::Workload;

    let dir = state_dir("full-day");
    let port = free_port();
    let env = [
        ("LUMEN_STATE_DIR", dir.to_str().expect("utf-8")),
        ("LUMEN_SNAPSHOT_INTERVAL", "10s"),
        // The kit's cap: 20 % of the sidecar's 256 MiB.
        ("LUMEN_STORE_MAX_BYTES", "53687091"),
    ];
    let mut sidecar = SidecarProc::start(port, &env).await;
    let workload = Workload::day();
    // Bodies made on a thread of their own while the sidecar takes the
    // previous ones.
    let (bodies, mut next) = tokio::sync::mpsc::channel::<(u64, Vec<u8>, u64)>(4);
    let maker = std::thread::spawn(move || {
        for m in 0..workload.minutes {
            let minute = workload.minute(m);
            let unavailable: u64 = minute
                .iter()
                .map(|r| r.status.server_error + r.errors)
                .sum();
            let body = workload.batch(SERVICE, "day-instance", m + 1, m);
            if bodies.blocking_send((m, body, unavailable)).is_err() {
                return;
            }
        }
    });
    let client = lumen_tests::json_client::JsonClient::default();
    let url = format!("{}/v1/ingest", sidecar.base());
    let mut unavailable = 0;
    while let Some((m, body, bad)) = next.recv().await {
        let (status, answer) = client.post(&url, body).await;
        assert_eq!(
            (status, answer.as_str()),
            (200, format!("{{\"applied_seq\":{}}}", m + 1).as_str()),
            "minute {m}"
        );
        unavailable += bad;
    }
    maker.join().expect("the bodies were made");
    let merged = counter(&sidecar, "lumen_store_merged_slots_total").await;
    assert!(merged > 1_000, "the cap merged the day: {merged} slots");
    assert_eq!(
        counter(&sidecar, "lumen_store_dropped_slots_total").await,
        0,
        "merged, not dropped"
    );
    let before = kept(&sidecar).await;
    assert_eq!(before.budget_events, workload.total_requests());
    assert_eq!(before.unavailable, unavailable);
    // The last hour: its minutes are never merged, so exact against the
    // workload (its minutes end at the one before the test began).
    let last = workload.minute_start_ms(workload.minutes) / 60_000;
    let hour_at = |minute: u64| {
        (minute.saturating_sub(59)..=minute)
            .filter(|m| *m < last)
            .count() as u64
            * workload.requests_in_minute(0)
    };
    assert_eq!(before.hour, hour_at(before.minute));
    assert!(
        before.day > workload.total_requests() * 9 / 10,
        "{before:?}"
    );

    for how in ["kill -9", "SIGTERM"] {
        if how == "kill -9" {
            drop(sidecar); // SIGKILL: the log holds what came after the last checkpoint
        } else {
            assert_eq!(sidecar.proc.terminate(), Some(0), "a clean stop");
        }
        sidecar = SidecarProc::start(port, &env).await;
        let after = kept(&sidecar).await;
        if after.minute == before.minute {
            assert_eq!(after, before, "after {how}");
        } else {
            // The windows moved on; the budget is the whole period still.
            assert_eq!(after.budget_events, before.budget_events, "after {how}");
            assert_eq!(after.unavailable, before.unavailable, "after {how}");
            assert_eq!(after.hour, hour_at(after.minute), "after {how}");
        }
        assert!(
            !sidecar.proc.log_text().contains("not trusted"),
            "{}",
            sidecar.proc.log_text()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Posts `body` until the sidecar takes it (at most a minute): how many
/// times it answered 503 first.
async fn post_until_taken(
    client: &lumen_tests::json_client::JsonClient,
    url: &str,
    body: &[u8],
) -> u64 {
    let mut refused = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = client.post(url, body.to_vec()).await;
        match status {
            200 => return refused,
            503 => refused += 1,
            other => panic!("{other}: {answer}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused after a minute: {answer}"
        );
        // As the middleware's shipper does on 503: try again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The error budget's events (every acknowledged request of the period).
async fn budget_events(sidecar: &SidecarProc) -> u64 {
    kept(sidecar).await.budget_events
}

/// A small state volume (a 4 MiB tmpfs, as a size-limited in-memory
/// volume is) filled by busy batches never stops ingest for good: the log
/// stops while the next checkpoint would not fit, a checkpoint is taken at
/// once and ingest goes on. Space taken by something else answers 503 only
/// while it is gone, and ingest recovers without a restart. Nothing
/// acknowledged is lost, also across `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_volume_recovers_by_itself_and_loses_nothing() {
    use lumen_tests::workload::Workload;

    let Some(volume) = Tmpfs::mount("full-volume", 4 << 20) else {
        eprintln!("skipped: mounting a size-limited tmpfs needs root (CI runs as root)");
        return;
    };
    let port = free_port();
    let env = [
        ("LUMEN_STATE_DIR", volume.path.to_str().expect("utf-8")),
        // Only the log's own wish for room checkpoints here.
        ("LUMEN_SNAPSHOT_INTERVAL", "1h"),
    ];
    let mut sidecar = SidecarProc::start(port, &env).await;
    // 16 routes, up to 1,000 requests a route-minute, lognormal σ 1: about
    // 13 KiB a batch, 2 MiB of log for the 150 minutes, more than the
    // volume has room for beside its checkpoints.
    let workload = Workload {
        routes: 16,
        peak_per_minute: 1_000,
        ..Workload::day()
    }
    .ending_now(150);
    let client = lumen_tests::json_client::JsonClient::default();
    let url = format!("{}/v1/ingest", sidecar.base());
    let mut refused = 0;
    for m in 0..workload.minutes - 1 {
        let body = workload.batch(SERVICE, "full-instance", m + 1, m);
        refused += post_until_taken(&client, &url, &body).await;
    }
    let no_room = counter(&sidecar, "lumen_wal_no_room_total").await;
    assert!(no_room > 0, "the volume filled: {refused} refusals");
    assert!(counter(&sidecar, "lumen_snapshots_written_total").await > 0);
    let sent = (workload.minutes - 1) * workload.requests_in_minute(0);
    assert_eq!(budget_events(&sidecar).await, sent);

    // Something else takes every free byte: ingest answers 503 and says why…
    let filler = volume.path.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0_u8; 1 << 16];
        while f.write_all(&chunk).is_ok() {}
    }
    let last = workload.minutes - 1;
    let body = workload.batch(SERVICE, "full-instance", last + 1, last);
    let (status, answer) = client.post(&url, body.clone()).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(budget_events(&sidecar).await, sent, "nothing applied");
    // …and takes it again once the space is back, without a restart.
    std::fs::remove_file(&filler).expect("filler removed");
    post_until_taken(&client, &url, &body).await;
    let sent = sent + workload.requests_in_minute(0);
    assert_eq!(budget_events(&sidecar).await, sent);

    drop(sidecar); // SIGKILL
    sidecar = SidecarProc::start(port, &env).await;
    assert_eq!(budget_events(&sidecar).await, sent, "after kill -9");
    let names: Vec<String> = std::fs::read_dir(&volume.path)
        .expect("the volume")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("rejected") || n.ends_with(".tmp")),
        "{names:?}"
    );
    drop(sidecar);
}
