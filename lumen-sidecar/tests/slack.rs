//! The Slack alerter against a local stand-in of an incoming webhook, on
//! tokio's paused clock: "for" durations, one message per incident, 429 with
//! Retry-After, one message a second, permanent 4xx not retried, flapping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lumen_sidecar::alerts::{Alerter, Observed, SlackSender};
use lumen_sidecar::app::SlackStats;
use lumen_sidecar::eval::{ReportScope, Status};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Default)]
struct Hook {
    script: Vec<(u16, Option<&'static str>)>,
    arrivals: Vec<(Instant, serde_json::Value)>,
}

/// A webhook stand-in: checks the request as Slack documents it (POST,
/// JSON with `text` and `blocks`), answers as scripted, then 200.
async fn webhook(
    script: Vec<(u16, Option<&'static str>)>,
) -> (SocketAddr, Arc<Mutex<Hook>>, watch::Receiver<usize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hook = Arc::new(Mutex::new(Hook {
        script,
        arrivals: Vec::new(),
    }));
    let (count_tx, count) = watch::channel(0);
    let (shared, count_tx) = (Arc::clone(&hook), Arc::new(count_tx));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (shared, count_tx) = (Arc::clone(&shared), Arc::clone(&count_tx));
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (shared, count_tx) = (Arc::clone(&shared), Arc::clone(&count_tx));
                        async move {
                            assert_eq!(req.method(), http::Method::POST);
                            assert_eq!(req.headers()["content-type"], "application/json");
                            let body = req.into_body().collect().await?.to_bytes();
                            let json: serde_json::Value =
                                serde_json::from_slice(&body).expect("JSON body");
                            assert!(
                                json["text"].is_string() && json["blocks"].is_array(),
                                "{json}"
                            );
                            let (status, retry_after) = {
                                let mut h = shared.lock().expect("lock");
                                h.arrivals.push((Instant::now(), json));
                                let n = h.arrivals.len();
                                count_tx.send_replace(n);
                                if h.script.is_empty() {
                                    (200, None)
                                } else {
                                    h.script.remove(0)
                                }
                            };
                            let mut r = http::Response::new(Full::new(Bytes::from_static(b"ok")));
                            *r.status_mut() = http::StatusCode::from_u16(status).expect("valid");
                            if let Some(v) = retry_after {
                                r.headers_mut()
                                    .insert("retry-after", v.parse().expect("valid"));
                            }
                            Ok::<_, hyper::Error>(r)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hook, count)
}

fn sender(
    addr: SocketAddr,
) -> (
    mpsc::Sender<serde_json::Value>,
    Arc<SlackStats>,
    tokio::task::JoinHandle<()>,
) {
    let stats = Arc::new(SlackStats::default());
    let (queue, messages) = mpsc::channel(64);
    let s = SlackSender::new(
        format!("http://{addr}/services/T/B/X")
            .parse()
            .expect("uri"),
        None,
        Arc::clone(&stats),
    );
    (queue, stats, tokio::spawn(s.run(messages)))
}

fn msg(n: u32) -> serde_json::Value {
    serde_json::json!({ "text": format!("m{n}"), "blocks": [] })
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_delays_the_next_post() {
    let (addr, hook, mut count) = webhook(vec![(429, Some("2"))]).await;
    let (queue, stats, task) = sender(addr);
    queue.send(msg(1)).await.expect("queued");
    queue.send(msg(2)).await.expect("queued");
    count.wait_for(|n| *n >= 3).await.expect("three posts");
    drop(queue);
    task.await.expect("sender ends");
    let h = hook.lock().expect("lock");
    let (t0, t1, t2) = (h.arrivals[0].0, h.arrivals[1].0, h.arrivals[2].0);
    assert!(
        t1 - t0 >= Duration::from_secs(2),
        "waited {:?} after Retry-After: 2",
        t1 - t0
    );
    assert_eq!(
        h.arrivals[1].1["text"], "m1",
        "the throttled message is sent again"
    );
    assert!(t2 - t1 >= Duration::from_secs(1), "one message a second");
    assert_eq!(stats.sent.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(
        stats.throttled.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn messages_go_at_most_one_a_second() {
    let (addr, hook, mut count) = webhook(Vec::new()).await;
    let (queue, _stats, _task) = sender(addr);
    for n in 0..4 {
        queue.send(msg(n)).await.expect("queued");
    }
    count.wait_for(|n| *n >= 4).await.expect("four posts");
    let h = hook.lock().expect("lock");
    for pair in h.arrivals.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= Duration::from_secs(1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_4xx_is_not_retried() {
    let (addr, hook, mut count) = webhook(vec![(404, None)]).await;
    let (queue, stats, task) = sender(addr);
    queue.send(msg(1)).await.expect("queued");
    queue.send(msg(2)).await.expect("queued");
    count.wait_for(|n| *n >= 2).await.expect("two posts");
    drop(queue);
    task.await.expect("sender ends");
    let h = hook.lock().expect("lock");
    let texts: Vec<&str> = h
        .arrivals
        .iter()
        .map(|a| a.1["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        texts,
        ["m1", "m2"],
        "m1 was refused once and not sent again"
    );
    assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn the_alerter_fires_once_resolves_once_and_ignores_flapping() {
    let (addr, hook, mut count) = webhook(Vec::new()).await;
    let (queue, _stats, _task) = sender(addr);
    let mut alerter = Alerter::new(queue);
    let seen = |hit: f64, status: Status| Observed {
        roi: Some(900.0),
        slo_compliance: Some(100.0),
        maturity: Some(80.0),
        cache_hit_rate: Some(hit),
        status: Some(status),
    };
    let step = Duration::from_secs(10);
    // Baseline, then a breach of 4 min 50 s: shorter than the 5 min "for".
    for _ in 0..30 {
        alerter.tick(
            &seen(90.0, Status::Healthy),
            None,
            "api",
            ReportScope::Instance,
        );
        tokio::time::advance(step).await;
    }
    for _ in 0..29 {
        alerter.tick(
            &seen(50.0, Status::Healthy),
            None,
            "api",
            ReportScope::Instance,
        );
        tokio::time::advance(step).await;
    }
    alerter.tick(
        &seen(90.0, Status::Healthy),
        None,
        "api",
        ReportScope::Instance,
    );
    // Flapping status and hit rate 100 times within a minute.
    for i in 0..100 {
        let (hit, status) = if i % 2 == 0 {
            (50.0, Status::Warning)
        } else {
            (90.0, Status::Healthy)
        };
        alerter.tick(&seen(hit, status), None, "api", ReportScope::Instance);
        tokio::time::advance(Duration::from_millis(600)).await;
    }
    tokio::task::yield_now().await;
    assert_eq!(
        hook.lock().expect("lock").arrivals.len(),
        0,
        "nothing lasted long enough"
    );
    // A breach of 6 minutes: one firing.
    for _ in 0..37 {
        alerter.tick(
            &seen(45.0, Status::Healthy),
            None,
            "api",
            ReportScope::Instance,
        );
        tokio::time::advance(step).await;
    }
    count.wait_for(|n| *n >= 1).await.expect("fired");
    // Recovery: one resolve.
    for _ in 0..5 {
        alerter.tick(
            &seen(85.0, Status::Healthy),
            None,
            "api",
            ReportScope::Instance,
        );
        tokio::time::advance(step).await;
    }
    count.wait_for(|n| *n >= 2).await.expect("resolved");
    for _ in 0..30 {
        alerter.tick(
            &seen(85.0, Status::Healthy),
            None,
            "api",
            ReportScope::Instance,
        );
        tokio::time::advance(step).await;
    }
    let h = hook.lock().expect("lock");
    let texts: Vec<&str> = h
        .arrivals
        .iter()
        .map(|a| a.1["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].starts_with("FIRING: Cache Hit Rate Low on api (this instance only): 45.00%"),
        "{texts:?}"
    );
    assert!(
        texts[1].starts_with("RESOLVED: Cache Hit Rate Low on api (this instance only): 85.00%"),
        "{texts:?}"
    );
    let blocks = h.arrivals[0].1["blocks"].to_string();
    assert!(
        blocks.contains("redis-cli"),
        "the runbook travels with the alert: {blocks}"
    );
}
