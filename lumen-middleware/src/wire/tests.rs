use super::*;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

fn histogram(values: &[(u64, u64)]) -> String {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
    for (v, n) in values {
        h.record_n(*v, *n).expect("in range");
    }
    encode_histogram(&h)
}

fn good() -> Value {
    json!({
        "version": 1,
        "instance": "0b6f2c1e9d7a4f3e",
        "seq": 17,
        "service": "ion-mentoring-api",
        "revision": "ion-mentoring-api-00042-abc",
        "start_ms": 1_764_130_000_000_u64,
        "end_ms": 1_764_130_010_000_u64,
        "process": { "cpu_seconds": 12.5, "rss_bytes": 73_400_320, "memory_limit_bytes": 536_870_912 },
        "series": [{
            "route": "/api/v1/mentor/ask",
            "latency_us": histogram(&[(1_000, 990), (250_000, 10)]),
            "status": { "1xx": 0, "2xx": 980, "3xx": 0, "4xx": 15, "5xx": 5 },
            "errors": 0,
            "cancelled": 1,
            "cache": { "hits": 600, "misses": 400 }
        }]
    })
}

fn decode_value(v: &Value) -> Result<DecodedBatch, WireError> {
    decode(&serde_json::to_vec(v).expect("serializes"))
}

fn error_of(edit: impl FnOnce(&mut Value)) -> String {
    let mut v = good();
    edit(&mut v);
    decode_value(&v).expect_err("must be refused").to_string()
}

#[test]
fn the_design_example_decodes() {
    let b = decode_value(&good()).expect("valid");
    assert_eq!(b.seq, 17);
    assert_eq!(b.series[0].latency.len(), 1000);
    assert_eq!(b.series[0].status.server_error, 5);
    assert_eq!(b.series[0].cache.hits, 600);
    assert_eq!(b.process.expect("present").rss_bytes, 73_400_320);
}

#[test]
fn batch_round_trips_through_json() {
    let batch: Batch = serde_json::from_value(good()).expect("shape");
    let again: Batch =
        serde_json::from_slice(&serde_json::to_vec(&batch).expect("ser")).expect("de");
    assert_eq!(batch, again);
}

#[test]
fn every_malformed_field_is_named() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "version: unsupported wire version 2",
            Box::new(|v| v["version"] = json!(2)),
        ),
        (
            "series[0].status.2xx: invalid value: integer `-1`",
            Box::new(|v| v["series"][0]["status"]["2xx"] = json!(-1)),
        ),
        (
            "series[0].status.4xx: invalid type: floating point",
            Box::new(|v| v["series"][0]["status"]["4xx"] = json!(1.5)),
        ),
        ("seq: must be at least 1", Box::new(|v| v["seq"] = json!(0))),
        (
            "instance: must not be empty",
            Box::new(|v| v["instance"] = json!("")),
        ),
        (
            "end_ms: 1 is before start_ms",
            Box::new(|v| v["end_ms"] = json!(1)),
        ),
        (
            "series[0].latency_us: not a compressed HdrHistogram",
            Box::new(|v| v["series"][0]["latency_us"] = json!("bm90IGEgaGlzdG9ncmFt")),
        ),
        (
            "series[0].latency_us: histogram holds 1000 values but status counts plus errors are 1001",
            Box::new(|v| v["series"][0]["errors"] = json!(1)),
        ),
        (
            ".: missing field `service`",
            Box::new(|v| {
                v.as_object_mut().expect("object").remove("service");
            }),
        ),
        (
            "process.cpu_seconds: must be a finite number",
            Box::new(|v| v["process"]["cpu_seconds"] = json!(-3.0)),
        ),
        (
            "series[0].tiers.l2.total_us: 3600000001 µs over 1 lookups is more than 3600000000 µs a lookup",
            Box::new(|v| {
                v["series"][0]["tiers"] =
                    json!({"l2": {"lookups": 1, "total_us": 3_600_000_001_u64}})
            }),
        ),
        (
            "series[0].tiers.origin.lookups: invalid type: string",
            Box::new(|v| v["series"][0]["tiers"] = json!({"origin": {"lookups": "7"}})),
        ),
        (
            "series[0].variant.experiment: must be at least 1",
            Box::new(|v| v["series"][0]["variant"] = json!({"experiment": 0, "arm": "a"})),
        ),
        (
            "series[0].variant.arm: unknown variant `c`",
            Box::new(|v| v["series"][0]["variant"] = json!({"experiment": 1, "arm": "c"})),
        ),
        (
            "series[1].route: repeats an earlier series' route",
            Box::new(|v| {
                let s = v["series"][0].clone();
                v["series"].as_array_mut().expect("array").push(s);
            }),
        ),
    ];
    for (expected, edit) in cases {
        let got = error_of(edit);
        assert!(
            got.starts_with(expected),
            "expected `{expected}…`, got `{got}`"
        );
        assert!(!got.contains('\n'), "one line: {got}");
    }
}

