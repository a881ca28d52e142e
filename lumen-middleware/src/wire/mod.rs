//! The wire contract between the middleware and the sidecar.
//!
//! A batch is JSON; latency histograms inside it are HdrHistogram's standard
//! compressed encoding (V2 + DEFLATE, base64), so any language's HdrHistogram
//! library can feed the sidecar.
//!
//! Answers: 200 `{"applied_seq": N}` (with the feedback loop's
//! [`TuningAnswer`] in `tuning` when it has one); 400 for a malformed batch (naming the
//! field); 413 over the size limit; 401 without the sidecar's token; 409 when
//! the sidecar already serves another service (one sidecar, one service:
//! the batch is kept by the sender, never merged into the other service).
//!
//! Compatibility: within wire version 1 changes are additive: a receiver
//! ignores fields it does not know, so a newer sender never loses data to an
//! older sidecar. A new version number is for a change a version-1 reader
//! would misread; a sidecar answers a version it does not read with `409`
//! and the versions it reads in the `lumen-wire-versions` header
//! ([`WIRE_VERSIONS_HEADER`]), and the sender keeps the batch (and logs what
//! to upgrade) until it is read. Data after the batch is refused.
//! A series may name the experiment arm its requests were assigned to
//! (`variant`); series are disjoint by route and variant.
//! A series may say its counts by request method (`methods`, names from
//! [`METHODS`]); they must add up to its `status` and `errors`.
//!
//! This module needs neither tower nor tokio:
//! the sidecar uses it with `default-features = false`.
//!
//! ```
//! use hdrhistogram::Histogram;
//! use lumen_middleware::wire::{self, Batch, Series, StatusCounts};
//!
//! let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
//! latency.record_n(1_250, 3).unwrap();
//! let batch = Batch::new("0b6f2c1e9d7a4f3e", 1, "api", 1_764_130_000_000, 1_764_130_010_000)
//!     .with_series([Series::new(
//!         Some("/hello"),
//!         &latency,
//!         StatusCounts { success: 3, ..Default::default() },
//!     )]);
//! let json = serde_json::to_vec(&batch).unwrap();
//! let decoded = wire::decode(&json).unwrap();
//! assert_eq!(decoded.series[0].latency.len(), 3);
//! ```

mod batch;
mod error;
mod histogram;
mod latency_counts;
mod status_class;
mod tuning;
mod variant;

pub use batch::{
    Batch, CacheCounts, KeySample, MethodCounts, ProcessStats, Series, StatusCounts, TierTime,
    TierTimes,
};
pub use error::WireError;
pub use histogram::{
    MAX_HIGHEST_TRACKABLE_US, MAX_SIGNIFICANT_DIGITS, decode_histogram, encode_histogram,
};
pub use latency_counts::LatencyCounts;
pub use status_class::StatusClass;
pub use tuning::{CacheParams, TuningAnswer};
pub use variant::{Arm, Assignments, ExperimentArms, Variant};

/// The key sample's spatial-hash modulus: 2^24.
pub const KEY_SAMPLE_MODULUS: u32 = 1 << 24;
/// Sampled key accesses one series may carry.
pub const MAX_KEY_ACCESSES: usize = 65_536;

/// The header in which a sidecar that refuses a batch's wire version (with
/// `409 Conflict`) names the versions it reads, comma-separated.
pub const WIRE_VERSIONS_HEADER: &str = "lumen-wire-versions";

/// The wire version this crate writes and reads.
pub const WIRE_VERSION: u64 = 1;
/// Longest `instance`, `service`, `revision` or `route` accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The request methods counted apart, after the OpenTelemetry HTTP
/// conventions: RFC 9110's eight and PATCH, then `_OTHER` for any other.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The cache tiers a series times apart, in [`TierTimes`]' order.
pub const TIERS: [&str; 3] = ["l1", "l2", "origin"];

/// Most series one batch may carry.
pub const MAX_SERIES: usize = 1024;

