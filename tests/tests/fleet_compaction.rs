//! The fleet store compacted (issue 37): with real Redis, sidecars come and
//! go over two and a half hours of production-shaped traffic (24 routes,
//! lognormal latencies σ 1, thousands of requests per route-minute across
//! the fleet), and every block of the store, read back field by field,
//! holds exactly what one sidecar fed every batch holds: before
//! compaction, after a compaction killed (SIGKILL) part way, with late
//! batches, with two compactions racing, after a restarted sidecar rewrote
//! everything it holds, and with Redis restarted empty in the middle of a
//! compaction.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use lumen_middleware::wire;
use lumen_sidecar::app::{AppState, now_ms};
use lumen_sidecar::cli::sources::fleet_store_reader;
use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::fleet::store::compaction::{merge_blocks, subtract_block};
use lumen_sidecar::fleet::store::{
    FleetBlock, FleetKeys, FleetStoreReader, FleetWriter, MERGED_FIELD, Tier, connection,
    open_client,
};
use lumen_sidecar::store::{
    Exclusion, LATE_AFTER_MINUTES, MINUTE_MS, RouteKey, RouteSlot, WindowStore, merge_routes,
    snapshot,
};
use lumen_tests::fleet_load::sidecar_cli;
use lumen_tests::workload::Workload;
use lumen_tests::*;

const SERVICE: &str = "compact-api";
/// Minutes of history, ending before now.
const SPAN: u64 = 150;
/// Instances alive at any minute.
const SLOTS: usize = 3;
const DAY: Duration = Duration::from_secs(86_400);

fn config() -> SidecarConfig {
    SidecarConfig {
        service: Some(SERVICE.into()),
        ..SidecarConfig::default()
    }
}

/// One instance's traffic: 24 routes, 1,000 requests a minute on the
/// busiest, σ 1, from `first` (Unix minutes) for `len` minutes.
fn traffic(first: u64, len: u64, seed: u64) -> Workload {
    Workload {
        routes: 24,
        peak_per_minute: 1_000,
        minutes: len,
        sigma: 1.0,
        start_ms: first * MINUTE_MS,
        seed,
    }
}

/// Lifetimes `(first minute, minutes)` over the span ending at `end`:
/// [`SLOTS`] back-to-back sequences of 10 to 55 minutes, the last of each
/// still running.
fn lifetimes(end: u64) -> Vec<(u64, u64)> {
    const LENGTHS: [u64; 7] = [25, 40, 12, 55, 18, 33, 10];
    let mut out = Vec::new();
    for slot in 0..SLOTS {
        let mut at = end - SPAN;
        let mut i = slot * 2;
        while at < end {
            let len = LENGTHS[i % LENGTHS.len()].min(end - at);
            out.push((at, len));
            at += len;
            i += 1;
        }
    }
    out
}

/// A sidecar of the fleet, in this process: its state and its writer.
struct Sidecar {
    state: AppState,
    writer: FleetWriter,
    name: String,
}

async fn writer(url: &str, name: &str) -> FleetWriter {
    let con = connection(open_client(url, None).expect("url")).expect("connection");
    FleetWriter::new(con, name.to_owned(), DAY).with_compaction_every(Duration::ZERO)
}

fn decoded(bytes: &[u8]) -> wire::DecodedBatch {
    wire::decode(bytes).expect("a batch")
}

/// What the store's blocks came to.
#[derive(Debug, Default)]
struct Shape {
    /// Blocks holding a merged field.
    merged: usize,
    /// Closed blocks (closed before `closed_by`) still holding two fields
    /// with data or more.
    unmerged: usize,
    /// Fields emptied by compaction.
    tombstones: usize,
    /// Late batches' fields with data.
    late: usize,
    /// Shares taken out of merged blocks, not merged yet.
    minus: usize,
}

