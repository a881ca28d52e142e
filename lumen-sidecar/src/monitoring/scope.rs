//! What the generated artefacts are for: one service in one project, with
//! the SLO targets of the sidecar's configuration. Every query, filter and
//! display name the artefacts carry is scoped by it, so two services in one
//! project (or one Prometheus) never share a policy, an SLO or a series.

use std::time::Duration;

use crate::config::{DataPath, SidecarConfig};
use crate::eval::{RoiConfig, SloTargets};

/// One service's artefacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// The Google Cloud project (`PROJECT_ID` when only rendering).
    pub project: String,
    /// The service, as its metrics' `service_name` label carries it.
    pub service: String,
    /// The SLO targets.
    pub targets: SloTargets,
    /// The ROI costs and thresholds.
    pub roi: RoiConfig,
    /// The evaluation window (the ROI's).
    pub window: Duration,
    /// The data path whose names the queries use.
    pub data_path: DataPath,
    /// Whether the data path was set (`export.data_path`); else it follows
    /// the artefact's destination ([`Scope::for_destination`]).
    pub data_path_set: bool,
}

impl Scope {
    /// The scope of `config`: the service from `--service`, else the
    /// config's `service` (`LUMEN_SERVICE`), else Cloud Run's `K_SERVICE`.
    pub fn from_config(
        config: &SidecarConfig,
        project: &str,
        service: Option<&str>,
    ) -> Result<Self, String> {
        let service = service
            .map(str::to_owned)
            .or_else(|| config.service.clone())
            .or_else(|| config.export.cloud_run.as_ref().map(|r| r.service.clone()))
            .filter(|s| !s.is_empty())
            .ok_or(
                "which service? set --service, LUMEN_SERVICE, service in the config file, or K_SERVICE",
            )?;
        Ok(Self {
            project: project.to_owned(),
            service,
            targets: config.slo.clone(),
            roi: config.roi,
            window: config.window,
            data_path: config.export.data_path.unwrap_or(DataPath::Otlp),
            data_path_set: config.export.data_path.is_some(),
        })
    }

    /// The service as a quoted PromQL / filter string value.
    pub fn quoted_service(&self) -> String {
        quote(&self.service)
    }

    /// A PromQL selector of `metric` for this service, with more matchers.
    /// (`{"name", …}` for a name PromQL must quote).
    pub fn selector(&self, metric: &str, matchers: &str) -> String {
        let service = format!("service_name={}", self.quoted_service());
        if matchers.is_empty() {
            crate::metrics::promql_selector(metric, &service)
        } else {
            crate::metrics::promql_selector(metric, &format!("{service},{matchers}"))
        }
    }

    /// This scope for an artefact read from `destination`'s data path,
    /// unless the configuration names one.
    pub fn for_destination(mut self, destination: DataPath) -> Self {
        if !self.data_path_set {
            self.data_path = destination;
        }
        self
    }

    /// Replaces `$SERVICE`, `$PROJECT` and the `$SLO_*` targets in a
    /// definition; a `$NAME` left unknown is an error naming it.
    pub fn substitute(&self, text: &str) -> Result<String, String> {
        let t = &self.targets;
        let escaped = self.quoted_service();
        let service = &escaped[1..escaped.len() - 1];
        let range = self.range();
        let vars: [(&str, String); 13] = [
            ("$FLEET_ROI_PERCENT", self.fleet_roi()),
            ("$FLEET_CACHE_HIT_RATE", self.fleet_hit_rate("5m")),
            ("$FLEET_MATURITY", self.fleet_maturity()),
            ("$FLEET_SLO_COMPLIANCE", self.fleet_compliance(&range)),
            (
                "$FLEET_LATENCY_P95_SECONDS",
                self.fleet_quantile(0.95, "5m"),
            ),
            (
                "$FLEET_LATENCY_P99_SECONDS",
                self.fleet_quantile(0.99, "5m"),
            ),
            (
                "$FLEET_UNDER_P95_TARGET_PERCENT",
                self.fleet_under_p95_target("5m"),
            ),
            ("$SERVICE", service.to_owned()),
            ("$PROJECT", self.project.clone()),
            ("$SLO_AVAILABILITY", t.availability_percent.to_string()),
            ("$SLO_ERROR_RATE", t.error_rate_percent.to_string()),
            (
                "$SLO_LATENCY_P95_SECONDS",
                (t.latency_p95_ms / 1000.0).to_string(),
            ),
            (
                "$SLO_LATENCY_P99_SECONDS",
                (t.latency_p99_ms / 1000.0).to_string(),
            ),
        ];
        let mut out = text.to_owned();
        // Expressions first: they hold `$SERVICE`-free selectors already built.
        // Longest names first, so `$SLO_…` never half-matches a shorter one.
        let mut ordered = vars.to_vec();
        ordered.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        for (name, value) in &ordered {
            out = out.replace(name, value);
        }
        if let Some(at) = out
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .find_map(|l| l.find('$').map(|i| l[i..].to_owned()))
        {
            let name: String = at
                .chars()
                .take_while(|c| *c == '$' || c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Err(format!(
                "unknown variable {name} (known: $SERVICE, $PROJECT, $SLO_AVAILABILITY, $SLO_ERROR_RATE, $SLO_LATENCY_P95_SECONDS, $SLO_LATENCY_P99_SECONDS, $FLEET_ROI_PERCENT, $FLEET_CACHE_HIT_RATE, $FLEET_MATURITY, $FLEET_SLO_COMPLIANCE, $FLEET_LATENCY_P95_SECONDS, $FLEET_LATENCY_P99_SECONDS, $FLEET_UNDER_P95_TARGET_PERCENT)"
            ));
        }
        Ok(out)
    }
}

pub use crate::metrics::quote;
