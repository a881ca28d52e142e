//! Slow clients cannot hold the door: a sidecar with 256 file descriptors
//! (as a small container has) under 300 connections that trickle a byte a
//! second still serves real ingest, because each listener closes
//! connections beyond its cap at accept and disconnects a client that has
//! not sent a request's head within the header-read timeout.

use std::process::Command;
use std::time::{Duration, Instant};

use lumen_tests::*;
use tokio::io::AsyncWriteExt;

/// POSTs `body` to `url`, giving up after `limit`: the status, or `None`
/// when there was no answer (refused, reset, timed out).
async fn try_post(url: &str, body: Vec<u8>, limit: Duration) -> Option<u16> {
    let client = lumen_tests::json_client::JsonClient::default();
    let url = url.to_owned();
    let task = tokio::spawn(async move { client.post(&url, body).await.0 });
    tokio::time::timeout(limit, task).await.ok()?.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_trickling_connections_do_not_stop_ingest() {
    let port = free_port();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" serve")
        .arg(binary("lumen-sidecar"))
        .env("LUMEN_LISTEN", format!("127.0.0.1:{port}"))
        .env("LUMEN_MAX_CONNECTIONS", "64")
        .env("LUMEN_HEADER_READ_TIMEOUT", "2s");
    let sidecar = Proc::spawn("sidecar", cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "/healthz").await;

    // 300 connections, each sending a request head one byte a second.
    let mut trickles = Vec::new();
    for _ in 0..300 {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            continue;
        };
        trickles.push(tokio::spawn(async move {
            for byte in b"POST /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n".iter() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    assert!(
        trickles.len() > 256,
        "{} connections opened",
        trickles.len()
    );

    // Real ingest is served while they trickle (each try bounded; the
    // whole within 30 s).
    let workload = lumen_tests::workload::Workload {
        routes: 4,
        peak_per_minute: 500,
        ..lumen_tests::workload::Workload::day()
    }
    .ending_now(2);
    let body = workload.batch("slow-api", "i1", 1, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = None;
    while Instant::now() < deadline {
        answered = try_post(
            &format!("{base}/v1/ingest"),
            body.clone(),
            Duration::from_secs(3),
        )
        .await;
        if answered.is_some() {
            break;
        }
    }
    assert_eq!(answered, Some(200), "{}", sidecar.log_text());
    let metrics = get_ok(&format!("{base}/metrics")).await;
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lumen_connections_refused_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(refused > 0, "the cap closed connections at accept");
    for t in trickles {
        t.abort();
    }
}
