use super::*;
use hdrhistogram::Histogram;
use lumen_middleware::wire::{CacheCounts, DecodedSeries, LatencyCounts, StatusCounts};

const T0: u64 = 1_764_130_000_000 / MINUTE_MS * MINUTE_MS;

fn series(route: Option<&str>, ok: u64, fail: u64, latency_us: u64) -> DecodedSeries {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
    latency.record_n(latency_us, ok + fail).expect("in range");
    DecodedSeries {
        grpc_codes: [0; 17],
        route: route.map(str::to_owned),
        latency: LatencyCounts::from_histogram(&latency),
        status: StatusCounts {
            success: ok,
            server_error: fail,
            ..Default::default()
        },
        errors: 0,
        cancelled: 0,
        cache: CacheCounts {
            hits: ok,
            misses: fail,
        },
        methods: Default::default(),
        keys: None,
        tiers: None,
        variant: None,
        assignments: None,
    }
}

fn batch(instance: &str, seq: u64, start_ms: u64, s: Vec<DecodedSeries>) -> DecodedBatch {
    DecodedBatch {
        instance: instance.into(),
        seq,
        service: "svc".into(),
        revision: Some("svc-001".into()),
        start_ms,
        end_ms: start_ms + 10_000,
        process: None,
        series: s,
    }
}

fn store() -> WindowStore {
    WindowStore::new(Duration::from_secs(24 * 3600))
}

#[test]
fn a_duplicate_is_acknowledged_and_not_counted_twice() {
    let mut s = store();
    let b = batch("i1", 1, T0, vec![series(None, 10, 0, 1_000)]);
    assert_eq!(
        s.apply(&b, T0 + 20_000),
        Ok(Applied::Stored {
            applied_seq: 1,
            requests: 10
        })
    );
    assert_eq!(
        s.apply(&b, T0 + 20_000),
        Ok(Applied::Duplicate { applied_seq: 1 })
    );
    let older = batch("i1", 1, T0 + 10_000, vec![series(None, 99, 0, 1)]);
    assert_eq!(
        s.apply(&older, T0 + 30_000),
        Ok(Applied::Duplicate { applied_seq: 1 })
    );
    let w = s.window(T0 + 30_000, Duration::from_secs(3600));
    assert_eq!(w.total.counts.requests(), 10);
    assert_eq!(w.total.latency.total(), 10);
    // Another instance with the same seq is its own stream.
    let other = batch("i2", 1, T0, vec![series(None, 5, 0, 1_000)]);
    assert!(matches!(
        s.apply(&other, T0 + 30_000),
        Ok(Applied::Stored { .. })
    ));
}

#[test]
fn batches_land_in_their_own_minute_whatever_the_arrival_order() {
    let mut s = store();
    let now = T0 + 10 * MINUTE_MS;
    // seq 2 covers minute 5, seq 1 (sent by another instance late) minute 2.
    s.apply(
        &batch(
            "a",
            2,
            T0 + 5 * MINUTE_MS,
            vec![series(Some("/x"), 7, 0, 100)],
        ),
        now,
    )
    .expect("stored");
    s.apply(
        &batch(
            "b",
            1,
            T0 + 2 * MINUTE_MS,
            vec![series(Some("/x"), 3, 1, 100)],
        ),
        now,
    )
    .expect("stored");
    // Window of the last 6 minutes (minutes 5..=10) sees only the first.
    let w = s.window(now, Duration::from_secs(6 * 60));
    assert_eq!(w.total.counts.requests(), 7);
    let w = s.window(now, Duration::from_secs(9 * 60));
    assert_eq!(w.total.counts.requests(), 11);
    assert_eq!(w.total.counts.status[4], 1);
    assert_eq!(w.routes.len(), 1);
    assert_eq!(w.routes[0].0.as_deref(), Some("/x"));
}

#[test]
fn the_minute_is_the_interval_midpoint() {
    let mut s = store();
    // 10 s interval from 55 s to 65 s: midpoint 60 s, minute 1.
    let b = DecodedBatch {
        end_ms: T0 + 65_000,
        ..batch("a", 1, T0 + 55_000, vec![series(None, 1, 0, 10)])
    };
    s.apply(&b, T0 + 70_000).expect("stored");
    assert_eq!(
        s.window(T0 + 60_000, Duration::from_secs(60))
            .total
            .counts
            .requests(),
        1
    );
    assert_eq!(
        s.window(T0 + 59_999, Duration::from_secs(60))
            .total
            .counts
            .requests(),
        0
    );
}

