//! The fleet store end to end: sidecars write their minutes to a real
//! `redis-server`; `lumen-sidecar check --fleet-redis` merges every
//! instance's histograms (an instance stopped and gone included) and
//! reports what one sidecar fed the whole load reports, with percentiles
//! within 0.1 % of the exact nearest-rank ones of every value sent.
//! Redis killed and restarted mid-load: the app sees nothing, the store
//! catches up exactly. AUTH, TLS and bad data too.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lumen_sidecar::app::now_ms;
use lumen_sidecar::cli::sources::fleet_store_reader;
use lumen_tests::distributions::exact_quantile;
use lumen_tests::fleet_load::{InstanceLoad, ship, sidecar_cli};
use lumen_tests::*;
use serde_json::Value;

/// Uneven: the first instance takes most requests, the second most of the
/// 5xx, the third almost nothing (and is stopped before the check).
const LOADS: [InstanceLoad; 3] = [
    InstanceLoad {
        requests: 3000,
        fail_every: 500,
        cancelled: 4,
        seed: 1,
    },
    InstanceLoad {
        requests: 1200,
        fail_every: 9,
        cancelled: 0,
        seed: 2,
    },
    InstanceLoad {
        requests: 40,
        fail_every: 1000,
        cancelled: 1,
        seed: 3,
    },
];

const PERCENTILES: [(&str, f64); 5] = [
    ("p50_ms", 0.5),
    ("p90_ms", 0.9),
    ("p95_ms", 0.95),
    ("p99_ms", 0.99),
    ("p99_9_ms", 0.999),
];

fn fleet_env(url: &str) -> Vec<(&str, &str)> {
    vec![
        ("LUMEN_FLEET_REDIS_URL", url),
        ("LUMEN_FLEET_WRITE_INTERVAL", "1s"),
    ]
}

/// `check --fleet-redis URL --service S --window 10m --json` (plus
/// `extra`): the exit code, the document (or `Null`) and stderr.
fn fleet_check(url: &str, service: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec![
        "--fleet-redis",
        url,
        "--service",
        service,
        "--window",
        "10m",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = sidecar_cli("check", &args);
    (code, serde_json::from_str(&out).unwrap_or(Value::Null), err)
}

/// The fleet's report once the store holds `requests` requests.
async fn fleet_report_with(url: &str, service: &str, requests: u64) -> (Option<i32>, Value) {
    eventually(
        "the fleet store holds every request",
        Duration::from_secs(60),
        || {
            let (url, service) = (url.to_owned(), service.to_owned());
            async move {
                let (code, doc, _) = fleet_check(&url, &service, &[]);
                (doc["requests"] == requests).then_some((code, doc))
            }
        },
    )
    .await
}

/// Writes `bytes` as `field` of the hash `key`, as no sidecar would.
async fn hset_raw(url: &str, key: &str, field: &str, bytes: &[u8]) {
    let client = redis::Client::open(url).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let () = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(bytes)
        .query_async(&mut con)
        .await
        .map(|_: u64| ())
        .expect("HSET");
}

fn status_code(doc: &Value) -> Option<i32> {
    Some(match doc["status"].as_str() {
        Some("HEALTHY") => 0,
        Some("WARNING") => 1,
        Some("CRITICAL") => 2,
        _ => 3,
    })
}

/// The route `/health` gets every fifth request, `/ask` the rest.
fn route_of(i: usize) -> &'static str {
    if i.is_multiple_of(5) {
        "/health"
    } else {
        "/ask"
    }
}

