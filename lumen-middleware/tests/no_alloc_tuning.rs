//! The tuning channel's read, the keyed cache count and the tier timing
//! allocate nothing
//! in steady state (counted by an instrumented global allocator; a file of
//! its own, so no other test's thread allocates behind the count's back).

use lumen_middleware::{LumenConfig, pair};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn tuning_reads_and_keyed_cache_counts_do_not_allocate() {
    let (layer, _shipper) = pair(LumenConfig::default()).expect("valid");
    let report = layer.cache_report();
    let handle = lumen_middleware::tuning().cache("/ask");
    // Warm-up: the route's key ring is allocated by its first sampled key.
    for k in 0..10_000u64 {
        report.record_key(k, k % 2 == 0);
    }
    let region = Region::new(GLOBAL);
    let mut ttl = std::time::Duration::ZERO;
    for k in 0..100_000u64 {
        report.record_key(k.wrapping_mul(31), k % 3 != 0);
        report.record_tier(
            lumen_middleware::cache::Tier::L2,
            std::time::Duration::from_micros(k),
        );
        ttl += handle.ttl_or(std::time::Duration::from_secs(1));
    }
    let change = region.change();
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");
    assert_eq!(ttl, std::time::Duration::from_secs(100_000));
}

// No test harness (`harness = false`): the measurement runs on the
// process's only thread, so no harness thread allocates behind the count's
// back (libtest's main thread did, now and then, on a slow machine).
fn main() {
    tuning_reads_and_keyed_cache_counts_do_not_allocate();
    println!("test tuning_reads_and_keyed_cache_counts_do_not_allocate ... ok");
}