#[test]
fn batches_from_the_future_are_refused_and_change_nothing() {
    let mut s = store();
    let b = batch("a", 1, T0 + 10 * MINUTE_MS, vec![series(None, 1, 0, 10)]);
    let err = s.apply(&b, T0).expect_err("ahead");
    assert!(err.to_string().starts_with("end_ms:"), "{err}");
    assert_eq!(s.ledger().applied_seq("a"), 0);
    assert_eq!(s.minutes_held(), 0);
}

#[test]
fn expired_batches_are_acknowledged_not_stored_and_old_minutes_evicted() {
    let mut s = WindowStore::new(Duration::from_secs(3600));
    let now = T0 + 3 * 3600 * 1000;
    let old = batch("a", 1, T0, vec![series(None, 1, 0, 10)]);
    assert_eq!(s.apply(&old, now), Ok(Applied::Expired { applied_seq: 1 }));
    assert_eq!(s.minutes_held(), 0);
    let fresh = batch(
        "a",
        2,
        now - 30 * MINUTE_MS,
        vec![series(Some("/r"), 1, 0, 10)],
    );
    s.apply(&fresh, now).expect("stored");
    assert_eq!(s.minutes_held(), 1);
    s.evict(now + 2 * 3600 * 1000);
    assert_eq!(s.minutes_held(), 0);
    assert!(s.ledger().is_empty(), "silent instances forgotten");
}

#[test]
fn routes_merge_into_the_total_and_histograms_keep_their_values() {
    let mut s = store();
    let now = T0 + MINUTE_MS;
    s.apply(
        &batch(
            "a",
            1,
            T0,
            vec![
                series(Some("/fast"), 90, 0, 1_000),
                series(Some("/slow"), 10, 0, 300_000),
            ],
        ),
        now,
    )
    .expect("stored");
    let w = s.window(now, Duration::from_secs(3600));
    assert_eq!(w.total.latency.total(), 100);
    let p95 = w.total.latency.quantile_us(0.95).expect("data");
    assert!((300_000..=300_300).contains(&p95), "{p95}");
    let p50 = w.total.latency.quantile_us(0.5).expect("data");
    assert!((1_000..=1_001).contains(&p50), "{p50}");
    assert_eq!(w.service.as_deref(), Some("svc"));
    assert_eq!(w.revision.as_deref(), Some("svc-001"));
}

#[test]
fn a_restored_store_is_checked() {
    let mut s = store();
    s.apply(
        &batch("a", 1, T0, vec![series(Some("/r"), 3, 0, 10)]),
        T0 + MINUTE_MS,
    )
    .expect("stored");
    let mut json = serde_json::to_value(&s).expect("serializes");
    let mut back: WindowStore = serde_json::from_value(json.clone()).expect("parses");
    back.validate_restored().expect("consistent");
    assert_eq!(back, s);
    let minute = json["minutes"]
        .as_object()
        .expect("map")
        .keys()
        .next()
        .expect("one")
        .clone();
    json["minutes"][&minute][0][1]["counts"]["status"][1] = serde_json::json!(4);
    let mut tampered: WindowStore = serde_json::from_value(json).expect("parses");
    let err = tampered.validate_restored().expect_err("inconsistent");
    assert!(
        err.contains("histogram holds 3 values, counts say 4"),
        "{err}"
    );
}

#[test]
fn windows_split_into_hours_blocks_and_minutes() {
    assert_eq!(pieces(5, 5), [(None, 5)]);
    assert_eq!(pieces(57, 131), {
        let mut v: Vec<(Option<usize>, u64)> = (57..60).map(|m| (None, m)).collect();
        v.push((Some(1), 60));
        v.push((Some(0), 120));
        v.push((None, 130));
        v.push((None, 131));
        v
    });
    let all = pieces(3, 1441);
    let covered: u64 = all
        .iter()
        .map(|(tier, _)| tier.map_or(1, |t| ROLLUP_MINUTES[t]))
        .sum();
    assert_eq!(covered, 1439, "every minute once");
}

