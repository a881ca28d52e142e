//! `dashboard render|deploy` and `alerts render|apply|watch`: the artefacts
//! for Cloud Monitoring, Grafana and Prometheus, and the fleet's alerter.

use std::path::Path;

use serde_json::json;

use super::report::reader_and_window;
use super::{AlertsAction, CliError, DashboardAction, FleetArgs};
use crate::alerts::fleet_watch::{WatchPlan, watch};
use crate::config::{DataPath, SidecarConfig};
use crate::eval::SloName;
use crate::google::access_tokens::command_tokens;
use crate::monitoring::api::{ApiError, Change, DEFAULT_API_BASE, MonitoringApi, console_url};
use crate::monitoring::dashboard::{BUILTIN_DASHBOARD, DashboardDef, cloud_monitoring, grafana};
use crate::monitoring::policies::{
    CHANNEL_NAME, burn_rate_rules, policies, prometheus_rules, slack_channel,
};
use crate::monitoring::scope::Scope;
use crate::monitoring::slos;

/// What the `dashboard` and `alerts` commands work for: the sidecar's own
/// configuration (`--config`, `LUMEN_*`), the project and the service.
pub fn scope(
    config_file: Option<&Path>,
    project: &str,
    service: Option<&str>,
) -> Result<(SidecarConfig, Scope), CliError> {
    let config = SidecarConfig::load(config_file)?;
    let scope = Scope::from_config(&config, project, service).map_err(CliError::Usage)?;
    Ok((config, scope))
}

/// Which objects `alerts apply` creates or updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyParts {
    /// The four threshold policies (ROI, SLO compliance, maturity, cache
    /// hit rate).
    pub thresholds: bool,
    /// The Service and its four request-based SLOs.
    pub slos: bool,
    /// The 16 burn-rate policies (they need the SLOs to exist).
    pub burn_rate: bool,
}

impl ApplyParts {
    /// From `--only` (empty: everything).
    pub fn from_only(only: &[String]) -> Self {
        let all = only.is_empty();
        let has = |p: &str| all || only.iter().any(|o| o == p);
        Self {
            thresholds: has("thresholds"),
            slos: has("slos"),
            burn_rate: has("burn-rate"),
        }
    }
}

/// What an `apply` did: one line per object, and how many failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// One line per object: created, updated, exists, or FAILED with Google's answer.
    pub lines: Vec<String>,
    /// Objects that failed.
    pub failures: usize,
}

impl ApplyReport {
    fn record(&mut self, what: &str, result: Result<Change, ApiError>) {
        match result {
            Ok(Change::Created(n)) => self.lines.push(format!("created {what}: {n}")),
            Ok(Change::Updated(n)) => self.lines.push(format!("updated {what}: {n}")),
            Ok(Change::WouldApply(w)) => self.lines.push(format!("dry run: {w}")),
            Err(e) => {
                self.failures += 1;
                self.lines.push(format!("FAILED {what}: {e}"));
            }
        }
    }
}

/// Reads the dashboard definition (`file`, or the built-in one) for `scope`.
pub fn load_dashboard(file: Option<&Path>, scope: &Scope) -> Result<DashboardDef, CliError> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", f.display())))?,
        None => BUILTIN_DASHBOARD.to_owned(),
    };
    let text = scope
        .substitute(&text)
        .map_err(|e| CliError::Usage(format!("dashboard definition: {e}")))?;
    DashboardDef::parse(&text).map_err(|e| CliError::Usage(format!("dashboard definition: {e}")))
}

/// `dashboard render`.
pub fn dashboard_render(
    format: &str,
    file: Option<&Path>,
    scope: &Scope,
) -> Result<String, CliError> {
    // Grafana reads a Prometheus scraping /metrics; Cloud Monitoring the
    // OTLP names (unless the configuration names the data path).
    let value = match format {
        "cloud-monitoring" => cloud_monitoring(&load_dashboard(file, scope)?, &scope.project),
        "grafana" => grafana(&load_dashboard(
            file,
            &scope.clone().for_destination(DataPath::Prometheus),
        )?),
        other => {
            return Err(CliError::Usage(format!(
                "--format {other}: cloud-monitoring or grafana"
            )));
        }
    };
    Ok(serde_json::to_string_pretty(&value).expect("JSON serializes"))
}

