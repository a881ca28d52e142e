//! A local HTTP server standing in for the sidecar's ingest, for the
//! shipper's tests: it decodes each batch with `wire::decode`, dedups by
//! (instance, seq) as the sidecar does, and can be scripted to lose
//! acknowledgements or refuse batches.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lumen_middleware::wire;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the stand-in does with the next batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Script {
    /// Apply it, then answer 503 as if the acknowledgement were lost.
    ApplyButLoseAck,
    /// Refuse it with 400 without applying.
    Refuse,
}

/// What the stand-in saw and applied.
#[derive(Debug, Default)]
pub struct State {
    /// What to do with the next batches.
    pub script: VecDeque<Script>,
    /// Each instance's last applied sequence number.
    pub applied_seq: HashMap<String, u64>,
    /// Every (seq, body) received, in order.
    pub received: Vec<(u64, Bytes)>,
    /// Requests of the applied batches.
    pub applied_requests: u64,
    /// Batches applied.
    pub applied_batches: u64,
    /// The `authorization` header of every request.
    pub authorizations: Vec<Option<String>>,
}

/// The stand-in: where it listens and what it holds.
#[derive(Debug)]
pub struct StandIn {
    /// Its address.
    pub addr: SocketAddr,
    /// What it saw and applied.
    pub state: Arc<Mutex<State>>,
    applied: watch::Receiver<u64>,
    server: tokio::task::JoinHandle<()>,
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    applied: Arc<watch::Sender<u64>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let authorization = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().expect("ascii").to_owned());
    state
        .lock()
        .expect("lock")
        .authorizations
        .push(authorization);
    let body = req.into_body().collect().await?.to_bytes();
    let batch = match wire::decode(&body) {
        Ok(b) => b,
        Err(e) => {
            return Ok(answer(StatusCode::BAD_REQUEST, e.to_string()));
        }
    };
    let mut s = state.lock().expect("lock");
    s.received.push((batch.seq, body.clone()));
    let script = s.script.pop_front();
    if script == Some(Script::Refuse) {
        return Ok(answer(StatusCode::BAD_REQUEST, "refused by script".into()));
    }
    let last = s.applied_seq.get(&batch.instance).copied().unwrap_or(0);
    if batch.seq > last {
        let requests: u64 = batch
            .series
            .iter()
            .map(|x| x.status.checked_total().expect("small") + x.errors)
            .sum();
        s.applied_requests += requests;
        s.applied_batches += 1;
        s.applied_seq.insert(batch.instance.clone(), batch.seq);
        applied.send_replace(s.applied_requests);
    }
    let ack = s.applied_seq[&batch.instance];
    if script == Some(Script::ApplyButLoseAck) {
        return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, "ack lost".into()));
    }
    Ok(answer(StatusCode::OK, format!("{{\"applied_seq\":{ack}}}")))
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

impl StandIn {
    /// Serves on `listener` until stopped.
    pub async fn start(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("bound");
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, applied) = watch::channel(0);
        let tx = Arc::new(tx);
        let server_state = Arc::clone(&state);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&server_state);
                let tx = Arc::clone(&tx);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, Arc::clone(&state), Arc::clone(&tx))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            applied,
            server,
        }
    }

    /// Queues what to do with the next batches.
    pub fn script(&self, steps: &[Script]) {
        self.state.lock().expect("lock").script.extend(steps);
    }

    /// Waits until `n` requests were applied (bounded: a failure, not a sleep).
    pub async fn wait_applied(&mut self, n: u64) {
        let waited =
            tokio::time::timeout(Duration::from_secs(20), self.applied.wait_for(|a| *a >= n));
        waited
            .await
            .expect("requests applied in time")
            .expect("stand-in alive");
    }

    /// Stops serving; what it holds.
    pub fn stop(self) -> Arc<Mutex<State>> {
        self.server.abort();
        self.state
    }
}
