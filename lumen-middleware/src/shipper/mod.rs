//! The [`Shipper`]: closes an interval every `interval`, sends batches to the
//! sidecar one at a time, resends until acknowledged.

mod backoff;
mod client;
mod queue;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::LumenConfig;
use crate::process::read_process_stats;
use crate::registry::Registry;
use crate::wire::{self, Batch};
use backoff::Backoff;
use client::SidecarClient;
use queue::{BatchQueue, batch_requests};

/// How often a repeated delivery failure is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The shipper's live counters (written by its task, read through [`ShipperStats`]).
#[derive(Debug, Default)]
pub(crate) struct ShipperCounters {
    pub(crate) batches_acknowledged: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) batches_merged: AtomicU64,
    pub(crate) batches_refused: AtomicU64,
    pub(crate) requests_acknowledged: AtomicU64,
    pub(crate) configuration_errors: AtomicU64,
}

/// A shipper's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShipperStats {
    /// Batches the sidecar acknowledged.
    pub batches_acknowledged: u64,
    /// Sends that failed and will be retried.
    pub send_failures: u64,
    /// Intervals merged into an unsent batch because the queue was full.
    pub batches_merged: u64,
    /// Batches the sidecar refused for good (400/413): their counts are lost.
    pub batches_refused: u64,
    /// Requests in acknowledged batches.
    pub requests_acknowledged: u64,
    /// Sends answered 401, 403, 404, 405 or 409: the app's or the sidecar's
    /// configuration is wrong (logged as errors; the batches are kept).
    pub configuration_errors: u64,
}

impl ShipperCounters {
    fn read(&self) -> ShipperStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ShipperStats {
            batches_acknowledged: get(&self.batches_acknowledged),
            send_failures: get(&self.send_failures),
            batches_merged: get(&self.batches_merged),
            batches_refused: get(&self.batches_refused),
            requests_acknowledged: get(&self.requests_acknowledged),
            configuration_errors: get(&self.configuration_errors),
        }
    }
}

/// What a shutdown left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "a shutdown report says what was not delivered; log it"]
pub struct ShutdownReport {
    /// Batches still unacknowledged at the deadline.
    pub unsent_batches: usize,
    /// Requests in them.
    pub unsent_requests: u64,
}

/// The shipper's task is gone (it panicked, or the runtime it ran on shut
/// down): nothing more is shipped, and what it held is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Lumen shipper's task has stopped (it panicked or its runtime shut down): nothing more is shipped"
)]
pub struct ShipperGone;

/// Sends what a [`LumenLayer`](crate::LumenLayer) records. Made by
/// [`pair`](crate::pair); start it with [`spawn`](Self::spawn).
#[must_use = "nothing is shipped until the shipper is spawned"]
pub struct Shipper {
    registry: &'static Registry,
    config: LumenConfig,
    client: SidecarClient,
    queue: BatchQueue,
    instance: String,
    interval_start_ms: u64,
    stats: Arc<ShipperCounters>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("instance", &self.instance)
            .field("sidecar_url", &self.config.sidecar_url)
            .finish_non_exhaustive()
    }
}

/// Controls a running [`Shipper`]. Dropping it stops the shipper at once,
/// unsent intervals and all: keep it, and call [`shutdown`](Self::shutdown)
/// before the process ends.
#[derive(Debug)]
#[must_use = "dropping the handle stops shipping at once; keep it and call shutdown"]
pub struct ShipperHandle {
    stop: Option<oneshot::Sender<Instant>>,
    flush: mpsc::Sender<oneshot::Sender<ShutdownReport>>,
    task: Option<JoinHandle<ShutdownReport>>,
    stats: Arc<ShipperCounters>,
    instance: String,
}

