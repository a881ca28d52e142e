//! The composition root: builds the sidecar (state, store, HTTP server,
//! OTLP export, Slack alerter, housekeeping) and runs them as peers with one
//! shutdown path. Only the command line ([`crate::cli`]) imports it.

mod signal;
pub use signal::shutdown_signal;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::app::wal_handle::{LogQueue, open_log};
use crate::app::{
    AppState, SharedExperiments, Shutdown, StateParts, now_ms, restore_checkpoint, save_snapshot,
    shutdown_channel,
};
use crate::config::{ExportMode, SidecarConfig};
use crate::export::{ExportError, MetricsExport};
use crate::fleet::store::{
    FleetExperiments, FleetStoreView, FleetTuning, FleetWriter, connection, fleet_instance,
    open_client,
};
use crate::google::{MetadataClient, TokenSource};

/// How often old minutes are evicted.
pub const EVICT_EVERY: Duration = Duration::from_secs(60);

/// Why the sidecar cannot serve.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
    /// The metrics export cannot start.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The fleet store's URL or CA file is unusable.
    #[error(transparent)]
    FleetStore(#[from] crate::fleet::store::FleetStoreError),
    /// The state directory cannot be read or written.
    #[error(
        "state directory {dir}: {source} (set LUMEN_STATE_DIR to a writable directory, or LUMEN_STATE_DIR=none to run without one and lose acknowledged batches on restart)"
    )]
    Wal {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The window store's memory cap: the configured one, else the least
/// of a share of the container's memory limit and a share of the state
/// volume (its checkpoint must fit there twice); said in the log either way.
/// Read once the state directory exists (the volume's size is known then).
fn memory_cap(config: &SidecarConfig) -> Option<usize> {
    use crate::app::memory_limit::{STORE_SHARE_OF_LIMIT, container_memory_limit};
    use crate::app::state_volume::{STORE_SHARE_OF_VOLUME, space};
    let mib = |b: u64| b / (1 << 20);
    let bytes = |b: u64| usize::try_from(b).unwrap_or(usize::MAX);
    if let Some(b) = config.store_max_bytes {
        tracing::info!(cap_mib = mib(b), "store memory cap from store.max_bytes");
        return Some(bytes(b));
    }
    let of_memory = container_memory_limit().map(|limit| {
        let b = (limit as f64 * STORE_SHARE_OF_LIMIT) as u64;
        tracing::info!(
            cap_mib = mib(b),
            limit_mib = mib(limit),
            share = STORE_SHARE_OF_LIMIT,
            "store memory cap: a share of the container's memory limit"
        );
        b
    });
    let of_volume = config
        .state_dir
        .as_deref()
        .and_then(|dir| space(dir, config.state_max_bytes, 0).ok())
        .map(|volume| {
            let b = (volume.total as f64 * STORE_SHARE_OF_VOLUME) as u64;
            tracing::info!(
                cap_mib = mib(b),
                volume_mib = mib(volume.total),
                share = STORE_SHARE_OF_VOLUME,
                "store memory cap: a share of the state volume (its checkpoint fits there twice)"
            );
            b
        });
    let cap = of_memory.into_iter().chain(of_volume).min();
    match cap {
        Some(b) => tracing::info!(cap_mib = mib(b), "store memory cap set"),
        None => tracing::info!(
            "no container memory limit, no state volume and no store.max_bytes: the store has no memory cap"
        ),
    }
    cap.map(bytes)
}

/// Replays the write-ahead log in `dir` into `state`, then starts its
/// writer (`log`) on a new segment.
fn replay_and_start_wal(
    state: &Arc<AppState>,
    dir: &std::path::Path,
    log: LogQueue,
) -> std::io::Result<()> {
    let replayed = crate::app::wal_writer::replay(state, dir)?;
    tracing::info!(
        dir = %dir.display(),
        segments = replayed.segments,
        records = replayed.records,
        applied = replayed.applied,
        torn = replayed.torn,
        "write-ahead log replayed"
    );
    crate::app::wal_writer::start(state, log, replayed.last_segment + 1)
}

/// The fleet's parts a sidecar holds: the store's writer and tuning, its
/// experiments, and the view its handlers serve (the fleet store's, else a
/// query API's, else none).
struct FleetParts {
    writer: Option<(FleetWriter, FleetTuning)>,
    experiments: Option<FleetExperiments>,
    view: Option<Arc<dyn crate::app::FleetView>>,
}

impl FleetParts {
    fn of(config: &SidecarConfig) -> Result<Self, ServeError> {
        if let Some(url) = &config.fleet_store.redis_url {
            let client = open_client(url, config.fleet_store.ca_file.as_deref())?;
            let instance = fleet_instance(config);
            tracing::info!(%instance, "writing minutes to the fleet store");
            let con = connection(client)?;
            let view = FleetStoreView::new(con.clone(), config.clone());
            let tuning = FleetTuning::new(con.clone(), &instance);
            let experiments = FleetExperiments::new(con.clone(), &instance);
            return Ok(Self {
                writer: Some((
                    FleetWriter::new(con, instance, config.retention)
                        .with_memory_share(config.fleet_store.memory_share_percent)
                        .with_compaction_every(config.fleet_store.compact_every),
                    tuning,
                )),
                experiments: Some(experiments),
                view: Some(Arc::new(view)),
            });
        }
        let view = config.fleet_store.prometheus_url.as_ref().map(|url| {
            tracing::info!(url = %crate::config::redact::redact(url), "serving the fleet from a Prometheus query API");
            Arc::new(crate::fleet::PrometheusView::new(
                crate::fleet::QueryApi::new(url, None),
                config.clone(),
            )) as Arc<dyn crate::app::FleetView>
        });
        Ok(Self {
            writer: None,
            experiments: None,
            view,
        })
    }
}

/// A bound sidecar, ready to run.
#[derive(Debug)]
pub struct Sidecar {
    state: Arc<AppState>,
    /// The one Google token source, on Google Cloud (shared by the peers).
    tokens: Option<Arc<TokenSource>>,
    listener: TcpListener,
    export: Option<MetricsExport>,
    fleet_writer: Option<(FleetWriter, FleetTuning)>,
    fleet_experiments: Option<FleetExperiments>,
}

impl Sidecar {
    /// Restores the store, binds the listen address, builds the state
    /// whole (log, memory cap, fleet, export queue), replays the log,
    /// starts the export.
    pub async fn bind(config: SidecarConfig) -> Result<Self, ServeError> {
        let (store, kept) = restore_checkpoint(&config);
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let wal_error = |dir: &std::path::Path| {
            let dir = dir.to_owned();
            move |source| ServeError::Wal { dir, source }
        };
        let log = match &config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(wal_error(dir))?;
                Some(open_log(dir, config.state_max_bytes))
            }
            None => None,
        };
        let (wal, log) = log.unzip();
        let fleet = FleetParts::of(&config)?;
        let (histogram_feed, mut histogram_queue) = if config.export.mode == ExportMode::Off {
            (None, None)
        } else {
            let (feed, queue) = tokio::sync::mpsc::channel(crate::export::FEED_CAPACITY);
            (Some(feed), Some(queue))
        };
        let state = Arc::new(AppState::from_parts(StateParts {
            memory_cap: memory_cap(&config),
            wal,
            histogram_feed,
            fleet_view: fleet.view,
            shared_experiments: fleet
                .experiments
                .clone()
                .map(|x| Arc::new(x) as Arc<dyn SharedExperiments>),
            kept,
            ..StateParts::new(config, store)
        }));
        if let (Some(dir), Some(log)) = (state.config.state_dir.clone(), log) {
            replay_and_start_wal(&state, &dir, log).map_err(wal_error(&dir))?;
        }
        // The log's replay is no new traffic: the exported histogram (which
        // starts with this process) takes only what arrives from now on.
        if let Some(queue) = histogram_queue.as_mut() {
            while queue.try_recv().is_ok() {
                state
                    .export_stats
                    .histogram_feed_pending
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        // After the replay: the cap holds over what the log brought back,
        // and a restored experiment keeps its counts.
        state.fit_memory_cap(now_ms());
        state.experiments.start_configured(now_ms());
        let e = &state.config.export;
        let tokens = (e.google_auth || e.cloud_run.is_some())
            .then(|| Arc::new(TokenSource::new(MetadataClient::new(&e.metadata_host))));
        let export =
            MetricsExport::start(&state.config, &state, tokens.clone(), histogram_queue).await?;
        Ok(Self {
            state,
            tokens,
            listener,
            export,
            fleet_writer: fleet.writer,
            fleet_experiments: fleet.experiments,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` resolves, then stops every peer, drains HTTP
    /// for at most the grace period, exports once more and writes a last
    /// snapshot.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state;
        let grace = state.config.grace_period;
        let (trigger, stop) = shutdown_channel();
        // Fired once the server has drained: the fleet store's last write
        // then holds every batch acknowledged.
        let (drained_trigger, drained) = shutdown_channel();

        let mut peers = JoinSet::new();
        peers.spawn(housekeeping(Arc::clone(&state), stop.clone()));
        if let (Some(_), Some(tokens)) = (&state.config.export.cloud_run, &self.tokens) {
            peers.spawn(crate::google::deployments::run(
                Arc::clone(&state),
                state.config.cloud_run_api.clone(),
                Arc::clone(tokens),
                stop.clone(),
            ));
        }
        let (fleet_writer, fleet_tuning) = match self.fleet_writer {
            Some((w, t)) => (Some(w), Some(t)),
            None => (None, None),
        };
        if let Some(writer) = fleet_writer {
            peers.spawn(writer.run(
                Arc::clone(&state),
                state.config.fleet_store.write_interval,
                drained,
            ));
        }
        match self.fleet_experiments {
            Some(fleet) => {
                peers.spawn(fleet_experiment_looks(
                    Arc::clone(&state),
                    fleet,
                    stop.clone(),
                ));
            }
            None => {
                peers.spawn(experiment_looks(Arc::clone(&state), stop.clone()));
            }
        }
        if state.config.feedback.mode != crate::config::FeedbackMode::Off {
            peers.spawn(feedback(Arc::clone(&state), fleet_tuning, stop.clone()));
            tracing::info!(
                mode = state.config.feedback.mode.as_str(),
                "feedback loop on"
            );
        }
        if let Some(url) = &state.config.slack_webhook_url {
            let webhook = url.parse().expect("validated with the config");
            peers.spawn(crate::alerts::run(
                Arc::clone(&state),
                webhook,
                stop.clone(),
            ));
            tracing::info!("Slack alerts on");
        }

        tracing::info!(addr = %self.listener.local_addr().map_err(ServeError::Serve)?, "lumen-sidecar serving");
        let mut graceful = stop.clone();
        let serve = crate::listen::connections::serve(
            self.listener,
            crate::server::router(Arc::clone(&state)),
            crate::listen::connections::ListenerLimits::of(&state.config),
            async move { graceful.fired().await },
        );
        tokio::pin!(serve);
        let result = tokio::select! {
            r = &mut serve => r.map_err(ServeError::Serve),
            () = shutdown => {
                trigger.fire();
                match tokio::time::timeout(grace, &mut serve).await {
                    Ok(r) => r.map_err(ServeError::Serve),
                    Err(_) => {
                        tracing::warn!(?grace, "grace period over with connections still open");
                        Ok(())
                    }
                }
            }
        };
        // Whichever ended first, every peer stops now, by the same signal.
        trigger.fire();
        drained_trigger.fire();
        while tokio::time::timeout(grace, peers.join_next())
            .await
            .is_ok_and(|joined| joined.is_some())
        {}
        peers.shutdown().await;
        if let Some(export) = self.export {
            export.shutdown(grace).await;
        }
        save_snapshot(&state);
        tracing::info!("lumen-sidecar stopped");
        result
    }
}

/// The feedback loop: one decision per interval, on this sidecar's
/// lookups, or with a fleet store once for the whole fleet (by whichever
/// sidecar takes the interval's lock).
async fn feedback(state: Arc<AppState>, fleet: Option<FleetTuning>, mut stop: Shutdown) {
    let interval = state.config.feedback.interval;
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    if fleet.is_none() {
        // The first decision counts from here, not from restored totals.
        state.start_tuning(now_ms());
    }
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.fired() => return,
            _ = every.tick() => {}
        }
        let Some(fleet) = &fleet else {
            state.decide_tuning(now_ms());
            continue;
        };
        match fleet.step(&state, interval, now_ms()).await {
            Ok(decided) => {
                if std::mem::replace(&mut failing, false) || decided {
                    tracing::debug!(decided, "feedback loop: fleet interval");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "feedback loop: the fleet store is unavailable; the parameters in force stay");
            }
            Err(_) => {}
        }
    }
}

/// Looks at the running experiment every `experiment.check_interval`
/// (a look may decide it).
async fn experiment_looks(state: Arc<AppState>, mut stop: Shutdown) {
    let mut every = tokio::time::interval(state.config.experiment.check_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            () = stop.fired() => return,
            _ = every.tick() => {}
        }
        state.experiments.look(now_ms());
    }
}

/// The fleet's experiments: every tick (the look interval, or the fleet
/// store's write interval when shorter) this sidecar serves the store's
/// state, and the one holding the lock looks when a look is due.
async fn fleet_experiment_looks(state: Arc<AppState>, fleet: FleetExperiments, mut stop: Shutdown) {
    let look = state.config.experiment.check_interval;
    let tick = look.min(state.config.fleet_store.write_interval);
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.fired() => return,
            _ = every.tick() => {}
        }
        match fleet.step(&state, look, now_ms()).await {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "experiments: the fleet store is unavailable; the experiment in force stays");
            }
            Err(_) => {}
        }
    }
}

/// The least time between two checkpoints the log asks for.
const CHECKPOINT_AT_MOST_EVERY: Duration = Duration::from_secs(1);

async fn housekeeping(state: Arc<AppState>, mut stop: Shutdown) {
    let mut evict = tokio::time::interval(EVICT_EVERY);
    let mut snap = tokio::time::interval(state.config.snapshot_interval);
    evict.tick().await;
    snap.tick().await;
    let room = state.wal().map(|w| w.room());
    let checkpoint_wanted = async || match &room {
        Some(room) => room.checkpoint_wanted().await,
        None => std::future::pending().await,
    };
    loop {
        tokio::select! {
            () = stop.fired() => return,
            _ = evict.tick() => {
                state.store().evict(now_ms());
                state.fit_memory_cap(now_ms());
            }
            _ = snap.tick() => {
                let s = Arc::clone(&state);
                let _ = tokio::task::spawn_blocking(move || save_snapshot(&s)).await;
            }
            () = checkpoint_wanted() => {
                // The log has no room until a checkpoint covers it; at
                // most one such checkpoint a second.
                let s = Arc::clone(&state);
                let _ = tokio::task::spawn_blocking(move || save_snapshot(&s)).await;
                snap.reset();
                tokio::time::sleep(CHECKPOINT_AT_MOST_EVERY).await;
            }
        }
    }
}
