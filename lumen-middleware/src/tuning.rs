//! The tuning channel, app side: the parameters the sidecar's feedback
//! loop sets (a cache's TTL, its in-process L1 capacity) arrive on each
//! ingest answer; the shipper stores them here, and the app reads them
//! where it uses them. A read is one relaxed atomic load: no lock, no
//! allocation. Take a cache's handle once (that registers its name), keep
//! it, read it per request:
//!
//! ```
//! use std::time::Duration;
//! use lumen_middleware::tuning;
//!
//! let answers = tuning().cache("/ask");
//! // Per request: the loop's TTL once it set one, else the app's own.
//! let ttl = answers.ttl_or(Duration::from_secs(300));
//! assert_eq!(ttl, Duration::from_secs(300));
//! ```
//!
//! A parameter under an A/B experiment (any whole number the app reads,
//! such as a TTL in seconds) is read through [`Tuning::param`]: per
//! request, [`TunedParam::assign`] puts the request in an arm (by a stable
//! hash of a key the app gives, else at random) and the request, with the
//! cache reports after it, is recorded in that arm's series. Outside an
//! experiment it is the value a decided experiment fixed, if any:
//!
//! ```
//! use lumen_middleware::tuning;
//!
//! let ttl_param = tuning().param("answer_ttl_s"); // once, at start-up
//! // Per request (key: the question's hash, so a question keeps its arm):
//! let ttl_s = ttl_param.assign(Some(0x5eed)).value_or(300);
//! assert_eq!(ttl_s, 300); // no experiment running
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::wire::{Arm, TuningAnswer};

/// Caches the channel keeps at most (names past it are ignored: each
/// handle lives as long as the process).
pub const MAX_CACHES: usize = 256;

/// One cache's parameters as the feedback loop last set them.
#[derive(Debug)]
pub struct CacheTuning {
    name: Box<str>,
    ttl_s: AtomicU32,
    l1_capacity: AtomicU64,
}

impl CacheTuning {
    /// Its name (the route whose lookups it serves).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TTL the loop set, if it set one.
    #[inline]
    pub fn ttl(&self) -> Option<Duration> {
        match self.ttl_s.load(Ordering::Relaxed) {
            0 => None,
            s => Some(Duration::from_secs(u64::from(s))),
        }
    }

    /// The TTL the loop set, else `default`.
    #[inline]
    pub fn ttl_or(&self, default: Duration) -> Duration {
        self.ttl().unwrap_or(default)
    }

    /// The L1 capacity (entries) the loop set, if it set one.
    #[inline]
    pub fn l1_capacity(&self) -> Option<u64> {
        match self.l1_capacity.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

/// "No value": what [`TunedParam`]'s fixed value holds until one is set.
const NO_VALUE: u64 = u64::MAX;

/// A parameter an experiment may vary: the running experiment's arms, or
/// the value a decided one fixed.
#[derive(Debug)]
pub struct TunedParam {
    name: Box<str>,
    fixed: AtomicU64,
    /// `id << 32 | B's share in thousandths`; 0: no experiment.
    running: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
}

/// The arm a request was put in and the value it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    arm: Option<Arm>,
    value: Option<u64>,
}

impl Assignment {
    /// The arm, while an experiment runs on the parameter.
    pub fn arm(&self) -> Option<Arm> {
        self.arm
    }

    /// The arm's value, else the fixed one, else none.
    pub fn value(&self) -> Option<u64> {
        self.value
    }

