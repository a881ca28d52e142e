//! The A/B experiments over the fleet store: one experiment for the whole
//! fleet. Its definition, verdicts and timeline are kept in the store
//! (JSON); each sidecar writes its own instance's arm counts with its
//! instance info; once per look interval, one sidecar (the one that holds
//! the experiments' lock, `SET … NX PX`) sums every instance's counts,
//! looks and writes the result (and for a while after a decision, sums
//! the requests apps served in an arm before they heard of it); every
//! sidecar serves the shared state, so every app instance runs the same
//! arms and gets the same decision.
//! Commands (start, stop) take the same lock, so none is lost to a look.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::block::{
    InstanceInfo, fleet_cost_between, instance_infos, read_json, take_lock, write_json,
};
use super::error::FleetStoreError;
use super::keys::FleetKeys;
use crate::app::experiments::{
    ArmData, ExperimentCommand, ExperimentError, ExperimentReport, Experiments,
};
use crate::app::{AppState, CommandFuture, ExperimentsHub, SharedExperiments, now_ms};

/// How long the experiments' lock is held at most (a holder that dies
/// frees it after this).
pub const LOCK_HOLD: Duration = Duration::from_secs(10);
/// How long a command waits for the lock.
pub const COMMAND_WAIT: Duration = Duration::from_secs(3);

/// The fleet's experiments, as one sidecar takes part in them.
#[derive(Clone)]
pub struct FleetExperiments {
    con: ConnectionManager,
    instance: String,
}

impl std::fmt::Debug for FleetExperiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetExperiments")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Every instance's counts summed, by experiment.
pub fn fleet_counts(infos: &BTreeMap<String, InstanceInfo>) -> BTreeMap<u32, ArmData> {
    let mut sums: BTreeMap<u32, ArmData> = BTreeMap::new();
    for info in infos.values() {
        for (id, data) in &info.experiment_counts {
            sums.entry(*id).or_default().add(data);
        }
    }
    sums
}

impl FleetExperiments {
    /// This sidecar (`instance`) in its service's fleet.
    pub fn new(con: ConnectionManager, instance: &str) -> Self {
        Self {
            con,
            instance: instance.to_owned(),
        }
    }

    async fn try_lock(&self, keys: &FleetKeys) -> Result<bool, FleetStoreError> {
        take_lock(
            &self.con,
            keys.experiments_lock(),
            &self.instance,
            LOCK_HOLD,
            "taking the experiments' lock",
        )
        .await
    }

