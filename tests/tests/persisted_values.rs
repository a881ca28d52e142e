//! Every persisted or transported value reads back what was written, at
//! production size: histograms of every size up to the whole layout
//! through CBOR and JSON, a checkpoint of busy minutes and of the 10-minute
//! and hour blocks the memory cap merges them into, fleet-store blocks and
//! instance infos with long routes.

use std::collections::BTreeMap;
use std::time::Duration;

use lumen_sidecar::fleet::store::{FleetBlock, InstanceInfo, decode, encode};
use lumen_sidecar::store::{BudgetCounts, SparseHistogram, WindowStore, snapshot, store_layout};
use lumen_tests::workload::Workload;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lumen-persisted-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// A histogram of `buckets` distinct buckets spread over the layout, with
/// counts from 1 to 2^40.
fn histogram(buckets: usize, rng: &mut SmallRng) -> SparseHistogram {
    let len = store_layout().len() as u32;
    let pairs = (0..buckets)
        .map(|_| {
            let bits = rng.random_range(1..40);
            (
                rng.random_range(0..len),
                rng.random_range(1..=1_u64 << bits),
            )
        })
        .collect();
    SparseHistogram::from_pairs(pairs)
}

#[test]
fn histograms_of_every_size_read_back_through_cbor_and_json() {
    let mut rng = SmallRng::seed_from_u64(31);
    let len = store_layout().len();
    for buckets in [
        0,
        1,
        2,
        100,
        1_000,
        2_047,
        2_048,
        2_049,
        4_096,
        10_000,
        50_000,
        len * 4,
    ] {
        let h = histogram(buckets, &mut rng);
        // The fleet store's codec: CBOR after a format byte.
        let back: SparseHistogram = decode(&encode(&h))
            .unwrap_or_else(|e| panic!("{buckets} buckets ({} bytes): {e}", h.heap_bytes()));
        assert_eq!(back, h, "{buckets} buckets through CBOR");
        let json = serde_json::to_vec(&h).expect("serializes");
        let back: SparseHistogram = serde_json::from_slice(&json).expect("reads back");
        assert_eq!(back, h, "{buckets} buckets through JSON");
    }
    // The whole layout, every bucket set: the largest a histogram can be.
    let full = SparseHistogram::from_pairs((0..len as u32).map(|i| (i, u64::MAX >> 8)).collect());
    let back: SparseHistogram = decode(&encode(&full)).expect("reads back");
    assert_eq!(back.total(), full.total());
    assert_eq!(back, full);
}

/// `workload`'s minutes applied to a store, as the sidecar applies them.
fn store_of(workload: &Workload) -> (WindowStore, u64) {
    let mut store = WindowStore::new(Duration::from_secs(86_400));
    let now = workload.minute_start_ms(workload.minutes);
    for m in 0..workload.minutes {
        let body = workload.batch("persisted", "instance-a", m + 1, m);
        let batch = lumen_middleware::wire::decode(&body).expect("a valid batch");
        store.apply(&batch, now).expect("applied");
    }
    (store, now)
}

#[test]
fn a_checkpoint_of_busy_minutes_and_merged_blocks_reads_back_exactly() {
    // Three busy hours: 64 routes, 3,000 requests a minute on the busiest.
    let workload = Workload::day().ending_now(180);
    let (mut store, now) = store_of(&workload);
    let dir = temp_dir("checkpoint");
    let path = dir.join("checkpoint");
    let totals = serde_json::json!({ "requests": workload.total_requests() });
    snapshot::write_streamed(&path, &store, Some(&totals), now).expect("written");
    let back = snapshot::read_all(&path)
        .expect("reads back")
        .expect("a file");
    // Applied after the three hours (an app's backlog): every batch but
    // the last quarter hour's is late, kept apart for the fleet store, and
    // the checkpoint keeps them too.
    let late = workload.minutes - lumen_sidecar::store::LATE_AFTER_MINUTES;
    assert_eq!(store.late().len() as u64, late);
    assert_eq!(back.store, store, "minutes");
    assert_eq!(back.store.late().len() as u64, late);
    assert_eq!(back.totals, Some(totals.clone()));
    let day = Duration::from_secs(86_400);
    assert_eq!(
        back.store.window(now, day).total.counts.requests(),
        workload.total_requests()
    );

    // Merged as the memory cap merges them, into hours and 10-minute
    // blocks: more buckets per block, the same requests.
    let this_minute = now / 60_000;
    let merged = store.coarsen(this_minute - 60, 60) + store.coarsen(this_minute, 10);
    assert!(merged > 150, "{merged} minutes merged");
    snapshot::write_streamed(&path, &store, Some(&totals), now).expect("written");
    let back = snapshot::read_all(&path)
        .expect("reads back")
        .expect("a file");
    assert_eq!(back.store, store, "merged blocks");
    assert_eq!(
        back.store.window(now, day).total.counts.requests(),
        workload.total_requests()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fleet_blocks_and_instance_infos_of_busy_hours_read_back() {
    let workload = Workload::day().ending_now(60);
    let (store, now) = store_of(&workload);
    // One block holding the whole hour, every route: the largest a
    // sidecar writes.
    let held = store.held(workload.minute_start_ms(0) / 60_000, 60);
    let block = FleetBlock {
        routes: held.merged(),
        budget: BudgetCounts {
            total: workload.total_requests(),
            ..BudgetCounts::default()
        },
    };
    let largest = block
        .routes
        .iter()
        .map(|(_, s)| s.latency.heap_bytes())
        .max()
        .expect("routes");
    assert!(largest > 4_096, "a route's hour packs to {largest} bytes");
    assert_eq!(FleetBlock::decode(&block.encode()), Ok(block.clone()));
    let requests: u64 = block.routes.iter().map(|(_, s)| s.counts.requests()).sum();
    assert_eq!(requests, workload.total_requests());
    assert!(now > 0);

    // An instance's info with a thousand long routes.
    let info = InstanceInfo {
        last_seen_ms: now,
        revision: Some("r".repeat(256)),
        cache_totals: (0..1_024)
            .map(|r| (format!("/{}/{r}", "x".repeat(250)), [r * 1_000, r]))
            .collect::<BTreeMap<_, _>>(),
        ..InstanceInfo::default()
    };
    let bytes = encode(&info);
    assert!(bytes.len() > 100_000);
    let back: InstanceInfo = decode(&bytes).expect("reads back");
    assert_eq!(back, info);
}