/// Every minute of `routes` routes for `minutes` minutes, latencies varying by minute.
fn busy_store(routes: usize, minutes: u64) -> (WindowStore, u64) {
    let mut s = store();
    let now = T0 + minutes * MINUTE_MS - 1;
    for m in 0..minutes {
        let series = (0..routes)
            .map(|r| {
                series(
                    Some(&format!("/r{r}")),
                    5 + m % 7,
                    (m % 3) + r as u64,
                    1_000 + 37 * m + r as u64,
                )
            })
            .collect();
        let b = DecodedBatch {
            end_ms: T0 + (m + 1) * MINUTE_MS - 1,
            ..batch("a", m + 1, T0 + m * MINUTE_MS, series)
        };
        s.apply(&b, now).expect("stored");
    }
    (s, now)
}

#[test]
fn rollups_give_the_same_window_as_minutes() {
    let (s, now) = busy_store(3, 200);
    for window_min in [1, 9, 10, 59, 60, 61, 125, 200] {
        let w = s.window(now, Duration::from_secs(window_min * 60));
        // Brute force over the minutes alone.
        let first = now / MINUTE_MS + 1 - window_min;
        let mut requests = 0;
        let mut dense = vec![0_u64; store_layout().len()];
        for (_, slots) in s.minutes.range(first..) {
            for slot in slots.0.values() {
                requests += slot.counts.requests();
                slot.latency.add_to_dense(&mut dense);
            }
        }
        assert_eq!(w.total.counts.requests(), requests, "{window_min} min");
        let expected: Vec<(u32, u64)> = dense
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i as u32, *c))
            .collect();
        assert_eq!(w.total.latency.buckets(), expected, "{window_min} min");
        assert_eq!(w.routes.len(), 3);
    }
}

#[test]
fn a_late_batch_updates_a_rolled_up_hour() {
    let (mut s, now) = busy_store(1, 120);
    let before = s
        .window(now, Duration::from_secs(7200))
        .total
        .counts
        .requests();
    // Minute 30 belongs to a 10-minute block and an hour already built.
    let late = DecodedBatch {
        end_ms: T0 + 31 * MINUTE_MS - 1,
        ..batch(
            "b",
            1,
            T0 + 30 * MINUTE_MS,
            vec![series(Some("/r0"), 1000, 0, 5)],
        )
    };
    s.apply(&late, now).expect("stored");
    let after = s
        .window(now, Duration::from_secs(7200))
        .total
        .counts
        .requests();
    assert_eq!(after, before + 1000);
}

#[test]
fn a_clock_stepped_an_hour_either_way_breaks_and_doubles_nothing() {
    const HOUR: u64 = 3_600_000;
    let mut s = store();
    let now = T0 + 20_000;
    let a = batch("i1", 1, T0, vec![series(Some("/a"), 10, 1, 1_000)]);
    assert!(matches!(s.apply(&a, now), Ok(Applied::Stored { .. })));

    // Stepped back an hour: the past hour's window is empty, not negative,
    // and eviction there drops nothing that is still kept.
    let back = now - HOUR;
    let before = s.window(back, Duration::from_secs(3600));
    assert_eq!(before.total.counts.requests(), 0);
    s.evict(back);
    assert_eq!(
        s.window(now, Duration::from_secs(3600))
            .total
            .counts
            .requests(),
        11
    );
    // The same batch again is a duplicate whatever the clock says.
    assert_eq!(s.apply(&a, back), Ok(Applied::Duplicate { applied_seq: 1 }));
    // A new batch stamped by the app's (right) clock is now "from the
    // future" for the sidecar: refused, nothing changed.
    let b = batch("i1", 2, T0 + 10_000, vec![series(Some("/a"), 5, 0, 1_000)]);
    assert!(matches!(
        s.apply(&b, back),
        Err(StoreError::FromTheFuture { .. })
    ));
    assert_eq!(
        s.window(now, Duration::from_secs(3600))
            .total
            .counts
            .requests(),
        11
    );

    // Stepped forward an hour: the batch is still in the retention, counted
    // once; the one refused before is taken now, once.
    let ahead = now + HOUR;
    s.evict(ahead);
    assert!(matches!(s.apply(&b, ahead), Ok(Applied::Stored { .. })));
    assert_eq!(
        s.apply(&b, ahead),
        Ok(Applied::Duplicate { applied_seq: 2 })
    );
    let day = s.window(ahead, Duration::from_secs(24 * 3600));
    assert_eq!(day.total.counts.requests(), 16);
    assert_eq!(day.total.latency.total(), 16);
    // A window ending before the data holds nothing and does not panic.
    assert_eq!(
        s.window(T0 - 10 * HOUR, Duration::from_secs(60))
            .total
            .counts
            .requests(),
        0
    );
}

