//! The JSON shape of a batch, exactly as it travels.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One interval of one app instance: what `POST /v1/ingest` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Wire version; this crate writes and reads [`WIRE_VERSION`](super::WIRE_VERSION).
    pub version: u64,
    /// Random id of the app process; dedup is per instance.
    pub instance: String,
    /// Per instance, strictly increasing from 1; a resent batch keeps its seq.
    pub seq: u64,
    /// The service's name (Cloud Run's `K_SERVICE`).
    pub service: String,
    /// The revision that produced the batch (Cloud Run's `K_REVISION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Interval start, Unix milliseconds.
    pub start_ms: u64,
    /// Interval end, Unix milliseconds (not before `start_ms`).
    pub end_ms: u64,
    /// The app process's resource figures at the end of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStats>,
    /// Disjoint per-route series; their sum is the service total.
    pub series: Vec<Series>,
}

/// The app process's resource figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// CPU time (user + system) the process has used since it started.
    pub cpu_seconds: f64,
    /// Resident memory.
    pub rss_bytes: u64,
    /// The container's cgroup memory limit, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// The container's cgroup CPU limit in cores, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit_cores: Option<f64>,
}

/// The requests of one route in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The route label; absent when the app does not classify routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The experiment arm these requests were assigned to; absent for
    /// requests outside any experiment. (Series are disjoint by route and
    /// variant.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<super::Variant>,
    /// Latency in µs, [`encode_histogram`](super::encode_histogram)'s format.
    pub latency_us: String,
    /// Responses by status class.
    pub status: StatusCounts,
    /// Requests whose inner service failed before a response.
    #[serde(default)]
    pub errors: u64,
    /// The same responses and failures by request method (names from
    /// [`METHODS`](super::METHODS)); absent from older senders. When
    /// present they add up to `status` and `errors`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub methods: std::collections::BTreeMap<String, MethodCounts>,
    /// gRPC calls by status code (`"0"` OK … `"16"` UNAUTHENTICATED, the
    /// OpenTelemetry `rpc.grpc.status_code`), beside their status class;
    /// absent for plain HTTP and from older senders. At most the responses.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub grpc_codes: std::collections::BTreeMap<String, u64>,
    /// Requests the client abandoned; not in the histogram.
    #[serde(default)]
    pub cancelled: u64,
    /// Cache lookups the handlers reported.
    #[serde(default)]
    pub cache: CacheCounts,
    /// The interval's sample of cache keys, for the miss-ratio curve
    /// (absent when the app reported no keyed lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeySample>,
    /// For an arm's series: how its requests were assigned (absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<super::Assignments>,
    /// The interval's lookups and their time by cache tier (absent when
    /// the app timed none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<TierTimes>,
}

impl Batch {
    /// A batch of this wire version from app instance `instance` (its
    /// `seq`-th) of `service`, for the interval `start_ms`..`end_ms`, with
    /// no series yet; [`with_series`](Self::with_series) and the other
    /// `with_*` methods add the rest.
    pub fn new(instance: &str, seq: u64, service: &str, start_ms: u64, end_ms: u64) -> Self {
        Self {
            version: super::WIRE_VERSION,
            instance: instance.to_owned(),
            seq,
            service: service.to_owned(),
            revision: None,
            start_ms,
            end_ms,
            process: None,
            series: Vec::new(),
        }
    }

    /// The same batch with `series` added.
    pub fn with_series(mut self, series: impl IntoIterator<Item = Series>) -> Self {
        self.series.extend(series);
        self
    }

    /// The same batch from revision `revision`.
    pub fn with_revision(mut self, revision: &str) -> Self {
        self.revision = Some(revision.to_owned());
        self
    }

    /// The same batch with the process's resource figures.
    pub fn with_process(mut self, process: ProcessStats) -> Self {
        self.process = Some(process);
        self
    }
}

impl Series {
    /// The requests of `route` (none: unlabelled) whose latencies (µs) are
    /// `latency` and whose responses by status class are `status`; no
    /// failures, cancellations, cache lookups, methods, gRPC codes or arm
    /// until the `with_*` methods add them.
    pub fn new(route: Option<&str>, latency: &Histogram<u64>, status: StatusCounts) -> Self {
        Self {
            route: route.map(str::to_owned),
            variant: None,
            latency_us: super::encode_histogram(latency),
            status,
            errors: 0,
            methods: std::collections::BTreeMap::new(),
            grpc_codes: std::collections::BTreeMap::new(),
            cancelled: 0,
            cache: CacheCounts::default(),
            keys: None,
            assignments: None,
            tiers: None,
        }
    }

    /// The same series with `errors` inner-service failures (their
    /// latencies belong in the histogram too).
    pub fn with_errors(mut self, errors: u64) -> Self {
        self.errors = errors;
        self
    }

    /// The same series with `cancelled` requests the client abandoned.
    pub fn with_cancelled(mut self, cancelled: u64) -> Self {
        self.cancelled = cancelled;
        self
    }

    /// The same series with `hits` and `misses` cache lookups.
    pub fn with_cache(mut self, hits: u64, misses: u64) -> Self {
        self.cache = CacheCounts { hits, misses };
        self
    }

    /// The same series with its responses and failures of request method
    /// `method` (a name of [`METHODS`](super::METHODS)).
    pub fn with_method(mut self, method: &str, counts: MethodCounts) -> Self {
        self.methods.insert(method.to_owned(), counts);
        self
    }