/// The most events of one kind a batch may count: finished and cancelled
/// requests over all its series, and each series' cache lookups (per tier
/// too). 10^12 is 100 billion requests a second over a 10-second interval,
/// far beyond any service, and small enough that no sum the sidecar keeps
/// (a minute, a day, 32 days of error budget) can reach `u64::MAX`.
pub const MAX_INTERVAL_COUNT: u64 = 1_000_000_000_000;

/// The most bytes a batch's histograms may inflate to together: decoding
/// is CPU, and 1,024 series of 1 MiB each would cost a worker hundreds of
/// milliseconds. A busy minute's histogram inflates to a few KiB.
pub const MAX_BATCH_INFLATED_BYTES: usize = 16 << 20;

/// The highest `seq` accepted: 2^53 − 1, the largest integer every JSON
/// reader keeps exactly (a batch a millisecond would take 285,000 years).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// A batch that passed every check, histograms decoded.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    /// Random id of the app process.
    pub instance: String,
    /// Sequence number within the instance.
    pub seq: u64,
    /// The service's name.
    pub service: String,
    /// The revision that produced it.
    pub revision: Option<String>,
    /// Interval start, Unix ms.
    pub start_ms: u64,
    /// Interval end, Unix ms.
    pub end_ms: u64,
    /// Resource figures of the app process.
    pub process: Option<ProcessStats>,
    /// The series, histograms decoded.
    pub series: Vec<DecodedSeries>,
}

/// One route's interval with its histogram decoded.
#[derive(Debug, Clone)]
pub struct DecodedSeries {
    /// Route label, if the app classifies routes.
    pub route: Option<String>,
    /// The experiment arm, for requests assigned to one.
    pub variant: Option<Variant>,
    /// Latency in µs, as non-zero buckets.
    pub latency: LatencyCounts,
    /// Responses by status class.
    pub status: StatusCounts,
    /// Inner-service failures.
    pub errors: u64,
    /// Client-abandoned requests.
    pub cancelled: u64,
    /// Cache lookups.
    pub cache: CacheCounts,
    /// Responses and failures by method (empty when the sender did not say).
    pub methods: std::collections::BTreeMap<String, MethodCounts>,
    /// gRPC calls by status code (index = code, 0 … 16); zeros for plain HTTP.
    pub grpc_codes: [u64; GRPC_CODES],
    /// The interval's sample of cache keys, if any.
    pub keys: Option<KeySample>,
    /// The interval's cache lookups timed by tier, if any.
    pub tiers: Option<TierTimes>,
    /// For an arm's series, how its requests were assigned.
    pub assignments: Option<Assignments>,
}

/// gRPC status codes a series counts apart (0 OK … 16 UNAUTHENTICATED).
pub const GRPC_CODES: usize = 17;

/// gRPC status codes' names, by code (`google.rpc.Code`).
pub const GRPC_CODE_NAMES: [&str; GRPC_CODES] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Parses and checks a batch body: JSON shape, version, names, timestamps,
/// histograms and their counts. The first fault found is returned, naming
/// its field.
pub fn decode(body: &[u8]) -> Result<DecodedBatch, WireError> {
    // Parse without path tracking first; only a refused body pays for
    // parsing again to name the field at fault.
    match serde_json::from_slice::<Batch>(body) {
        Ok(batch) => validate(batch),
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, Batch>(&mut *de) {
                Err(e) => Err(WireError::Json {
                    field: e.path().to_string(),
                    reason: e.inner().to_string(),
                }),
                // The first parse refused what this one took: data after the batch.
                Ok(batch) => match de.end() {
                    Ok(()) => validate(batch),
                    Err(e) => Err(WireError::Json {
                        field: ".".to_owned(),
                        reason: e.to_string(),
                    }),
                },
            }
        }
    }
}