/// `dashboard deploy`.
pub async fn dashboard_deploy(
    scope: &Scope,
    file: Option<&Path>,
    dry_run: bool,
    token_file: Option<&Path>,
    api_base: Option<&str>,
) -> Result<String, CliError> {
    let project = scope.project.as_str();
    let def = load_dashboard(file, scope)?;
    let tokens = command_tokens(token_file).await.map_err(CliError::Read)?;
    let api = MonitoringApi::new(api_base.unwrap_or(DEFAULT_API_BASE), project, tokens);
    let change = api
        .upsert_dashboard(&cloud_monitoring(&def, project), dry_run)
        .await
        .map_err(|e| CliError::Change(e.to_string()))?;
    Ok(match change {
        Change::Created(name) => format!("created {name}\n{}", console_url(&name, project)),
        Change::Updated(name) => format!("updated {name}\n{}", console_url(&name, project)),
        Change::WouldApply(what) => format!("dry run: would {what}"),
    })
}

/// `alerts render`.
pub fn alerts_render(
    format: &str,
    config: &SidecarConfig,
    scope: &Scope,
) -> Result<String, CliError> {
    let period_hours = config.budget_period.bounds(crate::app::now_ms()).1;
    match format {
        "prometheus" => {
            let scope = scope.clone().for_destination(DataPath::Prometheus);
            Ok(prometheus_rules(&scope)
                + &burn_rate_rules(&scope, period_hours, config.budget_min_events))
        }
        "cloud-monitoring" => {
            let channels = [format!(
                "projects/{}/notificationChannels/CHANNEL_ID",
                scope.project
            )];
            Ok(serde_json::to_string_pretty(&json!({
                "notificationChannel": slack_channel("#lumen-alerts", "SLACK_BOT_TOKEN"),
                "alertPolicies": policies(scope, &channels),
                "service": { "id": slos::service_id(&scope.service), "body": slos::service(&scope.service) },
                "serviceLevelObjectives": SloName::ALL.iter().map(|n| json!({ "id": slos::slo_id(*n), "body": slos::slo(*n, scope, config.budget_period) })).collect::<Vec<_>>(),
                "burnRatePolicies": SloName::ALL.iter().flat_map(|n| slos::rows(period_hours).into_iter().map(move |r| (*n, r))).map(|(n, r)| slos::burn_policy(scope, n, r, &channels)).collect::<Vec<_>>(),
            }))
            .expect("JSON serializes"))
        }
        other => Err(CliError::Usage(format!(
            "--format {other}: cloud-monitoring or prometheus"
        ))),
    }
}