impl ShipperHandle {
    /// Closes the current interval and sends everything left, giving up at
    /// `grace` from now (Cloud Run allows 10 s after SIGTERM). The handle
    /// stays, so [`stats`](Self::stats) can be read after; a second call
    /// reports nothing left. An error when the shipper's task is gone
    /// without a report (it panicked, or its runtime shut down): what it
    /// held is lost, and the caller should say so.
    pub async fn shutdown(&mut self, grace: Duration) -> Result<ShutdownReport, ShipperGone> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Instant::now() + grace);
        }
        let nothing = ShutdownReport {
            unsent_batches: 0,
            unsent_requests: 0,
        };
        match self.task.take() {
            Some(task) => task.await.map_err(|_| ShipperGone),
            None => Ok(nothing),
        }
    }

    /// Closes the current interval now and tries once to send everything
    /// queued; returns what is still unsent (retries go on as usual). For
    /// demos and tests that must not wait for the interval. An error when
    /// the shipper's task is gone (its runtime shut down, or it panicked):
    /// nothing is shipped any more.
    pub async fn flush(&self) -> Result<ShutdownReport, ShipperGone> {
        let (reply, answer) = oneshot::channel();
        self.flush.send(reply).await.map_err(|_| ShipperGone)?;
        answer.await.map_err(|_| ShipperGone)
    }

    /// The shipper's counters now.
    pub fn stats(&self) -> ShipperStats {
        self.stats.read()
    }

    /// This process's instance id, as sent in every batch.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn new_instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Shipper {
    pub(crate) fn new(
        registry: &'static Registry,
        config: LumenConfig,
    ) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        let url: http::Uri =
            config
                .ingest_url()
                .parse()
                .map_err(|e| crate::ConfigError::Invalid {
                    key: "sidecar_url",
                    reason: format!("{e}"),
                })?;
        Ok(Self {
            registry,
            client: SidecarClient::new(
                url,
                config.request_timeout,
                config.sidecar_token.as_deref(),
            ),
            queue: BatchQueue::new(config.max_pending_batches),
            instance: new_instance_id(),
            interval_start_ms: now_ms(),
            stats: Arc::default(),
            config,
        })
    }

    /// This process's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Runs the shipper on the current tokio runtime.
    pub fn spawn(self) -> ShipperHandle {
        let (stop, stopped) = oneshot::channel();
        let (flush, flushes) = mpsc::channel(4);
        let stats = Arc::clone(&self.stats);
        let instance = self.instance.clone();
        let task = tokio::spawn(self.run(stopped, flushes));
        ShipperHandle {
            stop: Some(stop),
            flush,
            task: Some(task),
            stats,
            instance,
        }
    }

    async fn run(
        mut self,
        mut stopped: oneshot::Receiver<Instant>,
        mut flushes: mpsc::Receiver<oneshot::Sender<ShutdownReport>>,
    ) -> ShutdownReport {
        let mut next_interval = Instant::now() + self.config.interval;
        let mut retry_at: Option<Instant> = None;
        let mut backoff = Backoff::new(self.config.max_backoff);
        let mut log = FailureLog::default();
        loop {
            tokio::select! {
                deadline = &mut stopped => {
                    let deadline = deadline.unwrap_or_else(|_| Instant::now());
                    self.close_interval();
                    return self.flush(deadline, &mut log).await;
                }
                () = tokio::time::sleep_until(next_interval) => {
                    self.close_interval();
                    next_interval += self.config.interval;
                    if next_interval < Instant::now() {
                        next_interval = Instant::now() + self.config.interval;
                    }
                    if retry_at.is_none() {
                        retry_at = self.send_all(&mut backoff, &mut log).await;
                    }
                }
                () = sleep_until_opt(retry_at), if retry_at.is_some() => {
                    retry_at = self.send_all(&mut backoff, &mut log).await;
                }
                Some(reply) = flushes.recv() => {
                    self.close_interval();
                    retry_at = self.send_all(&mut backoff, &mut log).await;
                    let _ = reply.send(ShutdownReport {
                        unsent_batches: self.queue.len(),
                        unsent_requests: self.queue.requests(),
                    });
                }
            }
        }
    }

    /// Drains the registry into a new queued batch.
    fn close_interval(&mut self) {
        let end_ms = now_ms().max(self.interval_start_ms);
        let series = self
            .registry
            .drain()
            .into_iter()
            .map(|s| s.to_wire())
            .collect();
        let batch = Batch {
            version: wire::WIRE_VERSION,
            instance: self.instance.clone(),
            seq: 0,
            service: self.config.service.clone(),
            revision: self.config.revision.clone(),
            start_ms: self.interval_start_ms,
            end_ms,
            process: read_process_stats(),
            series,
        };
        self.interval_start_ms = end_ms;
        if self.queue.push(batch) {
            self.stats.batches_merged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends queued batches in order until the queue is empty (None) or a
    /// send fails (Some(when to retry)).
    async fn send_all(&mut self, backoff: &mut Backoff, log: &mut FailureLog) -> Option<Instant> {
        while let Some(batch) = self.queue.front() {
            let seq = batch.seq;
            let requests = batch_requests(batch);
            let body = Bytes::from(serde_json::to_vec(batch).expect("a batch always serializes"));
            match self.client.post(body).await {
                Ok(applied) if self.queue.acknowledge(applied) => {
                    backoff.reset();
                    log.recovered(&self.instance);
                    self.stats
                        .batches_acknowledged
                        .fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .requests_acknowledged
                        .fetch_add(requests, Ordering::Relaxed);
                }
                Ok(applied) => {
                    self.stats.send_failures.fetch_add(1, Ordering::Relaxed);
                    log.failed(
                        &format!("sidecar acknowledged seq {applied}, not {seq}"),
                        self.client.url(),
                    );
                    return Some(Instant::now() + backoff.next_wait());
                }
                Err(e) if e.is_configuration() => {
                    self.stats
                        .configuration_errors
                        .fetch_add(1, Ordering::Relaxed);
                    log.misconfigured(&e, self.client.url());
                    return Some(Instant::now() + backoff.next_wait());
                }
                Err(e) if e.is_permanent() => {
                    self.queue.discard_front();
                    self.stats.batches_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(seq, requests, error = %e, "sidecar refused a batch; its counts are lost");
                }
                Err(e) => {
                    self.stats.send_failures.fetch_add(1, Ordering::Relaxed);
                    log.failed(&e.to_string(), self.client.url());
                    return Some(Instant::now() + backoff.next_wait());
                }
            }
        }
        None
    }

    async fn flush(mut self, deadline: Instant, log: &mut FailureLog) -> ShutdownReport {
        let mut backoff = Backoff::new(Duration::from_millis(500));
        if self.queue.holds_no_series() {
            // Idle intervals only: nothing counted would be lost, so an
            // unreachable sidecar never holds the app's exit.
            return ShutdownReport {
                unsent_batches: 0,
                unsent_requests: 0,
            };
        }
        while self.queue.len() > 0 {
            let attempt = tokio::time::timeout_at(deadline, self.send_all(&mut backoff, log)).await;
            match attempt {
                Ok(None) => break,
                Ok(Some(retry)) if retry < deadline => tokio::time::sleep_until(retry).await,
                _ => break,
            }
        }
        let report = ShutdownReport {
            unsent_batches: self.queue.len(),
            unsent_requests: self.queue.requests(),
        };
        if report.unsent_batches > 0 {
            tracing::warn!(?report, "shutdown deadline reached with batches unsent");
        } else {
            tracing::info!("shipper flushed everything before shutdown");
        }
        report
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Logs the first failure of an outage, then at most once a minute with the
/// number of failures in between, and the recovery.
#[derive(Default)]
struct FailureLog {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl FailureLog {
    /// Notes a failure; `Some(failures suppressed since the last log)` when
    /// this one is to be logged (the first, then at most once a minute).
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        match self.last_logged {
            Some(at) if now.duration_since(at) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    fn failed(&mut self, error: &str, url: &http::Uri) {
        if let Some(suppressed) = self.due() {
            tracing::warn!(
                %url,
                error,
                suppressed,
                "cannot deliver a batch to the sidecar at this URL (LUMEN_SIDECAR_URL); will retry"
            );
        }
    }

    /// A configuration error: logged as an error with what to fix, at most
    /// once a minute, the batch kept.
    fn misconfigured(&mut self, error: &client::SendError, url: &http::Uri) {
        if let Some(suppressed) = self.due() {
            tracing::error!(
                %url,
                error = %error,
                fix = error.hint(),
                suppressed,
                "the sidecar refuses this app's batches: a configuration error; batches are kept until it is fixed"
            );
        }
    }

    fn recovered(&mut self, instance: &str) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(instance, outage = ?since.elapsed(), "sidecar reachable again");
            self.last_logged = None;
            self.suppressed = 0;
        }
    }
}