    /// The value, else `default` (the app's own).
    pub fn value_or(&self, default: u64) -> u64 {
        self.value.unwrap_or(default)
    }
}

thread_local! {
    static RANDOM: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A per-thread xorshift draw (seeded once per thread from the std's
/// random hasher keys): no lock, no allocation.
fn random() -> u64 {
    RANDOM.with(|r| {
        let mut x = r.get();
        if x == 0 {
            use std::hash::BuildHasher;
            x = std::collections::hash_map::RandomState::new().hash_one(r as *const _ as usize) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

/// splitmix64's finaliser: spreads any key hash evenly.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl TunedParam {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value a decided experiment fixed, if any.
    #[inline]
    pub fn value(&self) -> Option<u64> {
        match self.fixed.load(Ordering::Relaxed) {
            NO_VALUE => None,
            v => Some(v),
        }
    }

    /// The running experiment's id, if one runs on this parameter.
    pub fn experiment(&self) -> Option<u32> {
        match self.running.load(Ordering::Acquire) {
            0 => None,
            r => Some((r >> 32) as u32),
        }
    }

    /// Puts the current request in an arm of the running experiment (by
    /// `key`, a stable hash the app chooses, so that a key keeps its arm;
    /// at random without one) and returns the arm's value; outside an
    /// experiment, the fixed value. The request (and the cache reports
    /// after this call) is recorded in the arm's series; a request is
    /// assigned once, so call it before reporting cache lookups. No lock,
    /// no allocation (but once per route, at its first assignment).
    #[inline]
    pub fn assign(&self, key: Option<u64>) -> Assignment {
        let running = self.running.load(Ordering::Acquire);
        if running == 0 {
            return Assignment {
                arm: None,
                value: self.value(),
            };
        }
        let id = (running >> 32) as u32;
        let share_b = running & 0xFFFF_FFFF;
        let draw = match key {
            Some(k) => mix(k ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => random(),
        };
        let arm = if draw % 1000 < share_b {
            Arm::B
        } else {
            Arm::A
        };
        crate::cache::assign_arm(arm, id, key.is_some());
        let value = match arm {
            Arm::A => self.a.load(Ordering::Relaxed),
            Arm::B => self.b.load(Ordering::Relaxed),
        };
        Assignment {
            arm: Some(arm),
            value: Some(value),
        }
    }
}

/// Every cache's parameters and the version they came with.
#[derive(Debug)]
pub struct Tuning {
    version: AtomicU64,
    epoch: AtomicU64,
    caches: Mutex<Vec<&'static CacheTuning>>,
    params: Mutex<Vec<&'static TunedParam>>,
}

static TUNING: Tuning = Tuning {
    version: AtomicU64::new(0),
    epoch: AtomicU64::new(0),
    caches: Mutex::new(Vec::new()),
    params: Mutex::new(Vec::new()),
};

/// The process's tuning channel.
pub fn tuning() -> &'static Tuning {
    &TUNING
}

impl Tuning {
    /// The handle of cache `name`, registered on first use (that takes a
    /// lock and allocates once: take it at start-up and keep it). Past
    /// [`MAX_CACHES`] names, a handle that no answer sets.
    pub fn cache(&self, name: &str) -> &'static CacheTuning {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = caches.iter().find(|c| &*c.name == name) {
            return found;
        }
        let made: &'static CacheTuning = Box::leak(Box::new(CacheTuning {
            name: name.into(),
            ttl_s: AtomicU32::new(0),
            l1_capacity: AtomicU64::new(0),
        }));
        if caches.len() < MAX_CACHES {
            caches.push(made);
        }
        made
    }

    /// The handle of parameter `name`, registered on first use (a lock and
    /// one allocation: take it at start-up and keep it). Past
    /// [`MAX_CACHES`] names, a handle that no answer sets.
    pub fn param(&self, name: &str) -> &'static TunedParam {
        let mut params = self.params.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = params.iter().find(|p| &*p.name == name) {
            return found;
        }
        let made: &'static TunedParam = Box::leak(Box::new(TunedParam {
            name: name.into(),
            fixed: AtomicU64::new(NO_VALUE),
            running: AtomicU64::new(0),
            a: AtomicU64::new(0),
            b: AtomicU64::new(0),
        }));
        if params.len() < MAX_CACHES {
            params.push(made);
        }
        made
    }

    /// The version of the parameters held (0: none received).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Stores `answer` if it is newer than what is held; whether it was.
    /// The shipper calls this with each ingest answer; an app that gets the
    /// sidecar's answers another way (its own sender) may call it too.
    pub fn apply(&self, answer: &TuningAnswer) -> bool {
        let same_sidecar = answer.epoch == self.epoch.load(Ordering::Relaxed);
        if same_sidecar && answer.version <= self.version() {
            return false;
        }
        self.epoch.store(answer.epoch, Ordering::Relaxed);
        for (name, params) in &answer.caches {
            let cache = self.cache(name);
            if let Some(ttl) = params.ttl_s {
                cache.ttl_s.store(ttl, Ordering::Relaxed);
            }
            if let Some(n) = params.l1_capacity {
                cache.l1_capacity.store(n, Ordering::Relaxed);
            }
        }
        for (name, value) in &answer.params {
            self.param(name).fixed.store(*value, Ordering::Relaxed);
        }
        let experiment = match &answer.experiment {
            Some(e) => match e.check() {
                Ok(()) => Some((self.param(&e.param), e)),
                Err(why) => {
                    tracing::warn!(why, "ignored an experiment this app cannot run");
                    None
                }
            },
            None => None,
        };
        // Every other parameter's experiment, if any, has stopped.
        for param in self
            .params
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if !experiment.is_some_and(|(p, _)| std::ptr::eq(p, *param)) {
                param.running.store(0, Ordering::Release);
            }
        }
        if let Some((param, e)) = experiment {
            param.a.store(e.a, Ordering::Relaxed);
            param.b.store(e.b, Ordering::Relaxed);
            let share = u64::from(e.share_b_percent) * 10;
            param
                .running
                .store(u64::from(e.id) << 32 | share, Ordering::Release);
            tracing::info!(
                id = e.id,
                param = e.param,
                a = e.a,
                b = e.b,
                share_b_percent = e.share_b_percent,
                "experiment running"
            );
        }
        self.version.store(answer.version, Ordering::Relaxed);
        tracing::info!(
            version = answer.version,
            caches = answer.caches.len(),
            "tuning parameters received"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CacheParams;

    #[test]
    fn newer_answers_set_the_handles_and_older_ones_do_not() {
        let t = Tuning {
            version: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            caches: Mutex::new(Vec::new()),
            params: Mutex::new(Vec::new()),
        };
        let ask = t.cache("/ask");
        assert_eq!(ask.ttl(), None);
        let answer = |version, ttl| TuningAnswer {
            version,
            caches: [(
                "/ask".to_owned(),
                CacheParams {
                    ttl_s: Some(ttl),
                    l1_capacity: Some(500),
                },
            )]
            .into(),
            ..Default::default()
        };
        assert!(t.apply(&answer(2, 120)));
        assert_eq!(ask.ttl(), Some(Duration::from_secs(120)));
        assert_eq!(ask.l1_capacity(), Some(500));
        assert!(!t.apply(&answer(1, 60)), "older");
        // A restarted sidecar (a new epoch) counts its versions afresh.
        let restarted = TuningAnswer {
            epoch: 42,
            ..answer(1, 90)
        };
        assert!(t.apply(&restarted), "a new epoch");
        assert_eq!(ask.ttl(), Some(Duration::from_secs(90)));
        assert!(!t.apply(&restarted), "the same again");
        let newer = TuningAnswer {
            epoch: 42,
            ..answer(2, 120)
        };
        assert!(t.apply(&newer), "a newer version of the same sidecar");
        assert_eq!(ask.ttl_or(Duration::ZERO), Duration::from_secs(120));
        assert!(std::ptr::eq(ask, t.cache("/ask")));
    }

    fn fresh() -> Tuning {
        Tuning {
            version: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            caches: Mutex::new(Vec::new()),
            params: Mutex::new(Vec::new()),
        }
    }

    fn experiment(version: u64, share_b_percent: u8) -> TuningAnswer {
        TuningAnswer {
            version,
            experiment: Some(crate::wire::ExperimentArms {
                id: 7,
                param: "ttl".into(),
                a: 60,
                b: 600,
                share_b_percent,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_key_keeps_its_arm_and_the_split_follows_the_share() {
        let t = fresh();
        let p = t.param("ttl");
        assert_eq!(p.assign(Some(1)).arm(), None);
        assert!(t.apply(&experiment(1, 30)));
        assert_eq!(p.experiment(), Some(7));
        let mut b = 0;
        for k in 0..20_000_u64 {
            let first = p.assign(Some(k));
            assert_eq!(first, p.assign(Some(k)), "a key keeps its arm");
            match first.arm() {
                Some(Arm::B) => {
                    b += 1;
                    assert_eq!(first.value(), Some(600));
                }
                Some(Arm::A) => assert_eq!(first.value(), Some(60)),
                None => panic!("an experiment runs"),
            }
        }
        // 30 % of 20,000: σ ≈ 65, so ±400 is over 6 σ.
        assert!((5_600..=6_400).contains(&b), "{b} in B");
        // At random, too.
        let random_b = (0..20_000)
            .filter(|_| p.assign(None).arm() == Some(Arm::B))
            .count();
        assert!((5_600..=6_400).contains(&random_b), "{random_b} in B");
    }

    #[test]
    fn a_stopped_experiment_leaves_the_fixed_value_and_bad_arms_are_ignored() {
        let t = fresh();
        let p = t.param("ttl");
        assert!(t.apply(&experiment(1, 50)));
        let mut stop = TuningAnswer {
            version: 2,
            ..Default::default()
        };
        stop.params.insert("ttl".into(), 600);
        assert!(t.apply(&stop));
        assert_eq!(p.experiment(), None);
        assert_eq!(
            p.assign(Some(3)),
            Assignment {
                arm: None,
                value: Some(600)
            }
        );
        // A share of 0 (or 100) cannot be run: ignored, nothing starts.
        assert!(t.apply(&experiment(3, 0)));
        assert_eq!(p.experiment(), None);
    }

    #[tokio::test]
    async fn each_request_is_recorded_in_its_arm_and_the_arms_add_up() {
        use tower::{Layer, ServiceExt};
        let t: &'static Tuning = Box::leak(Box::new(fresh()));
        assert!(t.apply(&experiment(1, 50)));
        let (layer, _shipper) =
            crate::pair(crate::LumenConfig::default()).expect("the default config is valid");
        let p = t.param("ttl");
        let service = layer.layer(tower::service_fn(
            move |req: http::Request<()>| async move {
                let key: u64 = req.uri().path()[1..].parse().expect("a number");
                let arm = p.assign(Some(key));
                // After the assignment: counted in the arm.
                crate::cache::record(arm.arm() == Some(Arm::B));
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        ));
        for k in 0..500_u64 {
            let req = http::Request::get(format!("/{k}"))
                .body(())
                .expect("request");
            service.clone().oneshot(req).await.expect("infallible");
        }
        let series = layer.recorder().drain();
        let requests = |s: &crate::recorder::IntervalSeries| s.status.iter().sum::<u64>();
        let base: Vec<_> = series.iter().filter(|s| s.variant.is_none()).collect();
        assert!(
            base.iter().all(|s| requests(s) == 0),
            "none outside the arms"
        );
        let arm = |a: Arm| {
            series
                .iter()
                .find(|s| s.variant.map(|v| (v.experiment, v.arm)) == Some((7, a)))
                .unwrap_or_else(|| panic!("arm {a:?} series: {series:?}"))
        };
        let (a, b) = (arm(Arm::A), arm(Arm::B));
        assert_eq!(requests(a) + requests(b), 500);
        // Every B request reported a hit and every A request a miss, in its arm.
        assert_eq!((b.cache_hits, b.cache_misses), (requests(b), 0));
        assert_eq!((a.cache_hits, a.cache_misses), (0, requests(a)));
        assert!((200..=300).contains(&requests(b)), "{}", requests(b));
        // Each request counted once as assigned, by key.
        assert_eq!(a.assigned, [0, requests(a)]);
        assert_eq!(b.assigned, [0, requests(b)]);
        let wire = b.to_wire();
        assert_eq!(
            wire.variant,
            Some(crate::wire::Variant {
                experiment: 7,
                arm: Arm::B
            })
        );
    }
}
