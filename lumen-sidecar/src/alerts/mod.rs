//! Alerts: one set of rules (the four threshold policies and SLO status
//! changes), evaluated continuously by the sidecar and posted to Slack, and
//! rendered for Cloud Monitoring and Prometheus.

mod engine;
pub mod fleet_watch;
mod slack;

pub use engine::{AlertEngine, AlertEvent, Observed};
pub use slack::{
    MAX_ATTEMPTS, MIN_SPACING, SECTION_TEXT_LIMIT, SlackSender, escape, message, section,
};

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::app::{AppState, Evaluation, EvaluationCache, Shutdown};
use crate::eval::alert_rules as rules;
use crate::eval::{BudgetReport, ReportScope};

/// How often the sidecar evaluates its alert rules.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(10);
/// Messages queued for Slack before new ones are dropped.
pub const QUEUE: usize = 256;

/// What the rules watch, from an evaluation.
pub fn observed(e: &Evaluation) -> Observed {
    Observed {
        roi: e.health.roi.roi_percent,
        slo_compliance: e.slo.compliance_rate,
        maturity: e.health.maturity.score,
        cache_hit_rate: e.slo.cache.hit_rate,
        status: Some(e.slo.status),
    }
}

/// The engine and the queue to the sender.
#[derive(Debug)]
pub struct Alerter {
    engine: AlertEngine,
    queue: mpsc::Sender<Value>,
    started: tokio::time::Instant,
}

impl Alerter {
    /// An alerter over the threshold rules, sending to `queue`.
    pub fn new(queue: mpsc::Sender<Value>) -> Self {
        Self {
            engine: AlertEngine::new(rules::threshold_rules()),
            queue,
            started: tokio::time::Instant::now(),
        }
    }

    /// Evaluates the rules against `seen` (and the budget alerts of
    /// `budget`) now; queues a message per event, saying whose traffic
    /// (`scope`) it is about.
    pub fn tick(
        &mut self,
        seen: &Observed,
        budget: Option<&BudgetReport>,
        service: &str,
        scope: ReportScope,
    ) -> usize {
        let mut events = self.engine.observe(self.started.elapsed(), seen);
        if let Some(b) = budget {
            events.extend(self.engine.observe_budget(b));
        }
        for event in &events {
            if self
                .queue
                .try_send(message(event, service, &scope))
                .is_err()
            {
                tracing::error!("Slack queue full; an alert message was dropped");
            }
        }
        events.len()
    }
}

/// Runs the alerter and its Slack sender for `webhook` until `stop` fires.
pub async fn run(state: Arc<AppState>, webhook: http::Uri, mut stop: Shutdown) {
    let (queue, messages) = mpsc::channel(QUEUE);
    let sender = SlackSender::new(
        webhook,
        Some(Duration::from_secs(10)),
        Arc::clone(&state.slack_stats),
    );
    let sending = tokio::spawn(sender.run(messages));
    let mut alerter = Alerter::new(queue);
    let mut tick = tokio::time::interval(EVALUATE_EVERY);
    let cache = EvaluationCache::default();
    loop {
        tokio::select! {
            () = stop.fired() => break,
            _ = tick.tick() => {
                let evaluation = cache.get(&state, Duration::from_secs(2));
                alerter.tick(
                    &observed(&evaluation),
                    Some(&evaluation.budget),
                    &evaluation.slo.service,
                    ReportScope::Instance,
                );
            }
        }
    }
    // Dropping the alerter closes the queue; the sender finishes what is
    // queued (bounded by its own retries) or is aborted with the peers.
    drop(alerter);
    let _ = sending.await;
}