    /// The same series with `calls` gRPC calls that ended with `code`.
    pub fn with_grpc_code(mut self, code: u8, calls: u64) -> Self {
        self.grpc_codes.insert(code.to_string(), calls);
        self
    }

    /// The same series as the requests of `variant`'s arm, assigned as
    /// `assignments` says.
    pub fn with_variant(
        mut self,
        variant: super::Variant,
        assignments: super::Assignments,
    ) -> Self {
        self.variant = Some(variant);
        self.assignments = Some(assignments);
        self
    }

    /// The same series with its sample of cache keys.
    pub fn with_keys(mut self, keys: KeySample) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The same series with its cache lookups timed by tier.
    pub fn with_tiers(mut self, tiers: TierTimes) -> Self {
        self.tiers = Some(tiers);
        self
    }
}

/// How long one route's cache lookups took, tier by tier, over one
/// interval: what the sidecar weighs to say whether an in-process L1, a
/// shared L2 (Redis) or both pay off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierTimes {
    /// In-process cache lookups.
    #[serde(default)]
    pub l1: TierTime,
    /// Shared cache (e.g. Redis) lookups.
    #[serde(default)]
    pub l2: TierTime,
    /// Fetches from the origin (the backend the cache saves).
    #[serde(default)]
    pub origin: TierTime,
}

impl TierTimes {
    /// The tiers in [`TIERS`](super::TIERS)' order.
    pub fn as_array(&self) -> [TierTime; 3] {
        [self.l1, self.l2, self.origin]
    }

    /// The tiers from an array in [`TIERS`](super::TIERS)' order.
    pub fn from_array([l1, l2, origin]: [TierTime; 3]) -> Self {
        Self { l1, l2, origin }
    }
}

/// Lookups of one cache tier and their summed time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierTime {
    /// Lookups timed.
    #[serde(default)]
    pub lookups: u64,
    /// Their summed time, µs (each lookup counts at most
    /// [`MAX_HIGHEST_TRACKABLE_US`](super::MAX_HIGHEST_TRACKABLE_US)).
    #[serde(default)]
    pub total_us: u64,
}

impl TierTime {
    /// Mean µs per lookup, if any was timed.
    pub fn mean_us(&self) -> Option<f64> {
        (self.lookups > 0).then(|| self.total_us as f64 / self.lookups as f64)
    }

    /// Adds `other`, saturating.
    pub fn saturating_add(&self, other: &Self) -> Self {
        Self {
            lookups: self.lookups.saturating_add(other.lookups),
            total_us: self.total_us.saturating_add(other.total_us),
        }
    }
}

/// A route's sampled cache keys over one interval (SHARDS spatial
/// sampling: a key is kept when the top 24 bits of its mixed 64-bit hash
/// are below `threshold`, and then every access to it is kept, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySample {
    /// The sampling threshold, of 2^24.
    pub threshold: u32,
    /// Keyed lookups in the interval, sampled or not.
    pub lookups: u64,
    /// Sampled accesses that did not fit the sender's buffer.
    #[serde(default)]
    pub dropped: u64,
    /// The sampled accesses' mixed hashes, in order.
    pub accesses: Vec<u64>,
}

/// Responses by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Informational responses.
    #[serde(rename = "1xx", default)]
    pub informational: u64,
    /// Successful responses.
    #[serde(rename = "2xx", default)]
    pub success: u64,
    /// Redirects.
    #[serde(rename = "3xx", default)]
    pub redirect: u64,
    /// Client errors.
    #[serde(rename = "4xx", default)]
    pub client_error: u64,
    /// Server errors.
    #[serde(rename = "5xx", default)]
    pub server_error: u64,
}

impl StatusCounts {
    /// The counts as an array indexed by class − 1 (`[1xx, 2xx, 3xx, 4xx, 5xx]`).
    pub fn as_array(&self) -> [u64; 5] {
        [
            self.informational,
            self.success,
            self.redirect,
            self.client_error,
            self.server_error,
        ]
    }

    /// The counts from an array indexed by class − 1.
    pub fn from_array(counts: [u64; 5]) -> Self {
        let [informational, success, redirect, client_error, server_error] = counts;
        Self {
            informational,
            success,
            redirect,
            client_error,
            server_error,
        }
    }

    /// The count of one class.
    pub fn get(&self, class: super::StatusClass) -> u64 {
        self.as_array()[class.index()]
    }

    /// Sum of all classes, or `None` on overflow.
    pub fn checked_total(&self) -> Option<u64> {
        self.as_array()
            .iter()
            .try_fold(0_u64, |sum, c| sum.checked_add(*c))
    }

    /// Adds `other` class by class, saturating.
    pub fn saturating_add(&self, other: &Self) -> Self {
        let a = self.as_array();
        let b = other.as_array();
        Self::from_array(std::array::from_fn(|i| a[i].saturating_add(b[i])))
    }
}

/// The responses and inner failures of one request method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodCounts {
    /// Responses by status class.
    #[serde(default)]
    pub status: StatusCounts,
    /// Inner-service failures.
    #[serde(default)]
    pub errors: u64,
}

/// Cache lookups reported by the app's handlers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCounts {
    /// Lookups answered from the cache.
    #[serde(default)]
    pub hits: u64,
    /// Lookups that went to the backend.
    #[serde(default)]
    pub misses: u64,
}