#[test]
fn a_memory_cap_coarsens_old_minutes_first_and_keeps_the_recent_ones_exact() {
    let mut s = store();
    let now = T0 + (24 * 60 - 1) * MINUTE_MS + 30_000;
    let mut seq = 0;
    // From the first whole hour on, so that no merged block straddles the
    // day window's edge (a straddling block counts whole or not at all).
    let first_hour = (60 - (T0 / MINUTE_MS) % 60) % 60;
    for minute in first_hour..24 * 60_u64 {
        for route in ["/a", "/b", "/c"] {
            seq += 1;
            let start = T0 + minute * MINUTE_MS + 1_000;
            // Latencies that differ from minute to minute, as real ones do.
            let b = batch(
                "i1",
                seq,
                start,
                vec![series(Some(route), 9, 1, 1_000 + (minute % 97) * 1_013)],
            );
            assert!(matches!(s.apply(&b, now), Ok(Applied::Stored { .. })));
        }
    }
    let day = Duration::from_secs(24 * 3600);
    let recent = Duration::from_secs(30 * 60);
    let day_before = s.window(now, day);
    let recent_before = s.window(now, recent);
    let bytes = s.heap_bytes();

    let fit = s.fit_memory_cap(bytes / 3, now);
    assert!(fit.after_bytes <= bytes / 3, "{fit:?} of {bytes}");
    assert!(fit.merged_slots > 0);
    assert_eq!(fit.dropped_minutes, 0, "merging was enough");
    // Nothing lost over the day; the last half hour is untouched.
    let day_after = s.window(now, day);
    assert_eq!(day_after.total.counts, day_before.total.counts);
    assert_eq!(
        day_after.total.latency.total(),
        day_before.total.latency.total()
    );
    let recent_after = s.window(now, recent);
    assert_eq!(recent_after.total.counts, recent_before.total.counts);
    assert_eq!(recent_after.total.latency, recent_before.total.latency);

    // A budget merging cannot meet drops the oldest hours, never the last.
    let fit = s.fit_memory_cap(1, now);
    assert!(fit.dropped_minutes > 0);
    assert_eq!(
        s.window(now, recent).total.counts,
        recent_before.total.counts,
        "the last hour is kept whatever it costs"
    );
}

#[test]
fn a_copy_shares_its_minutes_until_one_changes() {
    let mut s = store();
    for seq in 1..=3 {
        let b = batch(
            "i1",
            seq,
            T0 + (seq - 1) * MINUTE_MS,
            vec![series(Some("/a"), 5, 0, 900)],
        );
        assert!(matches!(
            s.apply(&b, T0 + 5 * MINUTE_MS),
            Ok(Applied::Stored { .. })
        ));
    }
    let copy = s.clone();
    assert!(
        s.minutes
            .iter()
            .zip(&copy.minutes)
            .all(|((_, a), (_, b))| Arc::ptr_eq(a, b)),
        "a checkpoint's copy costs no second copy of the data"
    );
    // A late batch for the second minute: only that minute is copied.
    let late = batch(
        "i1",
        4,
        T0 + MINUTE_MS + 30_000,
        vec![series(Some("/a"), 1, 0, 900)],
    );
    assert!(matches!(
        s.apply(&late, T0 + 5 * MINUTE_MS),
        Ok(Applied::Stored { .. })
    ));
    let shared: Vec<bool> = s
        .minutes
        .iter()
        .zip(&copy.minutes)
        .map(|((_, a), (_, b))| Arc::ptr_eq(a, b))
        .collect();
    assert_eq!(shared, [true, false, true]);
    let w = Duration::from_secs(3600);
    assert_eq!(
        copy.window(T0 + 5 * MINUTE_MS, w).total.counts.requests(),
        15
    );
    assert_eq!(s.window(T0 + 5 * MINUTE_MS, w).total.counts.requests(), 16);
}

