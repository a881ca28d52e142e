//! The shipper against a local HTTP server standing in for the sidecar
//! ([`lumen_tests::ingest_stand_in`]): lost acknowledgements, refused
//! batches, a sidecar that is down.

use std::net::SocketAddr;
use std::time::Duration;

use lumen_middleware::recorder::Recorder;
use lumen_middleware::{LumenConfig, ShipperHandle, pair, wire};
use lumen_tests::ingest_stand_in::{Script, StandIn};
use tokio::net::TcpListener;

fn config(addr: SocketAddr) -> LumenConfig {
    {
        let mut c = LumenConfig::default();
        c.sidecar_url = format!("http://{addr}/v1/ingest");
        c.interval = Duration::from_millis(100);
        c.request_timeout = Duration::from_millis(500);
        c.max_backoff = Duration::from_millis(200);
        c.max_pending_batches = 4;
        c
    }
}

fn start_app(config: LumenConfig) -> (Recorder, ShipperHandle) {
    let (layer, shipper) = pair(config).expect("valid");
    (layer.recorder(), shipper.spawn())
}

fn record(recorder: &Recorder, n: u64) {
    for i in 0..n {
        recorder.record_response(Some("/r"), 1_000 + i, if i % 10 == 0 { 500 } else { 200 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ack_resends_the_same_batch_and_counts_once() {
    let mut sidecar = StandIn::start(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    sidecar.script(&[Script::ApplyButLoseAck]);
    let (recorder, mut shipper) = start_app(config(sidecar.addr));
    record(&recorder, 50);
    sidecar.wait_applied(50).await;
    record(&recorder, 25);
    sidecar.wait_applied(75).await;
    let report = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_requests, 0);
    let state = sidecar.stop();
    let s = state.lock().expect("lock");
    assert_eq!(s.applied_requests, 75, "each request counted once");
    // The batch whose ack was lost came again, byte for byte, with its seq.
    let (first_seq, first_body) = &s.received[0];
    let (second_seq, second_body) = &s.received[1];
    assert_eq!(first_seq, second_seq);
    assert_eq!(first_body, second_body);
    let seqs: Vec<u64> = s.received.iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "in order: {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_down_then_back_gets_every_request_once() {
    // Reserve a port, then leave it closed: the sidecar is down.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (recorder, mut shipper) = start_app(config(addr));
    record(&recorder, 40);
    // Let the shipper fail for a while: wait until it has failed several times.
    let failed = async {
        while shipper.stats().send_failures < 5 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), failed)
        .await
        .expect("failures seen");
    record(&recorder, 60);
    let listener = TcpListener::bind(addr).await.expect("port free again");
    let mut sidecar = StandIn::start(listener).await;
    sidecar.wait_applied(100).await;
    let report = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_batches, 0);
    let state = sidecar.stop();
    let s = state.lock().expect("lock");
    assert_eq!(s.applied_requests, 100);
    // The outage lasted many intervals, yet the queue cap (4) bounded the batches.
    assert!(s.applied_batches >= 1);
    let seqs: Vec<u64> = s.received.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs[0], 1, "seq starts at 1");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no resend needed: {seqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_the_open_interval() {
    let sidecar = StandIn::start(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    let config = {
        let mut c = config(sidecar.addr);
        c.interval = Duration::from_secs(3600);
        c
    };
    let (recorder, mut shipper) = start_app(config);
    record(&recorder, 33);
    recorder.record_error(Some("/r"), 5);
    recorder.record_cancelled(Some("/r"));
    let report = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
    assert_eq!((report.unsent_batches, report.unsent_requests), (0, 0));
    let state = sidecar.stop();
    let s = state.lock().expect("lock");
    assert_eq!(s.applied_requests, 34);
    let batch = wire::decode(&s.received[0].1).expect("valid batch");
    assert_eq!(batch.series[0].errors, 1);
    assert_eq!(batch.series[0].cancelled, 1);
    assert_eq!(batch.series[0].status.server_error, 4);
    assert!(
        batch.process.is_some(),
        "process figures travel with the batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_dropped_and_counted_and_later_ones_flow() {
    let mut sidecar = StandIn::start(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    sidecar.script(&[Script::Refuse]);
    let (recorder, mut shipper) = start_app(config(sidecar.addr));
    record(&recorder, 10);
    // Wait until the first batch (holding the 10) was refused.
    let refused = async {
        while shipper.stats().batches_refused == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), refused)
        .await
        .expect("refusal seen");
    record(&recorder, 7);
    sidecar.wait_applied(7).await;
    let _ = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
    let state = sidecar.stop();
    assert_eq!(state.lock().expect("lock").applied_requests, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_ships_now_without_waiting_for_the_interval() {
    let sidecar = StandIn::start(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    let config = {
        let mut c = config(sidecar.addr);
        c.interval = Duration::from_secs(3600);
        c
    };
    let (recorder, mut shipper) = start_app(config);
    record(&recorder, 12);
    let report = shipper.flush().await.expect("the shipper runs");
    assert_eq!((report.unsent_batches, report.unsent_requests), (0, 0));
    assert_eq!(sidecar.state.lock().expect("lock").applied_requests, 12);
    record(&recorder, 3);
    assert_eq!(
        shipper
            .flush()
            .await
            .expect("the shipper runs")
            .unsent_requests,
        0
    );
    assert_eq!(sidecar.state.lock().expect("lock").applied_requests, 15);
    let _ = shipper
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the shipper runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_token_is_sent_as_a_bearer() {
    let sidecar = StandIn::start(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    let config = {
        let mut c = config(sidecar.addr);
        c.sidecar_token = Some("s3cret".into());
        c
    };
    let (recorder, mut shipper) = start_app(config);
    record(&recorder, 2);
    let _ = shipper.flush().await.expect("the shipper runs");
    let auth = sidecar.state.lock().expect("lock").authorizations.clone();
    assert!(!auth.is_empty());
    assert!(
        auth.iter().all(|a| a.as_deref() == Some("Bearer s3cret")),
        "{auth:?}"
    );
    let _ = shipper
        .shutdown(Duration::from_secs(1))
        .await
        .expect("the shipper runs");
}

#[test]
fn a_shipper_whose_task_is_gone_says_so_instead_of_reporting_zeros() {
    let (layer, shipper) = pair({
        let mut c = LumenConfig::default();
        c.sidecar_url = "http://127.0.0.1:9/v1/ingest".into();
        c
    })
    .expect("valid");
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut handle = first.block_on(async { shipper.spawn() });
    layer.recorder().record_response(Some("/a"), 1_000, 200);
    // The runtime the task ran on ends: the task goes with it.
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    second.block_on(async {
        assert_eq!(handle.flush().await, Err(lumen_middleware::ShipperGone));
        assert_eq!(
            handle.shutdown(Duration::from_millis(10)).await,
            Err(lumen_middleware::ShipperGone),
            "not a report of zeros: the recorded request was never sent"
        );
    });
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_nothing_to_send_an_unreachable_sidecar_never_holds_the_exit() {
    // The clock is tokio's paused one: it moves only by the shipper's own
    // waits, so what is measured is how long it chose to wait.
    let addr = closed_port().await;
    let config = {
        let mut c = config(addr);
        c.interval = Duration::from_secs(3600);
        c
    };
    let (_recorder, mut idle) = start_app(config.clone());
    let started = tokio::time::Instant::now();
    let report = idle
        .shutdown(Duration::from_secs(30))
        .await
        .expect("the shipper runs");
    assert_eq!((report.unsent_batches, report.unsent_requests), (0, 0));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "an idle app exits at once: waited {:?} of its 30 s grace",
        started.elapsed()
    );
    // With requests to deliver it does use the grace, and says what is left.
    let (recorder, mut busy) = start_app(config);
    record(&recorder, 10);
    let started = tokio::time::Instant::now();
    let report = busy
        .shutdown(Duration::from_secs(30))
        .await
        .expect("the shipper runs");
    assert_eq!(report.unsent_requests, 10);
    assert!(
        started.elapsed() >= Duration::from_secs(29),
        "{:?}",
        started.elapsed()
    );
}