fn assert_within_a_thousandth(reported: &Value, values: &mut [u64], what: &str) {
    values.sort_unstable();
    for (key, q) in PERCENTILES {
        let exact = exact_quantile(values, q) as f64 / 1000.0;
        let got = reported[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no {key} in {reported}"));
        assert!(
            (got - exact).abs() <= exact * 0.001,
            "{what} {key}: {got} ms against the exact {exact} ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_store_reports_exactly_what_one_sidecar_fed_everything_reports() {
    const SERVICE: &str = "store-api";
    let redis = RedisProc::start().await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(SidecarProc::start(free_port(), &fleet_env(&redis.url)).await);
    }
    let reference = SidecarProc::start(free_port(), &[]).await;
    for (sidecar, load) in instances.iter().zip(LOADS) {
        ship(SERVICE, load, &[sidecar.addr, reference.addr]).await;
    }
    // The third instance is scaled down: its sidecar writes at SIGTERM
    // and is gone before the check.
    let gone = instances.pop().expect("three instances");
    assert_eq!(gone.proc.terminate(), Some(0), "a clean stop");

    let total: u64 = LOADS.iter().map(|l| l.requests).sum();
    let (code, fleet) = fleet_report_with(&redis.url, SERVICE, total).await;
    let whole = reference.slo("10m").await;
    assert_eq!(whole["requests"], total, "{whole}");
    assert_eq!(fleet["scope"]["kind"], "fleet_store", "{fleet}");
    assert_eq!(
        fleet["scope"]["instances"], 3,
        "the stopped instance counts: {fleet}"
    );
    for key in [
        "requests",
        "counts",
        "cache",
        "status",
        "compliance_rate",
        "slos",
        "latency",
    ] {
        assert_eq!(
            fleet[key], whole[key],
            "{key}: fleet {fleet}\nwhole {whole}"
        );
    }
    assert_eq!(code, status_code(&whole), "the exit code is the status's");
    for (f, w) in fleet["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .zip(whole["routes"].as_array().expect("routes"))
    {
        assert_eq!(f, w, "each route");
    }

    // A remaining sidecar serves the same fleet report and page.
    let served: Value = serde_json::from_str(
        &get_ok(&format!("{}/v1/fleet/slo?window=10m", instances[0].base())).await,
    )
    .expect("JSON");
    for key in ["requests", "counts", "slos", "latency", "routes", "scope"] {
        assert_eq!(served[key], fleet[key], "{key}");
    }
    let page = get_ok(&instances[1].base()).await;
    assert!(
        page.contains(
            "Scope: the whole fleet (3 instances, exact histograms from the fleet store)"
        ),
        "{page}"
    );
    let (status, body) = try_get(&format!("{}/v1/fleet/slo", reference.base()))
        .await
        .expect("an answer");
    assert_eq!(status, 404, "no fleet store there: {body}");
    assert!(body.contains("LUMEN_FLEET_REDIS_URL"), "{body}");
    assert!(
        get_ok(&reference.base())
            .await
            .contains("Scope: this instance only")
    );

    // Within 0.1 % of the exact percentiles of every value sent.
    let mut all: Vec<u64> = LOADS.iter().flat_map(|l| l.latencies()).collect();
    assert_within_a_thousandth(&fleet["latency"], &mut all, "the service");
    for route in ["/ask", "/health"] {
        let mut values: Vec<u64> = LOADS
            .iter()
            .flat_map(|l| {
                l.latencies()
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| route_of(*i) == route)
                    .map(|(_, v)| v)
            })
            .collect();
        let reported = fleet["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .find(|r| r["route"] == route)
            .unwrap_or_else(|| panic!("no {route} in {fleet}"));
        assert_within_a_thousandth(&reported["latency"], &mut values, route);
    }

    // The budgets count the same events as the sidecar fed everything.
    let reader = fleet_store_reader(&redis.url, None, Some(SERVICE), None).expect("a reader");
    let budget =
        serde_json::to_value(reader.budget(now_ms()).await.expect("the budget")).expect("JSON");
    let whole_budget: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/budget", reference.base())).await)
            .expect("JSON");
    for (f, w) in budget["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .zip(whole_budget["slos"].as_array().expect("slos"))
    {
        for key in ["name", "events", "bad", "allowed_bad"] {
            assert_eq!(f[key], w[key], "{key}: {f}\nvs {w}");
        }
        assert!(f["events"].as_u64() == Some(total), "{f}");
    }

    // Health reads the same store; its verdict is the reference's.
    let (code, out, err) = sidecar_cli(
        "health",
        &[
            "--fleet-redis",
            &redis.url,
            "--service",
            SERVICE,
            "--window",
            "10m",
            "--json",
        ],
    );
    let health: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let whole_health: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/health?window=10m", reference.base())).await)
            .expect("JSON");
    assert!(code.is_some_and(|c| c <= 3), "{err}");
    assert_eq!(
        health["roi"]["hits"], whole_health["roi"]["hits"],
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_load_costs_the_app_nothing_and_the_store_catches_up() {
    const SERVICE: &str = "outage-api";
    let port = free_port();
    let redis = RedisProc::start_on(port, &[]).await;
    let url = redis.url.clone();
    let a = SidecarProc::start(free_port(), &fleet_env(&url)).await;
    let b = SidecarProc::start(free_port(), &fleet_env(&url)).await;
    let reference = SidecarProc::start(free_port(), &[]).await;
    ship(SERVICE, LOADS[0], &[a.addr, reference.addr]).await;
    ship(SERVICE, LOADS[1], &[b.addr, reference.addr]).await;
    fleet_report_with(&url, SERVICE, LOADS[0].requests + LOADS[1].requests).await;

    // SIGKILL: nothing persisted, Redis comes back empty.
    drop(redis);
    let more = [
        InstanceLoad {
            seed: 7,
            ..LOADS[2]
        },
        InstanceLoad {
            requests: 500,
            seed: 8,
            ..LOADS[1]
        },
    ];
    // `ship` asserts that every request was acknowledged: the outage
    // never reaches the app.
    ship(SERVICE, more[0], &[a.addr, reference.addr]).await;
    ship(SERVICE, more[1], &[b.addr, reference.addr]).await;
    let (code, _, err) = fleet_check(&url, SERVICE, &[]);
    assert_eq!(code, Some(3), "no store, no verdict: {err}");
    assert!(err.contains("fleet store"), "{err}");
    let (status, body) = try_get(&format!("{}/v1/fleet/slo", a.base()))
        .await
        .expect("an answer");
    assert_eq!(status, 503, "{body}");
    let page = get_ok(&a.base()).await;
    assert!(
        page.contains("the fleet cannot be read") && page.contains("Scope: this instance only"),
        "{page}"
    );

    let _redis = RedisProc::start_on(port, &[]).await;
    let total = LOADS[0].requests + LOADS[1].requests + more[0].requests + more[1].requests;
    let (_, fleet) = fleet_report_with(&url, SERVICE, total).await;
    let whole = reference.slo("10m").await;
    for key in ["requests", "counts", "cache", "latency", "slos"] {
        assert_eq!(fleet[key], whole[key], "{key}: {fleet}\nvs {whole}");
    }
    assert_eq!(fleet["scope"]["instances"], 2, "{fleet}");
    for sidecar in [&a, &b] {
        // The first write, and the rewrite once Redis came back without
        // this sidecar's marker (the outage may fall between two writes,
        // so it need not have been seen failing).
        let log = sidecar.proc.log_text();
        assert!(
            log.matches("resync=true").count() >= 2,
            "everything held is written again once Redis is back: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_behind_a_password_takes_it_bad_data_is_left_out_and_no_store_is_exit_3() {
    const SERVICE: &str = "auth-api";
    let redis = RedisProc::start_on(free_port(), &["--requirepass", "s3cret-pw"]).await;
    let sidecar = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    ship(SERVICE, LOADS[2], &[sidecar.addr]).await;
    let (code, doc) = fleet_report_with(&redis.url, SERVICE, LOADS[2].requests).await;
    assert_eq!(code, status_code(&doc));

    let wrong = redis.url.replace("s3cret-pw", "wrong");
    let (code, _, err) = fleet_check(&wrong, SERVICE, &[]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        !err.contains("wrong@"),
        "the password is never printed: {err}"
    );

    // A value Lumen did not write: left out, the rest read.
    let key = format!("lumen:{{{SERVICE}}}:m:{}", now_ms() / 60_000);
    hset_raw(&redis.url, &key, "intruder", b"\x01not cbor").await;
    let (code, doc, err) = fleet_check(&redis.url, SERVICE, &[]);
    assert_eq!(code, status_code(&doc), "{err}");
    assert_eq!(doc["requests"], LOADS[2].requests, "{doc}");
    assert_eq!(doc["scope"]["unreadable"], serde_json::json!(["intruder"]));
    assert!(err.contains(&key) && err.contains("intruder"), "{err}");

    // No store at all.
    let (code, _, err) = fleet_check(&format!("redis://127.0.0.1:{}", free_port()), SERVICE, &[]);
    assert_eq!(code, Some(3));
    assert!(err.contains("fleet store"), "{err}");
    let (code, _, err) = sidecar_cli("check", &["--service", SERVICE]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("--prometheus URL or --fleet-redis URL"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_minutes_read_back_and_a_bad_field_costs_only_its_instance() {
    const SERVICE: &str = "busy-api";
    let redis = RedisProc::start().await;
    let sidecar = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    // Eight production minutes (inside the 10-minute window even if a
    // minute turns meanwhile): 64 routes, up to 3,000 requests a
    // route-minute, lognormal σ 1 (each minute's hour block packs to far
    // more than 4 KiB per route).
    let workload = lumen_tests::workload::Workload::day().ending_now(8);
    let client = lumen_tests::json_client::JsonClient::default();
    for m in 0..workload.minutes {
        let body = workload.batch(SERVICE, "busy-instance", m + 1, m);
        let (status, answer) = client
            .post(&format!("{}/v1/ingest", sidecar.base()), body)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (code, doc) = fleet_report_with(&redis.url, SERVICE, workload.total_requests()).await;
    assert_eq!(code, status_code(&doc));
    assert_eq!(doc["scope"]["instances"], 1);
    assert!(doc["scope"].get("unreadable").is_none(), "{doc}");

    // A field no sidecar could have written, in a block the check reads:
    // that instance is left out and named; the busy instance still counts.
    let key = format!("lumen:{{{SERVICE}}}:m:{}", now_ms() / 60_000 - 1);
    hset_raw(&redis.url, &key, "sidecar-broken", b"\x01\xff\x00").await;
    let (code, doc, err) = fleet_check(&redis.url, SERVICE, &[]);
    assert_eq!(code, status_code(&doc), "{err}");
    assert_eq!(doc["requests"], workload.total_requests());
    assert_eq!(
        doc["scope"]["unreadable"],
        serde_json::json!(["sidecar-broken"])
    );
    // The sidecar's own fleet view reads past it too, and counts it.
    let fleet = get_ok(&format!("{}/v1/fleet/slo?window=10m", sidecar.base())).await;
    let fleet: Value = serde_json::from_str(&fleet).expect("JSON");
    assert_eq!(fleet["requests"], workload.total_requests());
    let metrics = get_ok(&format!("{}/metrics", sidecar.base())).await;
    let unreadable = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lumen_fleet_store_unreadable_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(unreadable.is_some_and(|n| n >= 1), "{unreadable:?}");
}

/// A CA and a server certificate for 127.0.0.1, made by `openssl`.
fn certificates(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=lumen-test-ca",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    ] {
        let out = run(Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir));
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_over_tls_is_written_and_read_with_its_ca() {
    const SERVICE: &str = "tls-api";
    let dir = std::env::temp_dir().join(format!("lumen-fleet-tls-{}", std::process::id()));
    certificates(&dir);
    let port = free_port();
    let program = find_program("redis-server").expect("redis-server is installed");
    let mut cmd = Command::new(program);
    let file = |name: &str| dir.join(name).display().to_string();
    cmd.args(["--port", "0", "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-port", &port.to_string()])
        .args(["--tls-cert-file", &file("server.pem")])
        .args(["--tls-key-file", &file("server.key")])
        .args(["--tls-ca-cert-file", &file("ca.pem")])
        .args(["--tls-auth-clients", "no"]);
    let _redis = Proc::spawn("redis-server-tls", cmd);
    let url = format!("rediss://127.0.0.1:{port}");
    let ca = file("ca.pem");
    let sidecar = SidecarProc::start(
        free_port(),
        &[
            ("LUMEN_FLEET_REDIS_URL", url.as_str()),
            ("LUMEN_FLEET_REDIS_CA_FILE", ca.as_str()),
            ("LUMEN_FLEET_WRITE_INTERVAL", "1s"),
        ],
    )
    .await;
    ship(SERVICE, LOADS[2], &[sidecar.addr]).await;
    let doc = eventually(
        "the TLS store holds the load",
        Duration::from_secs(60),
        || {
            let (url, ca) = (url.clone(), ca.clone());
            async move {
                let (_, doc, _) = fleet_check(&url, SERVICE, &["--fleet-redis-ca-file", &ca]);
                (doc["requests"] == LOADS[2].requests).then_some(doc)
            }
        },
    )
    .await;
    assert_eq!(doc["scope"]["kind"], "fleet_store");
    // Without the CA the server's certificate is not trusted.
    let (code, _, err) = fleet_check(&url, SERVICE, &[]);
    assert_eq!(code, Some(3), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `INFO` fields of the Redis at `url`, as numbers.
async fn redis_info(url: &str, section: &str, field: &str) -> u64 {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut con)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_past_its_share_of_maxmemory_writes_nothing_and_catches_up_when_there_is_room() {
    const SERVICE: &str = "roomy-api";
    const CACHE_KEYS: usize = 400;
    let redis = RedisProc::start_on(free_port(), &["--maxmemory-policy", "allkeys-lru"]).await;
    let url = redis.url.clone();
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    // The service's cache: answers of about 2 KiB.
    for i in 0..CACHE_KEYS {
        let _: () = redis::cmd("SET")
            .arg(format!("answer:{i}"))
            .arg("x".repeat(2048))
            .query_async(&mut con)
            .await
            .expect("SET");
    }
    // Redis's limit leaves the store (its share: half) a few KiB: less
    // than one write of a busy minute.
    let used = redis_info(&url, "memory", "used_memory").await;
    let limit = (used + 8 * 1024) * 2;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit.to_string())
        .query_async(&mut con)
        .await
        .expect("CONFIG SET");

    let mut env = fleet_env(&url);
    env.push(("LUMEN_FLEET_MEMORY_SHARE", "50"));
    let a = SidecarProc::start(free_port(), &env).await;
    ship(SERVICE, LOADS[0], &[a.addr]).await;
    eventually(
        "the writer refuses for want of room",
        Duration::from_secs(60),
        || async {
            a.proc
                .log_text()
                .contains("(fleet.memory_share): not written")
                .then_some(())
        },
    )
    .await;
    let blocks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("lumen:{{{SERVICE}}}:*"))
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert!(
        blocks.iter().all(|k| !k.contains(":m:")),
        "no minute written past the share: {blocks:?}"
    );
    assert_eq!(redis_info(&url, "stats", "evicted_keys").await, 0);
    let kept: usize = redis::cmd("EXISTS")
        .arg(
            (0..CACHE_KEYS)
                .map(|i| format!("answer:{i}"))
                .collect::<Vec<_>>(),
        )
        .query_async(&mut con)
        .await
        .expect("EXISTS");
    assert_eq!(kept, CACHE_KEYS, "every cache key is still there");

    // Room again (no limit): what was due is written, exactly.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut con)
        .await
        .expect("CONFIG SET");
    let (_, fleet) = fleet_report_with(&url, SERVICE, LOADS[0].requests).await;
    let own = a.slo("10m").await;
    for key in ["requests", "counts", "latency", "slos"] {
        assert_eq!(fleet[key], own[key], "{key}: {fleet}\nvs {own}");
    }
}

/// `route`'s minute at `minute_ms` on `instance`: `ok` fast requests and
/// `failed` 5xx.
fn minute_batch(
    instance: &str,
    seq: u64,
    minute_ms: u64,
    ok: u64,
    failed: u64,
) -> lumen_middleware::wire::Batch {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for i in 0..ok + failed {
        h.record(5_000 + (i * 7_919) % 200_000).expect("in range");
    }
    lumen_middleware::wire::Batch::new(
        instance,
        seq,
        "excl-fleet-api",
        minute_ms,
        minute_ms + 59_000,
    )
    .with_series([lumen_middleware::wire::Series::new(
        Some("/ask"),
        &h,
        lumen_middleware::wire::StatusCounts {
            success: ok,
            server_error: failed,
            ..Default::default()
        },
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_marked_on_one_sidecar_leaves_every_sidecars_budget() {
    let redis = RedisProc::start().await;
    let a = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    let b = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    // Thirty minutes before now: A 1,000 requests a minute, B 600, each
    // failing more in minutes 10 to 19 (the incident).
    let first = now_ms() / 60_000 - 30;
    let incident = 10..20;
    let mut total = (0, 0);
    let mut in_incident = (0, 0);
    let mut b_in_incident = 0;
    for (sidecar, name, per, bad) in [(&a, "a", 1_000, 40), (&b, "b", 600, 30)] {
        for k in 0..30_u64 {
            let failed = if incident.contains(&k) { bad } else { 1 };
            let batch = minute_batch(name, k + 1, (first + k) * 60_000, per - failed, failed);
            let (status, body) = lumen_tests::sidecar_http::post_batch(sidecar.addr, &batch).await;
            assert_eq!(status, 200, "{body}");
            total = (total.0 + per, total.1 + failed);
            if incident.contains(&k) {
                in_incident = (in_incident.0 + per, in_incident.1 + failed);
                if name == "b" {
                    b_in_incident += per;
                }
            }
        }
    }
    let reader =
        fleet_store_reader(&redis.url, None, Some("excl-fleet-api"), None).expect("a reader");
    let availability = |budget: &lumen_sidecar::eval::BudgetReport| {
        let s = budget
            .slos
            .iter()
            .find(|s| s.name == lumen_sidecar::eval::SloName::Availability)
            .expect("availability");
        (s.events, s.bad)
    };
    let fleet_has = |want: (u64, u64)| {
        let reader = reader.clone();
        async move {
            let b = reader.budget(now_ms()).await.ok()?;
            (availability(&b) == want).then_some(())
        }
    };
    eventually(
        "the fleet store holds every request",
        Duration::from_secs(60),
        || fleet_has(total),
    )
    .await;

    // The incident marked on A only.
    let (from, to) = ((first + 10) * 60_000, (first + 20) * 60_000);
    let (code, out, err) = sidecar_cli(
        "slo",
        &[
            "exclude",
            "--url",
            &a.base(),
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--reason",
            "failover",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("shared with every sidecar through the fleet store"),
        "{out}"
    );
    // The fleet's budget leaves both out (B's part settled by A, or by B
    // itself at its next write).
    let want = (total.0 - in_incident.0, total.1 - in_incident.1);
    eventually(
        "the fleet's budget leaves the incident out",
        Duration::from_secs(60),
        || fleet_has(want),
    )
    .await;
    // B takes the mark into its own ledger at its next write.
    let b_url = format!("{}/v1/budget", b.base());
    eventually(
        "B's own budget leaves its part of the incident out",
        Duration::from_secs(60),
        || {
            let url = b_url.clone();
            async move {
                let b_budget: Value = serde_json::from_str(&get_ok(&url).await).ok()?;
                (b_budget["excluded_requests"] == b_in_incident).then_some(())
            }
        },
    )
    .await;
    let listed = get_ok(&format!("{}/v1/exclusions", b.base())).await;
    assert!(listed.contains("failover"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_on_a_sidecar_with_a_fleet_store_replays_the_whole_fleet() {
    let redis = RedisProc::start().await;
    let a = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    let b = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    // An hour before now: A 1,000 requests a minute, B 600; both fail 5 %
    // in minutes 40 to 49, one request a minute otherwise.
    let first = now_ms() / 60_000 - 60;
    let burst = 40..50;
    let mut total = (0, 0);
    let (mut exact_slow, mut near) = (0_u64, 0_u64);
    let threshold_us = 100_000;
    for (sidecar, name, per) in [(&a, "a", 1_000_u64), (&b, "b", 600)] {
        for k in 0..60_u64 {
            let failed = if burst.contains(&k) { per / 20 } else { 1 };
            let batch = minute_batch(name, k + 1, (first + k) * 60_000, per - failed, failed);
            let (status, body) = lumen_tests::sidecar_http::post_batch(sidecar.addr, &batch).await;
            assert_eq!(status, 200, "{body}");
            total = (total.0 + per, total.1 + failed);
            for i in 0..per {
                let v = 5_000 + (i * 7_919) % 200_000;
                exact_slow += u64::from(v >= threshold_us);
                near += u64::from(v.abs_diff(threshold_us) <= threshold_us / 500);
            }
        }
    }
    let reader =
        fleet_store_reader(&redis.url, None, Some("excl-fleet-api"), None).expect("a reader");
    eventually(
        "the fleet store holds every request",
        Duration::from_secs(60),
        || {
            let reader = reader.clone();
            async move {
                let b = reader.budget(now_ms()).await.ok()?;
                let s = b
                    .slos
                    .iter()
                    .find(|s| s.name == lumen_sidecar::eval::SloName::Availability)?;
                ((s.events, s.bad) == total).then_some(())
            }
        },
    )
    .await;
    let url = a.base();
    let what_if = |targets: &[&str]| {
        let mut args = vec!["what-if", "--url", url.as_str(), "--json"];
        for t in targets {
            args.extend(["--target", t]);
        }
        let (code, out, err) = sidecar_cli("slo", &args);
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let slo = |w: &Value, name: &str| -> Value {
        w["budget"]["slos"]
            .as_array()
            .expect("slos")
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .expect("the SLO")
    };
    // The configured targets: every instance's requests, A's and B's.
    let w = what_if(&[]);
    assert!(
        w["scope"].as_str().is_some_and(|s| s.contains("fleet")),
        "{w}"
    );
    let availability = slo(&w, "availability");
    assert_eq!(
        (
            availability["events"].as_u64(),
            availability["bad"].as_u64()
        ),
        (Some(total.0), Some(total.1))
    );
    assert!(w["recounted_from_ms"].is_null());
    // 99.9 %: the burst pages, starting inside it (the tickets at 1× start
    // with the data: one failure a minute is already 0.1 % and more).
    let strict = what_if(&["availability=99.9"]);
    let pages: Vec<&Value> = strict["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|x| x["slo"] == "availability" && x["severity"] == "page")
        .collect();
    assert!(!pages.is_empty(), "{strict}");
    let started = pages[0]["from_ms"].as_u64().expect("from");
    assert!(
        (first + 40) * 60_000 <= started && started <= (first + 50) * 60_000,
        "{pages:?}"
    );
    // Under the configured 99.5 % it never pages.
    assert!(
        !w["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|x| x["slo"] == "availability" && x["severity"] == "page"),
        "{w}"
    );
    // Another threshold: counted again from the fleet's histograms.
    let slow = what_if(&["latency_p95=100ms"]);
    assert!(slow["recounted_from_ms"].is_u64(), "{slow}");
    let p95 = slo(&slow, "latency_p95");
    assert_eq!(p95["events"].as_u64(), Some(total.0));
    let bad = p95["bad"].as_u64().expect("bad");
    assert!(
        bad.abs_diff(exact_slow) <= near,
        "{bad} against {exact_slow} (±{near})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_marked_after_an_instance_ended_leaves_its_minutes_too() {
    const SERVICE: &str = "ended-api";
    const MINUTES: u64 = 240;
    let redis = RedisProc::start().await;
    let a = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    let b = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    // Four hours before now, production-shaped (32 routes, about 9,300
    // requests a minute each, lognormal latencies, σ = 1).
    let workloads: Vec<lumen_tests::workload::Workload> = (0..2)
        .map(|i| {
            lumen_tests::workload::Workload {
                routes: 32,
                peak_per_minute: 1_000,
                seed: 70 + i,
                ..lumen_tests::workload::Workload::day()
            }
            .ending_now(MINUTES)
        })
        .collect();
    let first = workloads[0].start_ms / 60_000;
    for (sidecar, (i, w)) in [&a, &b].into_iter().zip(workloads.iter().enumerate()) {
        for m in 0..MINUTES {
            let (status, body) = lumen_tests::sidecar_http::post(
                sidecar.addr,
                w.batch(SERVICE, &format!("instance-{i}"), m + 1, m),
                "application/json",
                None,
            )
            .await;
            assert_eq!(status, 200, "minute {m}: {body}");
        }
    }
    let sum = |minutes: &mut dyn Iterator<Item = u64>| {
        lumen_tests::workload::Workload::fleet_requests_and_unavailable(&workloads, minutes)
    };
    let total = sum(&mut (0..MINUTES));
    let reader = fleet_store_reader(&redis.url, None, Some(SERVICE), None).expect("a reader");
    let fleet_has = |want: (u64, u64)| {
        let reader = reader.clone();
        async move {
            let b = reader.budget(now_ms()).await.ok()?;
            let s = b
                .slos
                .iter()
                .find(|s| s.name == lumen_sidecar::eval::SloName::Availability)?;
            ((s.events, s.bad) == want).then_some(())
        }
    };
    eventually(
        "the fleet store holds every request",
        Duration::from_secs(60),
        || fleet_has(total),
    )
    .await;

    // B ends (its last write done), then an incident hours back and a
    // short one minutes back are marked on A.
    let SidecarProc { proc, .. } = b;
    proc.terminate();
    let (old, recent) = (30..50, 225..232);
    for span in [&old, &recent] {
        let (code, _, err) = sidecar_cli(
            "slo",
            &[
                "exclude",
                "--url",
                &a.base(),
                "--from",
                &((first + span.start) * 60_000).to_string(),
                "--to",
                &((first + span.end) * 60_000).to_string(),
                "--reason",
                "failover",
            ],
        );
        assert_eq!(code, Some(0), "{err}");
    }
    // A settles B's hours from the minutes B stored, and no reader counts
    // B's single minutes in the marks: both instances' minutes leave.
    let off = {
        let (x, y) = sum(&mut old.clone());
        let (p, q) = sum(&mut recent.clone());
        (x + p, y + q)
    };
    eventually(
        "the fleet's budget leaves both windows out of both instances",
        Duration::from_secs(60),
        || fleet_has((total.0 - off.0, total.1 - off.1)),
    )
    .await;
    // The last hour's SLO window too (read within one minute).
    let (got, want) = loop {
        let before = now_ms() / 60_000;
        let report = reader
            .slo_report(Duration::from_secs(3600), now_ms())
            .await
            .expect("the fleet's window");
        if now_ms() / 60_000 == before {
            let want = sum(&mut (before - 59..=before)
                .filter(|abs| *abs >= first && *abs < first + MINUTES)
                .map(|abs| abs - first)
                .filter(|m| !recent.contains(m)));
            break (report.requests, want.0);
        }
    };
    assert_eq!(got, want, "the window leaves the recent mark out of both");
}

/// Whether `field` is in the hash `key`.
async fn hexists(url: &str, key: &str, field: &str) -> bool {
    let client = redis::Client::open(url).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    redis::cmd("HEXISTS")
        .arg(key)
        .arg(field)
        .query_async(&mut con)
        .await
        .expect("HEXISTS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_not_seen_for_32_days_leave_the_instances_hash() {
    use lumen_sidecar::fleet::store::{InstanceInfo, encode};
    let redis = RedisProc::start().await;
    let key = "lumen:{index-api}:i";
    let day = 86_400_000;
    let info = |days_ago: u64| {
        encode(&InstanceInfo {
            last_seen_ms: now_ms() - days_ago * day,
            revision: Some("index-api-00001-abc".into()),
            ..InstanceInfo::default()
        })
    };
    // Written before the index existed: one gone 40 days, one a day ago,
    // one that does not read.
    hset_raw(&redis.url, key, "gone-40d", &info(40)).await;
    hset_raw(&redis.url, key, "seen-1d", &info(1)).await;
    hset_raw(&redis.url, key, "junk", b"\x01\xff\x00").await;
    let sidecar = SidecarProc::start(free_port(), &fleet_env(&redis.url)).await;
    let batch = minute_batch("app-1", 1, (now_ms() / 60_000 - 1) * 60_000, 100, 1);
    let batch = lumen_middleware::wire::Batch {
        service: "index-api".into(),
        ..batch
    };
    let (status, body) = lumen_tests::sidecar_http::post_batch(sidecar.addr, &batch).await;
    assert_eq!(status, 200, "{body}");
    eventually(
        "the first write indexes the sidecars and drops the unseen ones",
        Duration::from_secs(60),
        || {
            let url = redis.url.clone();
            async move {
                let gone =
                    !hexists(&url, key, "gone-40d").await && !hexists(&url, key, "junk").await;
                gone.then_some(())
            }
        },
    )
    .await;
    assert!(hexists(&redis.url, key, "seen-1d").await, "a day ago stays");
    // One added since, last seen 33 days ago by the index: dropped at a
    // later write; the writing sidecar itself stays.
    hset_raw(&redis.url, key, "gone-33d", &info(33)).await;
    let client = redis::Client::open(redis.url.as_str()).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let () = redis::cmd("ZADD")
        .arg("lumen:{index-api}:il")
        .arg(now_ms() - 33 * day)
        .arg("gone-33d")
        .query_async(&mut con)
        .await
        .map(|_: u64| ())
        .expect("ZADD");
    eventually("a later write drops it", Duration::from_secs(60), || {
        let url = redis.url.clone();
        async move { (!hexists(&url, key, "gone-33d").await).then_some(()) }
    })
    .await;
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(key)
        .query_async(&mut con)
        .await
        .expect("HKEYS");
    assert_eq!(
        fields.len(),
        2,
        "seen-1d and the writing sidecar: {fields:?}"
    );
    assert!(fields.iter().any(|f| f == "seen-1d"), "{fields:?}");

    // A window reads the information of the sidecars seen in it, through
    // the index while it covers every field, else every field.
    let reader = fleet_store_reader(&redis.url, None, Some("index-api"), None).expect("a reader");
    hset_raw(&redis.url, key, "junk-10d", b"\x01\xff\x00").await;
    let hour = Duration::from_secs(3600);
    let w = reader.window(hour, now_ms()).await.expect("read");
    assert_eq!(
        w.unreadable,
        vec!["junk-10d".to_owned()],
        "a field the index lacks: every field is read"
    );
    let () = redis::cmd("ZADD")
        .arg("lumen:{index-api}:il")
        .arg(now_ms() - 10 * day)
        .arg("junk-10d")
        .query_async(&mut con)
        .await
        .map(|_: u64| ())
        .expect("ZADD");
    let w = reader.window(hour, now_ms()).await.expect("read");
    assert!(
        w.unreadable.is_empty(),
        "indexed as seen 10 days ago: not read for the last hour"
    );
}
