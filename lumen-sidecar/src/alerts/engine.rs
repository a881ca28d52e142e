//! The alert state machine: pure, driven by the caller's clock. A rule goes
//! pending when its figure breaches, fires once the breach has lasted its
//! `for`, and resolves when the figure recovers; the SLO status is reported
//! when a new status has held for a minute. Flapping never outlasts a `for`,
//! so it never fires; one incident is one firing and one resolve.

use std::collections::HashMap;
use std::time::Duration;

use crate::eval::alert_rules::{AlertRule, STATUS_STABLE_FOR, Watched};
use crate::eval::{BudgetReport, Status};

/// The figures the rules watch, `None` without data.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observed {
    /// `roi_percentage`.
    pub roi: Option<f64>,
    /// Overall SLO compliance, percent.
    pub slo_compliance: Option<f64>,
    /// `maturity_score`.
    pub maturity: Option<f64>,
    /// `cache_hit_rate`.
    pub cache_hit_rate: Option<f64>,
    /// The SLO status.
    pub status: Option<Status>,
}

impl Observed {
    fn get(&self, w: Watched) -> Option<f64> {
        match w {
            Watched::Roi => self.roi,
            Watched::SloCompliance => self.slo_compliance,
            Watched::Maturity => self.maturity,
            Watched::CacheHitRate => self.cache_hit_rate,
        }
    }
}