#[test]
fn a_route_may_have_one_series_per_experiment_arm() {
    let mut v = good();
    let mut arm_b = v["series"][0].clone();
    arm_b["variant"] = json!({"experiment": 3, "arm": "b"});
    v["series"]
        .as_array_mut()
        .expect("array")
        .push(arm_b.clone());
    let decoded = decode_value(&v).expect("disjoint by variant");
    assert_eq!(
        decoded.series[1].variant,
        Some(crate::wire::Variant {
            experiment: 3,
            arm: crate::wire::Arm::B
        })
    );
    v["series"].as_array_mut().expect("array").push(arm_b);
    let err = decode_value(&v)
        .expect_err("the same arm twice")
        .to_string();
    assert!(err.starts_with("series[2].route: repeats"), "{err}");
}

#[test]
fn unknown_fields_are_ignored_within_version_1() {
    // A newer sender's additive fields, anywhere: nothing is lost.
    let mut v = good();
    v["colour"] = json!("red");
    v["series"][0]["colour"] = json!("red");
    v["series"][0]["status"]["6xx"] = json!(3);
    v["series"][0]["cache"]["stale"] = json!(1);
    let b = decode_value(&v).expect("additive fields are ignored");
    assert_eq!(b.series[0].latency.len(), 1000);
}

#[test]
fn trailing_data_after_a_batch_is_refused() {
    let mut body = serde_json::to_vec(&good()).expect("ser");
    body.extend_from_slice(b"garbage");
    let err = decode(&body).expect_err("trailing data");
    assert!(matches!(err, WireError::Json { .. }), "{err}");
    assert!(err.to_string().contains("trailing"), "{err}");
    let mut spaced = serde_json::to_vec(&good()).expect("ser");
    spaced.extend_from_slice(b" \n");
    decode(&spaced).expect("trailing whitespace is fine");
}

#[test]
fn truncated_json_is_refused() {
    let body = serde_json::to_vec(&good()).expect("ser");
    let err = decode(&body[..body.len() / 2]).expect_err("truncated");
    assert!(matches!(err, WireError::Json { .. }), "{err}");
    assert!(err.to_string().contains("EOF"), "{err}");
}

#[test]
fn overflowing_counts_are_refused() {
    let err = error_of(|v| {
        v["series"][0]["status"]["2xx"] = json!(u64::MAX);
        v["series"][0]["status"]["4xx"] = json!(u64::MAX);
    });
    assert!(err.contains("counts overflow"), "{err}");
}

#[test]
fn a_route_may_be_absent() {
    let mut v = good();
    v["series"][0]
        .as_object_mut()
        .expect("object")
        .remove("route");
    let b = decode_value(&v).expect("valid");
    assert_eq!(b.series[0].route, None);
}

