//! Batches of requests in an experiment's arms, as a middleware would ship
//! them: for feeding a sidecar known arm counts without an app.

use lumen_middleware::wire::{
    self, Arm, Assignments, Batch, CacheCounts, Series, StatusCounts, Variant,
};

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
    let series = arms
        .iter()
        .map(|load| {
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("valid bounds");
            h.record_n(2_000 + 1_000 * load.arm as u64, load.requests)
                .expect("in range");
            Series {
                grpc_codes: Default::default(),
                route: Some(route.into()),
                variant: Some(Variant {
                    experiment,
                    arm: load.arm,
                }),
                latency_us: wire::encode_histogram(&h),
                status: StatusCounts {
                    success: load.requests,
                    ..Default::default()
                },
                errors: 0,
                methods: Default::default(),
                cancelled: 0,
                cache: CacheCounts {
                    hits: load.hits,
                    misses: load.requests - load.hits,
                },
                keys: None,
                assignments: Some(Assignments {
                    random: load.requests,
                    by_key: 0,
                }),
                tiers: None,
            }
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    Batch {
        version: wire::WIRE_VERSION,
        instance: instance.into(),
        seq,
        service: service.into(),
        revision: None,
        start_ms: now - 1_000,
        end_ms: now,
        process: None,
        series,
    }
}