/// `alerts apply`: the channel (found by name, or created from
/// `SLACK_BOT_TOKEN` and `--slack-channel`), the Service and its SLOs, the
/// four threshold policies and the burn-rate policies. Every object is tried;
/// the report says what each came to.
pub async fn alerts_apply(
    config: &SidecarConfig,
    scope: &Scope,
    parts: ApplyParts,
    slack_channel_name: Option<&str>,
    token_file: Option<&Path>,
    api_base: Option<&str>,
) -> Result<ApplyReport, CliError> {
    let tokens = command_tokens(token_file).await.map_err(CliError::Read)?;
    let api = MonitoringApi::new(api_base.unwrap_or(DEFAULT_API_BASE), &scope.project, tokens);
    let mut report = ApplyReport::default();
    let channel = match api.find_channel(CHANNEL_NAME).await {
        Ok(Some(name)) => {
            report
                .lines
                .push(format!("channel {CHANNEL_NAME:?} exists: {name}"));
            Some(name)
        }
        Ok(None) => match (
            std::env::var("SLACK_BOT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            slack_channel_name,
        ) {
            (Some(bot), Some(channel)) => {
                match api.create_channel(&slack_channel(channel, &bot)).await {
                    Ok(name) => {
                        report.lines.push(format!("created channel: {name}"));
                        Some(name)
                    }
                    Err(e) => {
                        report.failures += 1;
                        report.lines.push(format!("FAILED channel: {e}"));
                        None
                    }
                }
            }
            _ => {
                report.lines.push(format!(
                    "warning: no {CHANNEL_NAME:?} channel: create it in the console (Monitoring > Alerting > Edit notification channels > Slack, which installs the Google Cloud Monitoring Slack app), or set SLACK_BOT_TOKEN and --slack-channel; policies are applied without a channel"
                ));
                None
            }
        },
        Err(e) => {
            report.failures += 1;
            report.lines.push(format!("FAILED channel lookup: {e}"));
            None
        }
    };
    let channels: Vec<String> = channel.into_iter().collect();
    let period_hours = config.budget_period.bounds(crate::app::now_ms()).1;
    let service_id = slos::service_id(&scope.service);
    let service_ok = !parts.slos
        || match api
            .ensure_service(&service_id, &slos::service(&scope.service))
            .await
        {
            Ok(Change::Created(n)) => {
                report.lines.push(format!("created service: {n}"));
                true
            }
            Ok(_) => {
                report.lines.push(format!("service {service_id} exists"));
                true
            }
            Err(e) => {
                report.failures += 1;
                report
                    .lines
                    .push(format!("FAILED service {service_id}: {e}"));
                false
            }
        };
    let mut all_policies = if parts.thresholds {
        policies(scope, &channels)
    } else {
        Vec::new()
    };
    for name in SloName::ALL {
        if parts.slos && service_ok {
            let result = api
                .upsert_slo(
                    &service_id,
                    &slos::slo_id(name),
                    &slos::slo(name, scope, config.budget_period),
                )
                .await;
            report.record(&format!("SLO {}", slos::slo_id(name)), result);
        }
        if parts.burn_rate {
            for row in slos::rows(period_hours) {
                all_policies.push(slos::burn_policy(scope, name, row, &channels));
            }
        }
    }
    for policy in all_policies {
        let what = format!(
            "policy {:?}",
            policy["displayName"].as_str().unwrap_or_default()
        );
        let result = api.upsert_policy(&policy).await;
        report.record(&what, result);
    }
    Ok(report)
}

/// `dashboard render|deploy`: the text to print.
pub async fn dashboard(action: DashboardAction) -> Result<String, CliError> {
    match action {
        DashboardAction::Render {
            format,
            file,
            project,
            config,
            service,
        } => {
            let (_, scope) = scope(config.as_deref(), &project, service.as_deref())?;
            dashboard_render(&format, file.as_deref(), &scope)
        }
        DashboardAction::Deploy {
            project,
            dry_run,
            file,
            config,
            service,
            access_token_file,
            api_base,
        } => {
            let (_, scope) = scope(config.as_deref(), &project, service.as_deref())?;
            dashboard_deploy(
                &scope,
                file.as_deref(),
                dry_run,
                access_token_file.as_deref(),
                api_base.as_deref(),
            )
            .await
        }
    }
}

/// `alerts watch|render|apply`: prints what it did; exit code 0, or an
/// error when anything failed (`apply` tries every object first).
pub async fn alerts(
    action: AlertsAction,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, CliError> {
    match action {
        AlertsAction::Watch {
            fleet,
            slack_webhook_url,
            window,
            every,
            ticks,
        } => {
            alerts_watch(
                &fleet,
                &slack_webhook_url,
                window.as_deref(),
                &every,
                ticks,
                shutdown,
            )
            .await
        }
        AlertsAction::Render {
            format,
            project,
            config,
            service,
        } => {
            let (config, scope) = scope(config.as_deref(), &project, service.as_deref())?;
            println!("{}", alerts_render(&format, &config, &scope)?.trim_end());
            Ok(0)
        }
        AlertsAction::Apply {
            project,
            config,
            service,
            slack_channel,
            only,
            access_token_file,
            api_base,
        } => {
            let (config, scope) = scope(config.as_deref(), &project, service.as_deref())?;
            let report = alerts_apply(
                &config,
                &scope,
                ApplyParts::from_only(&only),
                slack_channel.as_deref(),
                access_token_file.as_deref(),
                api_base.as_deref(),
            )
            .await?;
            for line in &report.lines {
                println!("{line}");
            }
            if report.failures > 0 {
                return Err(CliError::Change(format!(
                    "{} of the objects above failed; the others were applied",
                    report.failures
                )));
            }
            Ok(0)
        }
    }
}

/// `alerts watch`: the fleet's alert rules, one process, until stopped.
async fn alerts_watch(
    fleet: &FleetArgs,
    webhook: &str,
    window: Option<&str>,
    every: &str,
    ticks: Option<u64>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, CliError> {
    let Some(url) = fleet.source() else {
        return Err(CliError::Usage(
            "alerts watch needs --prometheus URL (the query API that holds every instance's metrics) or --fleet-redis URL (the fleet store)".into(),
        ));
    };
    let webhook: http::Uri = webhook
        .parse()
        .map_err(|e| CliError::Usage(format!("--slack-webhook-url: {e}")))?;
    let every = match lumen_middleware::units::parse_duration(every) {
        Ok(d) if d >= std::time::Duration::from_secs(1) => d,
        Ok(_) => return Err(CliError::Usage("--every: at least 1s".into())),
        Err(e) => return Err(CliError::Usage(format!("--every: {e}"))),
    };
    if url.is_empty() {
        return Err(CliError::Usage("the fleet source: an empty URL".into()));
    }
    let (reader, window) = reader_and_window(fleet, window).await?;
    let plan = WatchPlan {
        window,
        every,
        ticks,
    };
    let summary = watch(reader, webhook, plan, shutdown).await;
    tracing::info!(?summary, "alerts watch stopped");
    if summary.failed > 0 || summary.dropped > 0 {
        return Err(CliError::Change(format!(
            "{} Slack message(s) failed and {} were dropped",
            summary.failed, summary.dropped
        )));
    }
    Ok(0)
}