/// Every block of the span that ended by minute `closed_by` (when the
/// sidecars wrote), field by field, against `reference`: the same routes
/// (counts and histograms, exactly) and budget counts; those closed for
/// compaction by then counted as merged or not.
async fn assert_exact(url: &str, reference: &WindowStore, closed_by: u64, what: &str) -> Shape {
    let client = redis::Client::open(url).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let keys = FleetKeys::new(SERVICE);
    let now = now_ms() / MINUTE_MS;
    let mut shape = Shape::default();
    let mut checked = 0;
    for tier in [Tier::Minute, Tier::TenMinutes, Tier::Hour] {
        let len = tier.minutes();
        let mut start = tier.start_of(now - SPAN - 1);
        while start <= now {
            if start + len > closed_by {
                // Closed after the sidecars wrote: not all of it is there.
                break;
            }
            let key = keys.block(tier, start);
            let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut con)
                .await
                .expect("HGETALL");
            let want = reference.held_counted(start, len).merged();
            if fields.is_empty() {
                // Only open blocks (written once closed) and blocks past
                // (or about to pass) their tier's horizon may be missing.
                assert!(
                    want.is_empty() || tier.expires_at_s(start, 1440) <= (now + 2) * 60,
                    "{what}: {key} is missing"
                );
                start += len;
                continue;
            }
            let mut blocks = Vec::new();
            let mut minus = Vec::new();
            let mut with_data = 0;
            for (field, bytes) in &fields {
                if bytes.is_empty() {
                    shape.tombstones += 1;
                    continue;
                }
                with_data += 1;
                let block = FleetBlock::decode(bytes)
                    .unwrap_or_else(|e| panic!("{what}: {key} {field}: {e}"));
                if field.contains('~') {
                    shape.minus += 1;
                    minus.push(block);
                    continue;
                }
                if field.contains('+') {
                    shape.late += 1;
                }
                blocks.push(block);
            }
            let mut got = merge_blocks(&blocks);
            for m in &minus {
                subtract_block(&mut got, m);
            }
            if got.routes != want {
                let requests = |routes: &[(RouteKey, RouteSlot)]| {
                    routes.iter().map(|(_, s)| s.counts.requests()).sum::<u64>()
                };
                panic!(
                    "{what}: {key} holds {} requests in {} routes, one sidecar fed everything {} in {}",
                    requests(&got.routes),
                    got.routes.len(),
                    requests(&want),
                    want.len()
                );
            }
            assert_eq!(
                got.budget,
                reference.budget().sum(start, start + len - 1),
                "{what}: {key}'s budget counts"
            );
            if fields.contains_key(MERGED_FIELD) {
                shape.merged += 1;
            }
            if start + len + LATE_AFTER_MINUTES < closed_by && with_data >= 2 {
                shape.unmerged += 1;
            }
            checked += 1;
            start += len;
        }
    }
    assert!(checked > 120, "{what}: only {checked} blocks read");
    shape
}

