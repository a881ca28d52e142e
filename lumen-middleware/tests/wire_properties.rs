//! Properties of the wire decoder over generated input: arbitrary bytes and
//! mutated valid batches never panic it, and what it accepts is what was
//! encoded.

use hdrhistogram::Histogram;
use lumen_middleware::wire::{self, Batch, Series, StatusCounts};
use proptest::prelude::*;

fn series(route: Option<String>, latencies: Vec<(u64, u64)>, errors: u64, hits: u64) -> Series {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut responses = 0;
    for (v, n) in &latencies {
        h.record_n(*v, *n).expect("in range");
        responses += n;
    }
    // The histogram holds every response and every inner failure.
    let success = responses.saturating_sub(errors);
    let errors = responses - success;
    Series::new(
        route.as_deref(),
        &h,
        StatusCounts {
            success,
            ..Default::default()
        },
    )
    .with_errors(errors)
    .with_cache(hits, 0)
}

fn batch_strategy() -> impl Strategy<Value = Batch> {
    let one = (
        proptest::option::of("/[a-z]{1,12}"),
        proptest::collection::vec((1..60_000_000_u64, 1..1_000_u64), 0..20),
        0..5_u64,
        0..100_u64,
    )
        .prop_map(|(route, latencies, errors, hits)| series(route, latencies, errors, hits));
    (
        "[a-f0-9]{8,16}",
        1..u64::from(u32::MAX),
        1_700_000_000_000..1_800_000_000_000_u64,
        0..600_000_u64,
        proptest::collection::vec(one, 0..6),
    )
        .prop_map(|(instance, seq, start_ms, len, mut series)| {
            // Routes are disjoint within a batch.
            let mut seen = std::collections::HashSet::new();
            series.retain(|s| seen.insert(s.route.clone()));
            Batch::new(&instance, seq, "api", start_ms, start_ms + len).with_series(series)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = wire::decode(&bytes);
    }

    #[test]
    fn encode_then_decode_is_the_identity(batch in batch_strategy()) {
        let json = serde_json::to_vec(&batch).expect("serializes");
        let decoded = wire::decode(&json).expect("a valid batch decodes");
        prop_assert_eq!(&decoded.instance, &batch.instance);
        prop_assert_eq!(decoded.seq, batch.seq);
        prop_assert_eq!((decoded.start_ms, decoded.end_ms), (batch.start_ms, batch.end_ms));
        prop_assert_eq!(decoded.series.len(), batch.series.len());
        for (d, s) in decoded.series.iter().zip(&batch.series) {
            prop_assert_eq!(&d.route, &s.route);
            prop_assert_eq!(d.status, s.status);
            prop_assert_eq!(d.errors, s.errors);
            prop_assert_eq!(d.cache.hits, s.cache.hits);
            let original = wire::decode_histogram(&s.latency_us).expect("decodes");
            prop_assert_eq!(d.latency.len(), original.len());
        }
    }

    #[test]
    fn mutated_batches_never_panic(
        batch in batch_strategy(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in any::<prop::sample::Index>(),
    ) {
        let mut json = serde_json::to_vec(&batch).expect("serializes");
        for (at, byte) in cuts {
            let i = at.index(json.len());
            json[i] = byte;
        }
        let _ = wire::decode(&json);
        let cut = truncate.index(json.len() + 1);
        let _ = wire::decode(&json[..cut]);
    }
}