#[test]
fn a_binary_checkpoint_holds_the_whole_store() {
    use lumen_middleware::wire::ProcessStats;
    let mut s = store();
    for seq in 1..=5 {
        let mut b = batch(
            "i1",
            seq,
            T0 + (seq - 1) * MINUTE_MS,
            vec![
                series(Some("/a"), 5, 1, 900 * seq),
                series(None, 2, 0, 40_000),
            ],
        );
        b.process = Some(ProcessStats {
            cpu_seconds: seq as f64,
            rss_bytes: 1 << 20,
            memory_limit_bytes: None,
            cpu_limit_cores: Some(1.0),
        });
        assert!(matches!(
            s.apply(&b, T0 + 6 * MINUTE_MS),
            Ok(Applied::Stored { .. })
        ));
    }
    let dir = std::env::temp_dir().join(format!("lumen-ckp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("checkpoint.bin");
    crate::store::snapshot::write_streamed(&path, &s, None, T0).expect("written");
    let back = crate::store::snapshot::read_all(&path)
        .expect("reads")
        .expect("present");
    assert_eq!(back.store, s);
    let w = Duration::from_secs(3600);
    assert_eq!(
        back.store.window(T0 + 6 * MINUTE_MS, w).total.latency,
        s.window(T0 + 6 * MINUTE_MS, w).total.latency
    );
    let json = crate::store::snapshot::encode(&s, T0);
    let cbor = std::fs::metadata(&path).expect("a file").len() as usize;
    assert!(
        cbor < json.len(),
        "binary {cbor} bytes, JSON {}",
        json.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_merged_block_is_its_own_rollup_shared_not_copied() {
    let mut s = store();
    // An hour from a whole hour on, then merged into one hour block.
    let hour = (T0 / MINUTE_MS).div_ceil(60) * 60;
    for m in 0..60 {
        let b = batch(
            "i1",
            m + 1,
            (hour + m) * MINUTE_MS,
            vec![series(Some("/a"), 3, 0, 1_000 + m)],
        );
        assert!(matches!(
            s.apply(&b, (hour + 61) * MINUTE_MS),
            Ok(Applied::Stored { .. })
        ));
    }
    let now = (hour + 61) * MINUTE_MS + 1;
    let before = s.window(now, Duration::from_secs(2 * 3600));
    s.coarsen(hour + 60, 60);
    let after = s.window(now, Duration::from_secs(2 * 3600));
    assert_eq!(after.total.counts, before.total.counts);
    assert_eq!(after.total.latency, before.total.latency);
    let rollups = s.rollups.borrow();
    let cached = rollups[1].get(&hour).expect("the hour's rollup");
    assert!(
        Arc::ptr_eq(cached, &s.minutes[&hour]),
        "shared with the store"
    );
}

#[test]
fn changed_minutes_are_told_once_and_held_minutes_merge_as_the_window_does() {
    let mut s = store();
    let m0 = T0 / MINUTE_MS;
    for (seq, minute) in [(1, 0), (2, 0), (3, 1), (4, 3)] {
        let b = batch(
            "i1",
            seq,
            T0 + minute * MINUTE_MS,
            vec![
                series(Some("/a"), 5 + seq, 1, 2_000 * seq),
                series(None, 2, 0, 900),
            ],
        );
        s.apply(&b, T0 + 5 * MINUTE_MS).expect("stored");
    }
    assert_eq!(
        s.take_changed().into_iter().collect::<Vec<_>>(),
        vec![m0, m0 + 1, m0 + 3]
    );
    assert!(s.take_changed().is_empty(), "told once");
    let dup = batch("i1", 2, T0, vec![series(None, 9, 0, 1)]);
    s.apply(&dup, T0 + 5 * MINUTE_MS).expect("duplicate");
    assert!(s.take_changed().is_empty(), "a duplicate changes nothing");

    // The held minutes of a block merge to what the window of the same
    // minutes holds.
    let held = s.held(m0, 4);
    assert!(!held.is_empty());
    assert!(s.held(m0 + 4, 10).is_empty());
    let merged = held.merged();
    let (total, routes) = merge_routes(merged.iter().map(|(k, v)| (k, v)));
    let window = s.window(T0 + 3 * MINUTE_MS, Duration::from_secs(4 * 60));
    assert_eq!(total.counts, window.total.counts);
    assert_eq!(total.latency, window.total.latency);
    assert_eq!(
        routes
            .iter()
            .map(|(r, w)| (r.clone(), w.counts))
            .collect::<Vec<_>>(),
        window
            .routes
            .iter()
            .map(|(r, w)| (r.clone(), w.counts))
            .collect::<Vec<_>>()
    );

    s.mark_all_changed();
    let all = s.take_changed();
    assert!(all.is_superset(&[m0, m0 + 1, m0 + 3].into_iter().collect()));
    assert!(
        all.contains(&(m0 / 60 * 60)),
        "each budget hour is told too"
    );
}

#[test]
fn cold_and_warm_p95_come_from_the_first_minutes_and_the_rest() {
    let mut s = store();
    // Started at T0: 300 ms for two minutes, then 20 ms for three.
    for (seq, minute, us) in [
        (1, 0, 300_000),
        (2, 1, 300_000),
        (3, 2, 20_000),
        (4, 3, 20_000),
        (5, 4, 20_000),
    ] {
        let at = T0 + minute * MINUTE_MS;
        let b = batch("i1", seq, at, vec![series(None, 100, 0, us)]);
        assert!(matches!(
            s.apply(&b, at + 20_000),
            Ok(Applied::Stored { .. })
        ));
    }
    assert_eq!(
        s.cold_and_warm_p95_ms(T0, T0 + MINUTE_MS),
        (None, None),
        "too early"
    );
    let (cold, warm) = s.cold_and_warm_p95_ms(T0, T0 + 5 * MINUTE_MS);
    let (cold, warm) = (cold.expect("cold"), warm.expect("warm"));
    assert!((cold - 300.0).abs() < 1.0, "{cold}");
    assert!((warm - 20.0).abs() < 0.1, "{warm}");
}

#[test]
fn a_minute_never_holds_more_than_its_bound_so_no_sum_saturates() {
    let max = lumen_middleware::wire::MAX_INTERVAL_COUNT;
    let mut s = store();
    let now = T0 + 20_000;
    // 100 batches at the wire's bound, in two buckets, from two instances:
    // the minute's bound exactly.
    for seq in 1..=50 {
        for (instance, latency) in [("i1", 1_000), ("i2", 250_000)] {
            let b = batch(instance, seq, T0, vec![series(None, max, 0, latency)]);
            assert!(
                matches!(s.apply(&b, now), Ok(Applied::Stored { .. })),
                "{instance} {seq}"
            );
        }
    }
    let before = s.clone();
    let one_more = batch("i3", 1, T0, vec![series(None, 1, 0, 1_000)]);
    match s.apply(&one_more, now) {
        Err(e @ StoreError::MinuteFull { .. }) => {
            assert!(e.to_string().starts_with("series: "), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s, before, "nothing applied");
    assert_eq!(s.ledger().applied_seq("i3"), 0);
    // Every count is exact: the histogram's buckets, the counts and the
    // budget agree, and the store passes the checks a restore makes.
    let w = s.window(now, Duration::from_secs(3600));
    assert_eq!(w.total.counts.requests(), MAX_MINUTE_COUNT);
    assert_eq!(w.total.latency.total(), MAX_MINUTE_COUNT);
    assert_eq!(w.total.latency.buckets().len(), 2);
    assert_eq!(s.budget().sum(0, u64::MAX / 2).total, MAX_MINUTE_COUNT);
    let mut restored = s.clone();
    restored.validate_restored().expect("a consistent store");
    // Another minute takes its own 10^14.
    let next = batch("i3", 1, T0 + MINUTE_MS, vec![series(None, 1, 0, 1_000)]);
    assert!(matches!(
        s.apply(&next, now + MINUTE_MS),
        Ok(Applied::Stored { .. })
    ));
}

#[test]
fn a_recount_under_the_stores_own_rules_is_its_budget_ledger() {
    let mut s = store();
    s.set_budget_rules(BudgetRules {
        p95_us: 150_000,
        p99_us: 600_000,
        ..BudgetRules::default()
    });
    for (m, latency) in [(0, 90_000), (1, 150_000), (2, 700_000), (3, 149_999)] {
        let b = batch(
            "i1",
            m + 1,
            T0 + m * MINUTE_MS,
            vec![
                series(Some("/a"), 40, 3, latency),
                series(None, 7, 1, 2_000),
            ],
        );
        s.apply(&b, T0 + 5 * MINUTE_MS).expect("stored");
    }
    let rules = s.budget_rules;
    let held = s.held_by_minute();
    assert_eq!(held.len(), 4);
    for (minute, minute_held) in &held {
        assert_eq!(
            minute_held.budget_counts(&rules),
            s.budget().sum(*minute, *minute),
            "minute {minute}"
        );
    }
    // A stricter threshold counts more requests slow.
    let strict = BudgetRules {
        p95_us: 1_000,
        ..rules
    };
    assert_eq!(held[0].0, T0 / MINUTE_MS);
    assert_eq!(held[0].1.budget_counts(&strict).slow_p95, 51);
}

#[test]
fn the_memory_cap_merges_excluded_minutes_apart_so_slo_windows_still_leave_them_out() {
    let (mut s, now) = busy_store(3, 180);
    let first = T0 / MINUTE_MS;
    // Minutes 33 to 47 and one recurring-free minute 5 kept off the budget.
    let mark = |from: u64, to: u64| {
        Exclusion::new(
            (first + from) * MINUTE_MS,
            (first + to) * MINUTE_MS,
            "failover",
            "ana",
            0,
        )
        .expect("valid")
    };
    for (from, to) in [(33, 48), (5, 6)] {
        s.exclude(mark(from, to)).expect("held minute by minute");
    }
    // Every held minute and the blocks' first minutes before them.
    let window = Duration::from_secs(300 * 60);
    let before = s.slo_window(now, window);
    let whole = s.window(now, window);
    assert_ne!(
        before.total.counts, whole.total.counts,
        "the marks leave requests out"
    );
    // Tens, then hours, as the cap does.
    assert!(s.coarsen(first + 120, 10) > 0);
    assert_eq!(s.slo_window(now, window).total.counts, before.total.counts);
    assert!(s.coarsen(first + 120, 60) > 0);
    let after = s.slo_window(now, window);
    assert_eq!(
        after.total.counts, before.total.counts,
        "exactly the marked minutes"
    );
    assert_eq!(after.total.latency, before.total.latency);
    assert_eq!(s.window(now, window).total.counts, whole.total.counts);
    // Merging again changes nothing.
    assert_eq!(s.coarsen(first + 120, 60), 0);
}

#[test]
fn batches_after_their_blocks_closed_are_kept_apart_once_and_leave_with_their_minute() {
    let mut s = store();
    let on_time = batch("i1", 1, T0, vec![series(Some("/a"), 10, 1, 2_000)]);
    s.apply(&on_time, T0 + 70_000).expect("stored");
    assert!(s.late().is_empty(), "on time");
    let late_ms = T0 + (1 + late_batches::LATE_AFTER_MINUTES) * MINUTE_MS;
    let late = batch(
        "i2",
        1,
        T0,
        vec![series(Some("/a"), 5, 0, 9_000), series(None, 2, 2, 100)],
    );
    s.apply(&late, late_ms).expect("stored");
    s.apply(&late, late_ms + 1).expect("a duplicate");
    assert_eq!(s.late().len(), 1, "kept once");
    let kept: Vec<&LateBatch> = s
        .late()
        .within(T0 / MINUTE_MS, T0 / MINUTE_MS + 1)
        .collect();
    assert_eq!(kept[0].id, late_batches::batch_id("i2", 1));
    assert_eq!(kept[0].accepted_minute, late_ms / MINUTE_MS);
    assert_eq!(kept[0].budget.total, 9);
    assert_eq!(
        kept[0]
            .routes
            .iter()
            .map(|(_, r)| r.counts.requests())
            .sum::<u64>(),
        9
    );
    // The minute holds both; the minute without the late batch is the
    // on-time one, exactly.
    let mut held = s.held(T0 / MINUTE_MS, 1).merged();
    for (key, slot) in &kept[0].routes {
        let i = held.iter().position(|(k, _)| k == key).expect("its route");
        held[i].1.subtract(slot);
    }
    held.retain(|(_, slot)| !slot.is_empty());
    let mut alone = store();
    alone.apply(&on_time, T0 + 70_000).expect("stored");
    assert_eq!(held, alone.held(T0 / MINUTE_MS, 1).merged());
    assert_eq!(s.take_new_late(false).len(), 1);
    assert!(s.take_new_late(false).is_empty(), "told once");
    s.evict(T0 + 24 * 3600 * 1000 + MINUTE_MS);
    assert!(s.late().is_empty(), "evicted with its minute");

    let mut without = store();
    without.set_keep_late(false);
    without.apply(&late, late_ms).expect("stored");
    assert!(without.late().is_empty(), "no fleet store: none kept");
    assert_eq!(without.held(T0 / MINUTE_MS, 1).merged().len(), 2);
}