/// Checks an already parsed [`Batch`] and decodes its histograms.
pub fn validate(batch: Batch) -> Result<DecodedBatch, WireError> {
    if batch.version != WIRE_VERSION {
        return Err(WireError::Version(batch.version));
    }
    check_name("instance", &batch.instance)?;
    check_name("service", &batch.service)?;
    if let Some(revision) = &batch.revision {
        check_name("revision", revision)?;
    }
    if batch.seq == 0 {
        return Err(WireError::invalid("seq", "must be at least 1"));
    }
    if batch.seq > MAX_SEQ {
        return Err(WireError::invalid(
            "seq",
            format!("{} is above the highest accepted, 2^53 - 1", batch.seq),
        ));
    }
    if batch.end_ms < batch.start_ms {
        return Err(WireError::invalid(
            "end_ms",
            format!("{} is before start_ms {}", batch.end_ms, batch.start_ms),
        ));
    }
    if let Some(process) = &batch.process {
        if !(process.cpu_seconds.is_finite() && process.cpu_seconds >= 0.0) {
            return Err(WireError::invalid(
                "process.cpu_seconds",
                "must be a finite number of seconds, at least 0",
            ));
        }
        if process
            .cpu_limit_cores
            .is_some_and(|c| !(c.is_finite() && c > 0.0))
        {
            return Err(WireError::invalid(
                "process.cpu_limit_cores",
                "must be a finite number of cores above 0",
            ));
        }
    }
    if batch.series.len() > MAX_SERIES {
        return Err(WireError::invalid(
            "series",
            format!("{} series; at most {MAX_SERIES}", batch.series.len()),
        ));
    }
    let mut routes = std::collections::HashSet::new();
    let mut series = Vec::with_capacity(batch.series.len());
    // Finished and cancelled requests over every series so far.
    let mut events = 0_u64;
    // Bytes the histograms inflated to so far.
    let mut inflated = 0_usize;
    for (i, s) in batch.series.into_iter().enumerate() {
        if let Some(route) = &s.route {
            check_name(&format!("series[{i}].route"), route)?;
        }
        if let Some(v) = &s.variant
            && v.experiment == 0
        {
            return Err(WireError::invalid(
                format!("series[{i}].variant.experiment"),
                "must be at least 1",
            ));
        }
        if !routes.insert((s.route.clone(), s.variant)) {
            return Err(WireError::invalid(
                format!("series[{i}].route"),
                "repeats an earlier series' route and variant; series must be disjoint",
            ));
        }
        let field = format!("series[{i}].latency_us");
        let (latency, size) =
            LatencyCounts::decode_sized(&s.latency_us).map_err(|reason| WireError::Histogram {
                field: field.clone(),
                reason,
            })?;
        inflated = inflated.saturating_add(size);
        if inflated > MAX_BATCH_INFLATED_BYTES {
            return Err(WireError::invalid(
                field,
                format!(
                    "the batch's histograms inflate beyond {MAX_BATCH_INFLATED_BYTES} bytes together"
                ),
            ));
        }
        let counted = s
            .status
            .checked_total()
            .and_then(|t| t.checked_add(s.errors))
            .ok_or_else(|| WireError::invalid(format!("series[{i}].status"), "counts overflow"))?;
        if latency.len() != counted {
            return Err(WireError::CountMismatch {
                field,
                histogram: latency.len(),
                counted,
            });
        }
        events = events.saturating_add(counted).saturating_add(s.cancelled);
        if events > MAX_INTERVAL_COUNT {
            return Err(WireError::invalid(
                format!("series[{i}].status"),
                format!(
                    "the batch counts {events} requests up to here; an interval holds at most {MAX_INTERVAL_COUNT}"
                ),
            ));
        }
        let lookups = s.cache.hits.saturating_add(s.cache.misses);
        if lookups > MAX_INTERVAL_COUNT {
            return Err(WireError::invalid(
                format!("series[{i}].cache"),
                format!("{lookups} lookups; an interval holds at most {MAX_INTERVAL_COUNT}"),
            ));
        }
        if !s.methods.is_empty() {
            let field = format!("series[{i}].methods");
            let mut status = StatusCounts::default();
            let mut errors = 0_u64;
            for (name, counts) in &s.methods {
                if !METHODS.contains(&name.as_str()) {
                    return Err(WireError::invalid(
                        field,
                        format!("{name:?} is not one of {}", METHODS.join(", ")),
                    ));
                }
                status = status.saturating_add(&counts.status);
                errors = errors.saturating_add(counts.errors);
            }
            if status != s.status || errors != s.errors {
                return Err(WireError::invalid(
                    field,
                    "the counts by method must add up to status and errors",
                ));
            }
        }
        let mut grpc_codes = [0_u64; GRPC_CODES];
        if !s.grpc_codes.is_empty() {
            let field = format!("series[{i}].grpc_codes");
            for (code, n) in &s.grpc_codes {
                let Some(slot) = code
                    .parse::<usize>()
                    .ok()
                    .and_then(|c| grpc_codes.get_mut(c))
                else {
                    return Err(WireError::invalid(
                        field,
                        format!("{code:?} is not a gRPC status code (0 to 16)"),
                    ));
                };
                *slot = *n;
            }
            let calls = grpc_codes.iter().fold(0_u64, |a, n| a.saturating_add(*n));
            if calls > s.status.checked_total().unwrap_or(u64::MAX) {
                return Err(WireError::invalid(field, "more gRPC calls than responses"));
            }
        }
        if let Some(k) = &s.keys {
            let field = format!("series[{i}].keys");
            if k.threshold > KEY_SAMPLE_MODULUS {
                return Err(WireError::invalid(
                    field,
                    format!("threshold {} is above 2^24", k.threshold),
                ));
            }
            if k.accesses.len() > MAX_KEY_ACCESSES {
                return Err(WireError::invalid(
                    field,
                    format!("{} accesses; at most {MAX_KEY_ACCESSES}", k.accesses.len()),
                ));
            }
            if k.lookups > MAX_INTERVAL_COUNT {
                return Err(WireError::invalid(
                    field,
                    format!(
                        "{} lookups; an interval holds at most {MAX_INTERVAL_COUNT}",
                        k.lookups
                    ),
                ));
            }
            if k.accesses.len() as u64 > k.lookups {
                return Err(WireError::invalid(
                    field,
                    "more sampled accesses than lookups",
                ));
            }
        }
        if let Some(a) = &s.assignments
            && a.random.saturating_add(a.by_key) > MAX_INTERVAL_COUNT
        {
            return Err(WireError::invalid(
                format!("series[{i}].assignments"),
                format!("more than {MAX_INTERVAL_COUNT} assignments in an interval"),
            ));
        }
        if let Some(t) = &s.tiers {
            for (name, tier) in TIERS.iter().zip(t.as_array()) {
                if tier.lookups > MAX_INTERVAL_COUNT {
                    return Err(WireError::invalid(
                        format!("series[{i}].tiers.{name}.lookups"),
                        format!(
                            "{} lookups; an interval holds at most {MAX_INTERVAL_COUNT}",
                            tier.lookups
                        ),
                    ));
                }
                if tier.total_us > tier.lookups.saturating_mul(MAX_HIGHEST_TRACKABLE_US) {
                    return Err(WireError::invalid(
                        format!("series[{i}].tiers.{name}.total_us"),
                        format!(
                            "{} µs over {} lookups is more than {MAX_HIGHEST_TRACKABLE_US} µs a lookup",
                            tier.total_us, tier.lookups
                        ),
                    ));
                }
            }
        }
        series.push(DecodedSeries {
            route: s.route,
            variant: s.variant,
            latency,
            status: s.status,
            errors: s.errors,
            cancelled: s.cancelled,
            cache: s.cache,
            methods: s.methods,
            grpc_codes,
            keys: s.keys,
            tiers: s.tiers,
            assignments: s.assignments,
        });
    }
    Ok(DecodedBatch {
        instance: batch.instance,
        seq: batch.seq,
        service: batch.service,
        revision: batch.revision,
        start_ms: batch.start_ms,
        end_ms: batch.end_ms,
        process: batch.process,
        series,
    })
}

fn check_name(field: &str, value: &str) -> Result<(), WireError> {
    if value.is_empty() {
        return Err(WireError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(WireError::invalid(
            field,
            format!("{} bytes; at most {MAX_NAME_LEN}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(WireError::invalid(field, "contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
