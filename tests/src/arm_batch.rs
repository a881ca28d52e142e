//! Batches of requests in an experiment's arms, as a middleware would ship
//! them: for feeding a sidecar known arm counts without an app.

use lumen_middleware::wire::{Arm, Assignments, Batch, Series, StatusCounts, Variant};

/// One arm's requests: `requests` answered 200 in 2 or 3 ms, `hits` of
/// them cache hits (one lookup each), all assigned at random.
#[derive(Debug, Clone, Copy)]
pub struct ArmLoad {
    /// The arm.
    pub arm: Arm,
    /// Requests served in it.
    pub requests: u64,
    /// Of which cache hits.
    pub hits: u64,
}

/// A batch of `instance`'s requests (sequence `seq`, service `service`) on
/// `route` in experiment `experiment`'s arms, ending now.
pub fn arm_batch(
    instance: &str,
    seq: u64,
    service: &str,
    route: &str,
    experiment: u32,
    arms: &[ArmLoad],
) -> Batch {
    let series: Vec<Series> = arms
        .iter()
        .map(|load| {
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("valid bounds");
            h.record_n(2_000 + 1_000 * load.arm as u64, load.requests)
                .expect("in range");
            Series::new(
                Some(route),
                &h,
                StatusCounts {
                    success: load.requests,
                    ..Default::default()
                },
            )
            .with_cache(load.hits, load.requests - load.hits)
            .with_variant(
                Variant {
                    experiment,
                    arm: load.arm,
                },
                Assignments {
                    random: load.requests,
                    by_key: 0,
                },
            )
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    Batch::new(instance, seq, service, now - 1_000, now).with_series(series)
}