/// Starts `lumen-sidecar compact` and returns once it has merged its
/// first block (it says each on stderr; the log is polled closely).
async fn compaction_under_way(url: &str) -> Proc {
    let mut cmd = Command::new(binary("lumen-sidecar"));
    cmd.args(["compact", "--fleet-redis", url, "--service", SERVICE])
        .env_remove("LUMEN_CONFIG");
    let proc = Proc::spawn("compact", cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !proc.log_text().contains("merged ") {
        assert!(
            std::time::Instant::now() < deadline,
            "no block merged: {}",
            proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    proc
}

fn sigkill(proc: &Proc) {
    let killed = Command::new("kill")
        .args(["-KILL", &proc.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "{}", proc.name);
}

/// Writes until Redis answers (a connection Redis dropped fails once).
async fn write_all(s: &mut Sidecar) -> lumen_sidecar::fleet::store::WriteSummary {
    let mut last = None;
    for _ in 0..100 {
        match s.writer.write(&s.state).await {
            Ok(summary) => return summary,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never wrote: {last:?}", s.name)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// `lumen-sidecar compact` run to its end: exit 0; what it printed.
fn compact_to_the_end(url: &str) -> String {
    let (code, out, err) = sidecar_cli("compact", &["--fleet-redis", url, "--service", SERVICE]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    out
}

/// The reader's window of `hours` against `reference` (without the
/// minutes kept off the budget): the same counts and histogram. The
/// sidecars counted, and the window's first minute.
async fn assert_window(
    reader: &FleetStoreReader,
    reference: &WindowStore,
    hours: u64,
    what: &str,
) -> (u64, u64) {
    let at = now_ms();
    let window = reader
        .window(Duration::from_secs(hours * 3600), at)
        .await
        .expect("read");
    let minutes = window.data.window.as_secs() / 60;
    let first = at / MINUTE_MS + 1 - minutes;
    let want = reference.held_counted(first, minutes).merged();
    let (total, _) = merge_routes(want.iter().map(|(k, s)| (k, s)));
    assert_eq!(window.data.total.counts, total.counts, "{what}: counts");
    assert_eq!(
        window.data.total.latency, total.latency,
        "{what}: histogram"
    );
    (window.instances, first)
}

/// Kills Redis (SIGKILL) and starts an empty one on the same port.
async fn redis_restarted_empty(redis: RedisProc) -> RedisProc {
    let port = port_of(&redis.url);
    let killed = Command::new("kill")
        .args(["-KILL", &redis.proc.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    drop(redis);
    RedisProc::start_on(port, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_block_exact_through_kills_races_late_batches_and_an_empty_redis() {
    let mut redis = RedisProc::start().await;
    let setup = now_ms() / MINUTE_MS;
    let lives = lifetimes(setup);
    let mut reference = WindowStore::new(DAY);
    let mut sidecars = Vec::new();
    for (i, (first, len)) in lives.iter().enumerate() {
        let w = traffic(*first, *len, i as u64 + 1);
        let app = format!("app-{i}");
        let mut store = WindowStore::new(DAY);
        for m in 0..*len {
            let batch = decoded(&w.batch(SERVICE, &app, m + 1, m));
            // Accepted as it would be: a second after its minute.
            let accepted = (first + m + 1) * MINUTE_MS + 1_000;
            store.apply(&batch, accepted).expect("stored");
            reference.apply(&batch, accepted).expect("stored");
        }
        let name = format!("sidecar-{i}");
        let mut writer = writer(&redis.url, &name).await;
        let state = AppState::new(config(), store);
        writer.write(&state).await.expect("written");
        sidecars.push(Sidecar {
            state,
            writer,
            name,
        });
    }
    let running: Vec<usize> = lives
        .iter()
        .enumerate()
        .filter(|(_, (first, len))| first + len == setup)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(running.len(), SLOTS);
    assert!(lives.len() >= 12, "{} lifetimes", lives.len());

    let shape = assert_exact(&redis.url, &reference, setup, "as written").await;
    assert_eq!(shape.merged, 0);
    assert!(shape.unmerged > 40, "{shape:?}");

    // A compaction killed after its first block: each block merged or not.
    let killed = compaction_under_way(&redis.url).await;
    sigkill(&killed);
    let shape = assert_exact(&redis.url, &reference, setup, "compaction killed").await;
    assert!(shape.merged >= 1 && shape.unmerged >= 1, "{shape:?}");
    drop(killed);

    // Late batches for three old minutes, at a running sidecar: each a
    // field of its own in the blocks closed when it came.
    let late_sidecar = &mut sidecars[running[0]];
    let now = now_ms();
    let late_minutes = [setup - 100, setup - 45, setup - 20];
    for (k, minute) in late_minutes.iter().enumerate() {
        let w = traffic(*minute, 1, 900 + k as u64);
        let batch = decoded(&w.batch(SERVICE, "late-app", k as u64 + 1, 0));
        late_sidecar
            .state
            .store()
            .apply(&batch, now)
            .expect("stored");
        reference.apply(&batch, now).expect("stored");
    }
    assert_eq!(late_sidecar.state.store().late().len(), 3);
    let summary = late_sidecar
        .writer
        .write(&late_sidecar.state)
        .await
        .expect("written");
    assert!(summary.late_fields >= 5, "{summary:?}");
    let shape = assert_exact(&redis.url, &reference, setup, "late batches written").await;
    assert!(shape.late >= 5, "{shape:?}");

    // Two compactions racing (each its own connection).
    let a = fleet_store_reader(&redis.url, None, Some(SERVICE), None).expect("a reader");
    let b = fleet_store_reader(&redis.url, None, Some(SERVICE), None).expect("a reader");
    let now = now_ms();
    let (x, y) = tokio::join!(a.compact(now, |_, _, _| {}), b.compact(now, |_, _, _| {}));
    let (x, y) = (x.expect("compacted"), y.expect("compacted"));
    assert!(x.blocks + y.blocks > 0, "{x:?} {y:?}");
    let shape = assert_exact(&redis.url, &reference, setup, "two compactions raced").await;
    assert_eq!(shape.unmerged, 0, "{shape:?}");
    assert_eq!(shape.late, 0, "late fields merged too: {shape:?}");

    // Run to the end from the command line: nothing left, exit 0.
    let out = compact_to_the_end(&redis.url);
    assert!(out.contains("compact-api: "), "{out}");

    // The reader counts every sidecar whose fields were merged.
    let (instances, first) = assert_window(&a, &reference, 2, "2 h").await;
    let seen = lives.iter().filter(|(f, len)| f + len > first).count() as u64;
    assert_eq!(instances, seen, "sidecars with data in the window");

    // A running sidecar restarted from its checkpoint rewrites everything
    // it holds (its late batches kept): nothing merged counts twice.
    let restarted = &mut sidecars[running[0]];
    let checkpoint =
        std::env::temp_dir().join(format!("lumen-compaction-{}.ckp", std::process::id()));
    let bytes = snapshot::encode(&restarted.state.store(), now_ms());
    snapshot::write(&checkpoint, &bytes).expect("checkpoint written");
    let kept = snapshot::read(&checkpoint)
        .expect("the checkpoint reads")
        .expect("there is one");
    let _ = std::fs::remove_file(&checkpoint);
    assert_eq!(kept.late().len(), 3, "late batches survive a restart");
    let state = AppState::new(config(), kept);
    let mut again = writer(&redis.url, &restarted.name).await;
    let summary = again.write(&state).await.expect("written");
    assert!(summary.resync && summary.blocks > 10, "{summary:?}");
    restarted.state = state;
    restarted.writer = again;
    assert_exact(&redis.url, &reference, setup, "a restarted sidecar rewrote").await;

    // A window kept off the budget after its blocks were merged: each
    // sidecar takes its share of those minutes out of the merged blocks,
    // late batches included; merged again, the blocks stay exact.
    let mark = Exclusion {
        from_ms: (setup - 112) * MINUTE_MS,
        to_ms: (setup - 95) * MINUTE_MS,
        reason: "an incident".into(),
        by: "test".into(),
        marked_ms: now_ms(),
    };
    reference.exclude(mark.clone()).expect("kept off");
    for s in &mut sidecars {
        s.state.store().exclude(mark.clone()).expect("kept off");
        write_all(s).await;
    }
    let shape = assert_exact(&redis.url, &reference, setup, "a mark after the merge").await;
    assert!(shape.minus > 10, "{shape:?}");
    // A window of three hours reads the merged hour block whole, its
    // shares taken out.
    assert_window(&a, &reference, 3, "3 h without the mark").await;
    compact_to_the_end(&redis.url);
    let shape = assert_exact(&redis.url, &reference, setup, "a mark, merged again").await;
    assert_eq!(shape.minus, 0, "{shape:?}");
    for s in &mut sidecars {
        assert!(
            s.state.store().newly_excluded().is_empty(),
            "{} told the store",
            s.name
        );
    }

    // Redis restarted empty: every sidecar writes all it holds again
    // (here every one is still running); then a compaction meets another
    // empty Redis half way, and the sidecars write everything once more.
    redis = redis_restarted_empty(redis).await;
    for s in &mut sidecars {
        let summary = write_all(s).await;
        assert!(summary.resync, "{}: {summary:?}", s.name);
    }
    assert_exact(
        &redis.url,
        &reference,
        setup,
        "rewritten into an empty Redis",
    )
    .await;
    let compacting = compaction_under_way(&redis.url).await;
    redis = redis_restarted_empty(redis).await;
    for s in &mut sidecars {
        write_all(s).await;
    }
    drop(compacting);
    assert_exact(&redis.url, &reference, setup, "Redis lost mid-compaction").await;
    compact_to_the_end(&redis.url);
    let shape = assert_exact(&redis.url, &reference, setup, "compacted again").await;
    assert_eq!(shape.unmerged, 0, "{shape:?}");
    assert!(shape.merged > 100, "{shape:?}");
}

/// Every merged block of the service's minute tier, polled from Redis.
async fn merged_minute_blocks(url: &str, first: u64, last: u64) -> usize {
    let client = redis::Client::open(url).expect("url");
    let Ok(mut con) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let keys = FleetKeys::new(SERVICE);
    let mut merged = 0;
    for minute in first..=last {
        let has: bool = redis::cmd("HEXISTS")
            .arg(keys.block(Tier::Minute, minute))
            .arg(MERGED_FIELD)
            .query_async(&mut con)
            .await
            .unwrap_or(false);
        merged += usize::from(has);
    }
    merged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_compact_on_their_own_and_the_fleet_report_stays_exact() {
    let redis = RedisProc::start().await;
    let env = [
        ("LUMEN_FLEET_REDIS_URL", redis.url.as_str()),
        ("LUMEN_FLEET_WRITE_INTERVAL", "1s"),
        ("LUMEN_FLEET_COMPACT_EVERY", "1s"),
    ];
    let fleet = [
        SidecarProc::start(free_port(), &env).await,
        SidecarProc::start(free_port(), &env).await,
    ];
    let reference = SidecarProc::start(free_port(), &[]).await;
    // Thirty-one minutes that ended 20 to 50 minutes ago, each minute from
    // two app instances, reach the sidecars now (an app that could not
    // ship for an hour): late for every block closed since.
    let now = now_ms() / MINUTE_MS;
    let first = now - 50;
    let last = now - 20;
    for (i, sidecar) in fleet.iter().enumerate() {
        let w = traffic(first, last + 1 - first, 40 + i as u64);
        for m in 0..=(last - first) {
            let body = w.batch(SERVICE, &format!("app-{i}"), m + 1, m);
            for addr in [sidecar.addr, reference.addr] {
                let (status, answer) =
                    sidecar_http::post(addr, body.clone(), "application/json", None).await;
                assert_eq!(status, 200, "{answer}");
            }
        }
    }
    // The sidecars write the late batches and merge them, unasked.
    let closed = last.min(now - LATE_AFTER_MINUTES - 2);
    eventually(
        "the sidecars merge the closed minutes",
        Duration::from_secs(90),
        || {
            let url = redis.url.clone();
            async move {
                (merged_minute_blocks(&url, first, closed).await == (closed + 1 - first) as usize)
                    .then_some(())
            }
        },
    )
    .await;
    let (code, out, err) = sidecar_cli(
        "check",
        &[
            "--fleet-redis",
            &redis.url,
            "--service",
            SERVICE,
            "--window",
            "1h",
            "--json",
        ],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert!(code.is_some_and(|c| c <= 2), "{err}");
    let whole = reference.slo("1h").await;
    assert!(whole["requests"].as_u64().unwrap_or(0) > 500_000, "{whole}");
    for key in ["requests", "counts", "cache", "latency", "slos"] {
        assert_eq!(doc[key], whole[key], "{key}: fleet {doc}\nwhole {whole}");
    }
    assert_eq!(doc["scope"]["instances"], 2, "{doc}");

    // What they did, on their /metrics: each wrote its late batches'
    // fields (one per closed block of each), and the merges are counted.
    let mut compacted = 0;
    for sidecar in &fleet {
        let text = get_ok(&format!("{}/metrics", sidecar.base())).await;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in /metrics"))
        };
        assert!(
            value("lumen_fleet_store_late_fields_total") >= (last + 1 - first) as f64,
            "{text}"
        );
        compacted += value("lumen_fleet_store_compacted_blocks_total") as u64;
        // Each merge takes a field at least (two into a block's first).
        assert!(
            value("lumen_fleet_store_compacted_fields_total")
                >= value("lumen_fleet_store_compacted_blocks_total")
        );
    }
    assert!(
        compacted >= closed + 1 - first,
        "every closed minute merged by one of them: {compacted}"
    );
}
