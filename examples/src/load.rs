//! A load generator for the mentoring API whose outcome is known request by
//! request: what it sent, what came back, and how many cache hits and
//! misses the API must have reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask `question`; `simulate` goes into `x-simulate`.
    Ask {
        /// The question.
        question: String,
        /// `error`, `slow` or none.
        simulate: Option<&'static str>,
    },
    /// An empty question: the API answers 400 without a cache lookup.
    Invalid,
    /// `GET /api/v1/mentors`.
    Mentors,
}

/// A load of known shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPlan {
    /// Requests in all.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Share of new questions whose backend call must fail (503).
    pub error_share: f64,
    /// Share of new questions whose backend call is slow.
    pub slow_share: f64,
    /// Share of requests repeating an already answered question (cache hits).
    pub repeat_share: f64,
    /// Share of requests with an empty question (400).
    pub invalid_share: f64,
    /// Seed of the plan's randomness.
    pub seed: u64,
}

/// What a load did and what the API must have seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOutcome {
    /// Requests answered (any status).
    pub answered: u64,
    /// Answers by class, `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: [u64; 5],
    /// Requests that got no answer.
    pub transport_errors: u64,
    /// Cache lookups that must have hit.
    pub expected_hits: u64,
    /// Cache lookups that must have missed.
    pub expected_misses: u64,
}

impl LoadOutcome {
    fn add(&mut self, o: &Self) {
        self.answered += o.answered;
        self.transport_errors += o.transport_errors;
        self.expected_hits += o.expected_hits;
        self.expected_misses += o.expected_misses;
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
    }
}

/// Sends requests to one API.
#[derive(Clone)]
pub struct LoadClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl std::fmt::Debug for LoadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadClient")
            .field("base", &self.base)
            .finish()
    }
}

impl LoadClient {
    /// A client of the API at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends one step; the answer's status, or `None` without an answer.
    pub async fn send(&self, step: &Step) -> Option<u16> {
        let builder = http::Request::builder();
        let request = match step {
            Step::Ask { question, simulate } => {
                let mut b = builder
                    .method("POST")
                    .uri(format!("{}/api/v1/mentor/ask", self.base))
                    .header("content-type", "application/json");
                if let Some(s) = simulate {
                    b = b.header("x-simulate", *s);
                }
                let body = serde_json::to_vec(&serde_json::json!({ "question": question }))
                    .expect("a JSON object serializes");
                b.body(Full::new(Bytes::from(body)))
            }
            Step::Invalid => builder
                .method("POST")
                .uri(format!("{}/api/v1/mentor/ask", self.base))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(br#"{"question":"   "}"#))),
            Step::Mentors => builder
                .uri(format!("{}/api/v1/mentors", self.base))
                .body(Full::new(Bytes::new())),
        }
        .expect("requests built from valid parts");
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    }
}

fn class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// Sends `steps` with at most `concurrency` in flight; returns each step's
/// status in step order.
pub async fn send_all(
    client: &LoadClient,
    steps: Vec<Step>,
    concurrency: usize,
) -> Vec<Option<u16>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(steps.len());
    for step in steps {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let status = client.send(&step).await;
            drop(permit);
            status
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or(None));
    }
    out
}

fn tally(statuses: &[Option<u16>]) -> LoadOutcome {
    let mut o = LoadOutcome::default();
    for s in statuses {
        match s {
            Some(code) => {
                o.answered += 1;
                o.status[class(*code)] += 1;
            }
            None => o.transport_errors += 1,
        }
    }
    o
}

/// Runs `plan` in two phases: first new questions (each a cache miss; the
/// marked ones fail or are slow) and invalid requests, then repeats of
/// questions answered in the first phase (each a cache hit).
pub async fn run_plan(base: &str, plan: &LoadPlan) -> LoadOutcome {
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let share = |s: f64| (plan.requests as f64 * s).round() as u64;
    let invalid = share(plan.invalid_share);
    let repeats = share(plan.repeat_share).min(plan.requests - invalid);
    let new = plan.requests - invalid - repeats;
    let errors = share(plan.error_share).min(new);
    let slow = share(plan.slow_share).min(new - errors);
    let mut first: Vec<Step> = (0..new)
        .map(|i| Step::Ask {
            question: format!(
                "Question {} from seed {}: how do I meet my SLO?",
                i, plan.seed
            ),
            simulate: if i < errors {
                Some("error")
            } else if i < errors + slow {
                Some("slow")
            } else {
                None
            },
        })
        .chain((0..invalid).map(|_| Step::Invalid))
        .collect();
    first.shuffle(&mut rng);
    let client = LoadClient::new(base);
    let statuses = send_all(&client, first.clone(), plan.concurrency).await;
    let mut outcome = tally(&statuses);
    let answered: Vec<String> = first
        .iter()
        .zip(&statuses)
        .filter_map(|(step, status)| match (step, status) {
            (Step::Ask { question, .. }, Some(200)) => Some(question.clone()),
            _ => None,
        })
        .collect();
    outcome.expected_misses = first
        .iter()
        .filter(|s| matches!(s, Step::Ask { .. }))
        .count() as u64;
    if answered.is_empty() || repeats == 0 {
        return outcome;
    }
    let second: Vec<Step> = (0..repeats)
        .map(|_| Step::Ask {
            // Repeats differ in case and spacing: the API normalises them.
            question: format!(
                "  {}  ",
                answered[rng.random_range(0..answered.len())].to_uppercase()
            ),
            simulate: None,
        })
        .collect();
    let statuses = send_all(&client, second, plan.concurrency).await;
    let mut repeated = tally(&statuses);
    repeated.expected_hits = repeated.answered;
    outcome.add(&repeated);
    outcome
}

/// Live counters of a timed load, for a progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests answered.
    pub answered: AtomicU64,
    /// Answers by class.
    pub status: [AtomicU64; 5],
    /// Requests without an answer.
    pub failed: AtomicU64,
}

/// Sends a realistic mix at about `rate` requests per second for
/// `duration`: mostly popular questions (cache hits once answered), some
/// new ones, the mentor list, a few empty questions.
pub async fn run_for(base: &str, duration: Duration, rate: u32, progress: Arc<Progress>) {
    let client = LoadClient::new(base);
    let popular: Vec<String> = (0..40)
        .map(|i| format!("Popular question {i}: how do I set an SLO?"))
        .collect();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut n = 0_u64;
    let mut inflight = tokio::task::JoinSet::new();
    while started.elapsed() < duration {
        tick.tick().await;
        n += 1;
        let roll: f64 = rng.random();
        let step = if roll < 0.70 {
            Step::Ask {
                question: popular[rng.random_range(0..popular.len())].clone(),
                simulate: None,
            }
        } else if roll < 0.93 {
            Step::Ask {
                question: format!("New question {n}"),
                simulate: None,
            }
        } else if roll < 0.995 {
            Step::Mentors
        } else {
            Step::Invalid
        };
        let client = client.clone();
        let progress = Arc::clone(&progress);
        inflight.spawn(async move {
            match client.send(&step).await {
                Some(code) => {
                    progress.answered.fetch_add(1, Ordering::Relaxed);
                    progress.status[class(code)].fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}
