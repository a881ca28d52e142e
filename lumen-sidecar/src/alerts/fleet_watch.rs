//! `alerts watch`: the alert rules evaluated once for the whole fleet by one
//! process, so each state change is posted once, not once per instance.
//!
//! Every tick reads the fleet (SLO report, health, budgets) through the
//! query API and folds it into the same [`Alerter`] the sidecar runs: the
//! four threshold rules with their `for`, SLO status changes, burn-rate pages
//! and tickets. A tick whose queries fail changes no state (nothing is
//! resolved for want of data) and is logged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::alerts::{Alerter, Observed, QUEUE, SlackSender};
use crate::app::{SlackStats, now_ms};
use crate::eval::SloReport;
use crate::fleet::{FleetError, FleetSource};

/// The default time between evaluations.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(30);

/// What a watch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchSummary {
    /// Evaluations that read the fleet.
    pub evaluated: u64,
    /// Evaluations whose queries failed.
    pub failed: u64,
    /// Messages queued for Slack.
    pub events: u64,
    /// Messages Slack accepted.
    pub sent: u64,
    /// Messages given up.
    pub dropped: u64,
}

/// How a watch runs.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// The evaluation window.
    pub window: Duration,
    /// Time between evaluations.
    pub every: Duration,
    /// Stop after this many evaluations (None: until `stop`).
    pub ticks: Option<u64>,
}

async fn read(
    reader: &FleetSource,
    window: Duration,
) -> Result<(SloReport, Observed, crate::eval::BudgetReport), FleetError> {
    let at = now_ms();
    let slo = reader.slo_report(window, at).await?;
    let health = reader.health_of(&slo, window, at).await?;
    let budget = reader.budget(at).await?;
    let seen = Observed {
        roi: health.roi.roi_percent,
        slo_compliance: slo.compliance_rate,
        maturity: health.maturity.score,
        cache_hit_rate: slo.cache.hit_rate,
        status: Some(slo.status),
    };
    Ok((slo, seen, budget))
}

/// Watches the fleet, posting to `webhook`, until `plan.ticks` evaluations
/// are done or `stop` completes; then lets the sender finish what is queued.
pub async fn watch(
    reader: FleetSource,
    webhook: http::Uri,
    plan: WatchPlan,
    stop: impl Future<Output = ()>,
) -> WatchSummary {
    let stats = Arc::new(SlackStats::default());
    let (queue, messages) = mpsc::channel(QUEUE);
    let sender = SlackSender::new(webhook, Some(Duration::from_secs(10)), Arc::clone(&stats));
    let sending = tokio::spawn(sender.run(messages));
    let mut alerter = Alerter::new(queue);
    let mut summary = WatchSummary::default();
    let mut tick = tokio::time::interval(plan.every);
    tokio::pin!(stop);
    loop {
        if plan
            .ticks
            .is_some_and(|n| summary.evaluated + summary.failed >= n)
        {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {}
        }
        match read(&reader, plan.window).await {
            Ok((slo, seen, budget)) => {
                summary.evaluated += 1;
                let events = alerter.tick(&seen, Some(&budget), reader.service(), slo.scope) as u64;
                summary.events += events;
                tracing::info!(
                    service = %reader.service(),
                    status = slo.status.as_str(),
                    requests = slo.requests,
                    events,
                    "fleet evaluated"
                );
            }
            Err(e) => {
                summary.failed += 1;
                tracing::error!(error = %e, "cannot read the fleet; no alert state changed");
            }
        }
    }
    drop(alerter);
    let _ = sending.await;
    summary.sent = stats.sent.load(std::sync::atomic::Ordering::Relaxed);
    summary.dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
    summary
}