    async fn unlock(&self, keys: &FleetKeys) {
        // Only our own lock: compare and delete in one step.
        let mut con = self.con.clone();
        let freed: Result<i64, _> = redis::cmd("EVAL")
            .arg("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
            .arg(1)
            .arg(keys.experiments_lock())
            .arg(&self.instance)
            .query_async(&mut con)
            .await;
        if let Err(e) = freed {
            tracing::warn!(error = %e, "the experiments' lock was not freed; it expires by itself");
        }
    }

    async fn load(&self, keys: &FleetKeys) -> Result<Option<Experiments>, FleetStoreError> {
        read_json(&self.con, keys.experiments(), "reading the experiments").await
    }

    async fn save(&self, keys: &FleetKeys, hub: &ExperimentsHub) -> Result<(), FleetStoreError> {
        let shared = hub.shared_state();
        write_json(
            &self.con,
            keys.experiments(),
            &shared,
            "writing the experiments",
        )
        .await
    }

    /// Sets the experiments' counts to every instance's summed (this
    /// one's as it is now: its info in the store may be a write behind)
    /// and their compute cost to every instance's, at `now_ms`.
    async fn count(
        &self,
        keys: &FleetKeys,
        hub: &ExperimentsHub,
        now_ms: u64,
    ) -> Result<(), FleetStoreError> {
        let mut infos = instance_infos(&self.con, keys).await?;
        let mine = infos.entry(self.instance.clone()).or_default();
        mine.experiment_counts = hub.own_counts();
        hub.set_fleet_counts(
            &fleet_counts(&infos),
            |from_ms, to_ms| fleet_cost_between(&infos, from_ms, to_ms),
            now_ms,
        );
        Ok(())
    }

    /// Takes the store's state; with none there yet, this sidecar's own
    /// (an experiment started before the store was reachable) becomes it.
    async fn adopt(&self, keys: &FleetKeys, hub: &ExperimentsHub) -> Result<bool, FleetStoreError> {
        match self.load(keys).await? {
            Some(shared) => {
                hub.adopt(shared);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One tick at `now_ms`: with the lock, a look if one is due (every
    /// `every`) on the fleet's sums, written back; always, the store's
    /// state served here. Whether this sidecar looked.
    pub async fn step(
        &self,
        state: &AppState,
        every: Duration,
        now_ms: u64,
    ) -> Result<bool, FleetStoreError> {
        let hub = &state.experiments;
        let Some(service) = state.service_name() else {
            return Ok(false);
        };
        let keys = FleetKeys::new(&service);
        if !self.try_lock(&keys).await? {
            self.adopt(&keys, hub).await?;
            return Ok(false);
        }
        let result = async {
            let had_state = self.adopt(&keys, hub).await?;
            let counted = hub.counts_due(every, now_ms);
            let looked = hub.look_due(every, now_ms);
            if counted || looked {
                // While one runs, and a while after a decision (requests
                // apps served in an arm before they heard of it).
                self.count(&keys, hub, now_ms).await?;
            }
            if looked {
                hub.look(now_ms);
            }
            if counted || looked || !had_state {
                self.save(&keys, hub).await?;
            }
            Ok(looked)
        }
        .await;
        self.unlock(&keys).await;
        result
    }

    async fn run_command(
        &self,
        hub: &ExperimentsHub,
        service: Option<String>,
        command: ExperimentCommand,
    ) -> Result<Result<ExperimentReport, ExperimentError>, String> {
        let Some(service) = service else {
            // No service yet (nothing ingested): this sidecar alone; its
            // state becomes the fleet's at the first tick.
            return Ok(hub.run_command(command, now_ms()));
        };
        let keys = FleetKeys::new(&service);
        let deadline = std::time::Instant::now() + COMMAND_WAIT;
        while !self.try_lock(&keys).await.map_err(|e| e.to_string())? {
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "the fleet's experiments are locked by another sidecar for over {} s",
                    COMMAND_WAIT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = async {
            self.adopt(&keys, hub).await?;
            if matches!(command, ExperimentCommand::Stop) {
                // The last look is on the fleet's sums.
                self.count(&keys, hub, now_ms()).await?;
            }
            let answer = hub.run_command(command, now_ms());
            if answer.is_ok() {
                self.save(&keys, hub).await?;
            }
            Ok::<_, FleetStoreError>(answer)
        }
        .await;
        self.unlock(&keys).await;
        result.map_err(|e| e.to_string())
    }
}

impl SharedExperiments for FleetExperiments {
    fn run<'a>(
        &'a self,
        hub: &'a ExperimentsHub,
        service: Option<String>,
        command: ExperimentCommand,
    ) -> CommandFuture<'a> {
        Box::pin(self.run_command(hub, service, command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::ArmCounts;

    #[test]
    fn every_instances_counts_are_summed_by_experiment() {
        let info = |a: u64, b: u64, p95: u64| {
            let mut data = ArmData::default();
            data.arms[0] = ArmCounts {
                requests: a,
                ..Default::default()
            };
            data.arms[1] = ArmCounts {
                requests: b,
                ..Default::default()
            };
            data.latency[1].insert(p95, b);
            let mut info: InstanceInfo = serde_json::from_str(
                r#"{"last_seen_ms": 0, "revision": null, "deployments_7d": null, "cpu_utilisation": null, "memory_utilisation": null}"#,
            )
            .expect("an older writer's info reads");
            assert!(info.experiment_counts.is_empty());
            info.experiment_counts.insert(3, data);
            info
        };
        let infos: BTreeMap<String, InstanceInfo> = [
            ("one".to_owned(), info(40, 45, 2_000)),
            ("two".to_owned(), info(30, 35, 2_000)),
        ]
        .into();
        let sums = fleet_counts(&infos);
        assert_eq!(
            (sums[&3].arms[0].requests, sums[&3].arms[1].requests),
            (70, 80)
        );
        assert_eq!(sums[&3].latency[1][&2_000], 80);
    }
}