/// Something to tell people.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    /// A rule's breach lasted its `for`.
    Firing {
        /// The rule.
        rule: AlertRule,
        /// The figure now.
        value: f64,
    },
    /// A firing rule's figure recovered.
    Resolved {
        /// The rule.
        rule: AlertRule,
        /// The figure now (`None`: no data any more).
        value: Option<f64>,
    },
    /// A multiwindow burn-rate alert started (`firing`) or stopped.
    Budget {
        /// `availability`, `latency_p95`, ….
        slo: &'static str,
        /// `page` or `ticket`.
        severity: String,
        /// The long window.
        long_window: String,
        /// The short window.
        short_window: String,
        /// The burn rate both windows reached.
        factor: f64,
        /// True when it starts, false when it stops.
        firing: bool,
    },
    /// The SLO status changed and held.
    StatusChanged {
        /// What it was (as last reported).
        from: Option<Status>,
        /// What it is.
        to: Status,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct RuleState {
    breaching_since: Option<Duration>,
    firing: bool,
}

/// Rule states between evaluations.
#[derive(Debug)]
pub struct AlertEngine {
    rules: Vec<AlertRule>,
    states: HashMap<&'static str, RuleState>,
    reported_status: Option<Status>,
    candidate_status: Option<(Status, Duration)>,
    budget_firing: std::collections::HashSet<(&'static str, String)>,
}

impl AlertEngine {
    /// An engine over `rules`, nothing pending.
    pub fn new(rules: Vec<AlertRule>) -> Self {
        Self {
            rules,
            states: HashMap::new(),
            reported_status: None,
            candidate_status: None,
            budget_firing: std::collections::HashSet::new(),
        }
    }

    /// Folds in what was observed at `now` (time since any fixed start).
    pub fn observe(&mut self, now: Duration, seen: &Observed) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for rule in &self.rules {
            let state = self.states.entry(rule.id).or_default();
            let value = seen.get(rule.watched);
            match value {
                Some(v) if v < rule.threshold => {
                    let since = *state.breaching_since.get_or_insert(now);
                    if !state.firing && now.saturating_sub(since) >= rule.for_ {
                        state.firing = true;
                        events.push(AlertEvent::Firing {
                            rule: rule.clone(),
                            value: v,
                        });
                    }
                }
                _ => {
                    state.breaching_since = None;
                    if std::mem::take(&mut state.firing) {
                        events.push(AlertEvent::Resolved {
                            rule: rule.clone(),
                            value,
                        });
                    }
                }
            }
        }
        if let Some(status) = seen.status {
            match self.candidate_status {
                Some((s, _)) if s == status => {}
                _ => self.candidate_status = Some((status, now)),
            }
            if let Some((s, since)) = self.candidate_status
                && Some(s) != self.reported_status
                && now.saturating_sub(since) >= STATUS_STABLE_FOR
            {
                // The first status seen is a baseline, not a change.
                if self.reported_status.is_some() {
                    events.push(AlertEvent::StatusChanged {
                        from: self.reported_status,
                        to: s,
                    });
                }
                self.reported_status = Some(s);
            }
        }
        events
    }

    /// Folds in a budget report: one event when a burn-rate alert starts
    /// firing, one when it stops.
    pub fn observe_budget(&mut self, report: &BudgetReport) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for slo in &report.slos {
            for alert in &slo.alerts {
                let key = (slo.name.as_str(), alert.long_window.clone());
                let was = self.budget_firing.contains(&key);
                if alert.firing != was {
                    if alert.firing {
                        self.budget_firing.insert(key);
                    } else {
                        self.budget_firing.remove(&key);
                    }
                    events.push(AlertEvent::Budget {
                        slo: slo.name.as_str(),
                        severity: alert.severity.clone(),
                        long_window: alert.long_window.clone(),
                        short_window: alert.short_window.clone(),
                        factor: alert.factor,
                        firing: alert.firing,
                    });
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::alert_rules::threshold_rules;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn hit_rate(v: f64) -> Observed {
        Observed {
            cache_hit_rate: Some(v),
            ..Observed::default()
        }
    }

    #[test]
    fn a_breach_shorter_than_for_sends_nothing_longer_fires_once_then_resolves_once() {
        let mut e = AlertEngine::new(threshold_rules());
        assert!(e.observe(secs(0), &hit_rate(50.0)).is_empty());
        assert!(
            e.observe(secs(299), &hit_rate(50.0)).is_empty(),
            "under 5 min"
        );
        assert!(
            e.observe(secs(300), &hit_rate(90.0)).is_empty(),
            "recovered in time"
        );
        assert!(e.observe(secs(400), &hit_rate(50.0)).is_empty());
        let fired = e.observe(secs(700), &hit_rate(45.0));
        assert!(
            matches!(&fired[..], [AlertEvent::Firing { rule, value }] if rule.id == "CacheHitRateLow" && *value == 45.0)
        );
        assert!(
            e.observe(secs(800), &hit_rate(40.0)).is_empty(),
            "no duplicate for one incident"
        );
        let resolved = e.observe(secs(900), &hit_rate(75.0));
        assert!(
            matches!(&resolved[..], [AlertEvent::Resolved { value: Some(v), .. }] if *v == 75.0)
        );
        assert!(e.observe(secs(1000), &hit_rate(75.0)).is_empty());
    }

    #[test]
    fn exactly_for_fires_and_no_data_resolves() {
        let mut e = AlertEngine::new(threshold_rules());
        e.observe(
            secs(0),
            &Observed {
                slo_compliance: Some(75.0),
                ..Observed::default()
            },
        );
        let fired = e.observe(
            secs(180),
            &Observed {
                slo_compliance: Some(75.0),
                ..Observed::default()
            },
        );
        assert_eq!(fired.len(), 1);
        let resolved = e.observe(secs(190), &Observed::default());
        assert!(matches!(
            &resolved[..],
            [AlertEvent::Resolved { value: None, .. }]
        ));
    }

    #[test]
    fn budget_alerts_are_reported_when_they_start_and_stop() {
        use crate::eval::{BudgetAlert, SloBudget, SloName};
        let report = |firing: bool| BudgetReport {
            period: "30d".into(),
            period_start_ms: 0,
            evaluated_at_ms: 0,
            cost: None,
            excluded_requests: 0,
            excluded: Vec::new(),
            slos: vec![SloBudget {
                name: SloName::Availability,
                allowed_share: 0.005,
                events: 1000,
                bad: 100,
                allowed_bad: 5.0,
                remaining_percent: Some(-1900.0),
                exhausted_in_s: Some(0.0),
                burn_rates: Vec::new(),
                alerts: vec![BudgetAlert {
                    severity: "page".into(),
                    long_window: "1h".into(),
                    short_window: "5m".into(),
                    factor: 14.4,
                    firing,
                    low_traffic: false,
                }],
                burndown: Vec::new(),
            }],
        };
        let mut e = AlertEngine::new(threshold_rules());
        assert!(e.observe_budget(&report(false)).is_empty());
        let started = e.observe_budget(&report(true));
        assert!(matches!(
            &started[..],
            [AlertEvent::Budget {
                firing: true,
                slo: "availability",
                ..
            }]
        ));
        assert!(
            e.observe_budget(&report(true)).is_empty(),
            "one message per incident"
        );
        let stopped = e.observe_budget(&report(false));
        assert!(matches!(
            &stopped[..],
            [AlertEvent::Budget { firing: false, .. }]
        ));
    }

    #[test]
    fn status_flapping_reports_only_what_holds() {
        let mut e = AlertEngine::new(threshold_rules());
        let status = |s| Observed {
            status: Some(s),
            ..Observed::default()
        };
        assert!(e.observe(secs(0), &status(Status::Healthy)).is_empty());
        assert!(
            e.observe(secs(60), &status(Status::Healthy)).is_empty(),
            "baseline"
        );
        let mut events = Vec::new();
        // Flapping every 0.6 s for a minute: nothing holds for a minute.
        for i in 0..100_u64 {
            let s = if i % 2 == 0 {
                Status::Warning
            } else {
                Status::Healthy
            };
            events.extend(e.observe(Duration::from_millis(61_000 + 600 * i), &status(s)));
        }
        assert!(events.is_empty(), "{events:?}");
        e.observe(secs(130), &status(Status::Critical));
        let changed = e.observe(secs(190), &status(Status::Critical));
        assert_eq!(
            changed,
            [AlertEvent::StatusChanged {
                from: Some(Status::Healthy),
                to: Status::Critical
            }]
        );
    }
}
