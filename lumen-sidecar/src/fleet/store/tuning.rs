//! The feedback loop over the fleet store: each interval one sidecar (the
//! one that takes the interval's lock, `SET … NX PX`) decides for the whole
//! fleet, on the sums of every sidecar's cumulative cache lookups, and
//! writes the loop's state; every sidecar then serves that state, so every
//! app instance gets the same parameters, decided once.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::block::{InstanceInfo, instance_infos, read_json, take_lock, write_json};
use super::error::FleetStoreError;
use super::keys::FleetKeys;
use crate::app::AppState;
use crate::app::tuning::TuningState;

/// The fleet's feedback loop, as one sidecar takes part in it.
#[derive(Clone)]
pub struct FleetTuning {
    con: ConnectionManager,
    instance: String,
}

impl std::fmt::Debug for FleetTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetTuning")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Every sidecar's cumulative lookups summed, by cache.
pub fn fleet_lookups(infos: &BTreeMap<String, InstanceInfo>) -> BTreeMap<String, [u64; 2]> {
    let mut sum: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    for info in infos.values() {
        for (cache, [hits, misses]) in &info.cache_totals {
            let s = sum.entry(cache.clone()).or_insert([0, 0]);
            s[0] = s[0].saturating_add(*hits);
            s[1] = s[1].saturating_add(*misses);
        }
    }
    sum
}

impl FleetTuning {
    /// This sidecar (`instance`) in its service's fleet (the service as
    /// the sidecar's state names it, as the fleet writer's keys do).
    pub fn new(con: ConnectionManager, instance: &str) -> Self {
        Self {
            con,
            instance: instance.to_owned(),
        }
    }

    /// One interval at `now_ms`: decides for the fleet if this sidecar
    /// takes the lock, then serves the fleet's state. Whether it decided.
    pub async fn step(
        &self,
        state: &AppState,
        interval: Duration,
        now_ms: u64,
    ) -> Result<bool, FleetStoreError> {
        let Some(service) = state.service_name() else {
            return Ok(false); // nothing ingested yet: no service to tune
        };
        let keys = FleetKeys::new(&service);
        // Held a little less than an interval: the next one is free.
        let won = take_lock(
            &self.con,
            keys.tuning_lock(),
            &self.instance,
            interval * 9 / 10,
            "taking the feedback loop's lock",
        )
        .await?;
        if won {
            let shared = self.load(&keys).await?;
            let infos = instance_infos(&self.con, &keys).await?;
            let lookups = fleet_lookups(&infos);
            state.tuning.replace(shared.unwrap_or_default());
            if state.tuning.state().started() {
                state.tuning.decide(&lookups, now_ms);
            } else {
                state.tuning.start(&lookups, now_ms);
            }
            write_json(
                &self.con,
                keys.tuning(),
                &state.tuning.state(),
                "writing the feedback loop's state",
            )
            .await?;
            return Ok(true);
        }
        if let Some(shared) = self.load(&keys).await? {
            state.tuning.replace(shared);
        }
        Ok(false)
    }

    async fn load(&self, keys: &FleetKeys) -> Result<Option<TuningState>, FleetStoreError> {
        read_json(
            &self.con,
            keys.tuning(),
            "reading the feedback loop's state",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_summed_over_every_instance() {
        let info = |h, m| InstanceInfo {
            last_seen_ms: 0,
            revision: None,
            deployments_7d: None,
            cpu_utilisation: None,
            memory_utilisation: None,
            started_ms: None,
            cost_usd_per_s: None,
            cache_totals: [("/ask".to_owned(), [h, m])].into(),
            cold_p95_ms: None,
            warm_p95_ms: None,
            experiment_counts: Default::default(),
        };
        let infos: BTreeMap<String, InstanceInfo> =
            [("a".to_owned(), info(10, 5)), ("b".to_owned(), info(1, 2))].into();
        assert_eq!(fleet_lookups(&infos)["/ask"], [11, 7]);
    }
}