#[test]
fn counts_no_interval_can_hold_are_refused_by_field() {
    // 2^63 − 1 requests, histogram and counts agreeing: refused, naming
    // the series, before anything downstream can saturate on it.
    let huge = (1_u64 << 63) - 1;
    let err = error_of(|v| {
        v["series"][0]["latency_us"] = json!(histogram(&[(1_000, huge)]));
        v["series"][0]["status"] = json!({ "2xx": huge });
    });
    assert!(
        err.contains("series[0].status") && err.contains("at most 1000000000000"),
        "{err}"
    );
    // The bound counts every series together, cancelled requests too.
    let half = MAX_INTERVAL_COUNT / 2 + 1;
    let mut v = good();
    v["series"][0]["latency_us"] = json!(histogram(&[(1_000, half)]));
    v["series"][0]["status"] = json!({ "2xx": half });
    v["series"][0]["cancelled"] = json!(0);
    let mut second = v["series"][0].clone();
    second["route"] = json!("/other");
    v["series"].as_array_mut().expect("a list").push(second);
    let err = decode_value(&v).expect_err("over the bound together");
    assert!(err.to_string().contains("series[1].status"), "{err}");
    // At the bound itself, accepted.
    let mut v = good();
    v["series"][0]["latency_us"] = json!(histogram(&[(1_000, MAX_INTERVAL_COUNT)]));
    v["series"][0]["status"] = json!({ "2xx": MAX_INTERVAL_COUNT });
    v["series"][0]["cancelled"] = json!(0);
    assert_eq!(
        decode_value(&v).expect("at the bound").series[0]
            .latency
            .len(),
        MAX_INTERVAL_COUNT
    );
    let err = error_of(|v| v["series"][0]["cache"]["hits"] = json!(u64::MAX));
    assert!(err.contains("series[0].cache"), "{err}");
    let err = error_of(|v| {
        v["series"][0]["assignments"] = json!({ "random": u64::MAX, "by_key": 1 });
        v["series"][0]["variant"] = json!({ "experiment": 1, "arm": "b" });
    });
    assert!(err.contains("series[0].assignments"), "{err}");
}

#[test]
fn a_seq_past_2_to_the_53_is_refused() {
    for seq in [u64::MAX, MAX_SEQ + 1] {
        let err = error_of(|v| v["seq"] = json!(seq));
        assert!(err.contains("seq") && err.contains("2^53"), "{seq}: {err}");
    }
    let mut v = good();
    v["seq"] = json!(MAX_SEQ);
    assert_eq!(decode_value(&v).expect("the highest").seq, MAX_SEQ);
}

/// A one-value histogram whose zlib stream inflates to about `bytes`
/// (the V2 payload, then zeros the decoder never reads).
fn padded_histogram(bytes: usize) -> String {
    use base64::Engine;
    use std::io::{Read, Write};
    let raw = base64::engine::general_purpose::STANDARD
        .decode(histogram(&[(1_000, 1)]))
        .expect("base64");
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&raw[8..])
        .read_to_end(&mut inflated)
        .expect("inflates");
    inflated.resize(bytes, 0);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&inflated).expect("deflates");
    let deflated = z.finish().expect("deflates");
    let mut out = raw[..4].to_vec();
    out.extend((deflated.len() as u32).to_be_bytes());
    out.extend(deflated);
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[test]
fn a_batch_whose_histograms_inflate_beyond_the_budget_is_refused() {
    let one = padded_histogram(1_000_000);
    assert_eq!(
        LatencyCounts::decode_sized(&one).expect("one is fine").1,
        1_000_000
    );
    let series = |i: usize| {
        json!({
            "route": format!("/r{i}"),
            "latency_us": one,
            "status": { "2xx": 1 },
        })
    };
    let mut v = good();
    v["series"] = json!(
        (0..MAX_BATCH_INFLATED_BYTES / 1_000_000)
            .map(series)
            .collect::<Vec<_>>()
    );
    assert!(decode_value(&v).is_ok(), "within the budget");
    v["series"]
        .as_array_mut()
        .expect("a list")
        .push(series(999));
    let err = decode_value(&v).expect_err("over the budget").to_string();
    assert!(
        err.contains("latency_us") && err.contains("inflate beyond"),
        "{err}"
    );
}

#[test]
fn grpc_codes_are_bounded_to_the_17_codes_and_the_responses() {
    let mut v = good();
    v["series"][0]["grpc_codes"] = json!({"0": 980, "4": 5, "5": 15});
    let batch = decode_value(&v).expect("valid");
    let codes = batch.series[0].grpc_codes;
    assert_eq!((codes[0], codes[4], codes[5], codes[16]), (980, 5, 15, 0));
    let e = error_of(|v| v["series"][0]["grpc_codes"] = json!({"17": 1}));
    assert!(
        e.contains("series[0].grpc_codes") && e.contains("0 to 16"),
        "{e}"
    );
    let e = error_of(|v| v["series"][0]["grpc_codes"] = json!({"OK": 1}));
    assert!(e.contains("series[0].grpc_codes"), "{e}");
    let e = error_of(|v| v["series"][0]["grpc_codes"] = json!({"0": 1001}));
    assert!(e.contains("more gRPC calls than responses"), "{e}");
    // Plain HTTP sends none, and reads as zeros.
    assert_eq!(
        decode_value(&good()).expect("valid").series[0].grpc_codes,
        [0; 17]
    );
}
