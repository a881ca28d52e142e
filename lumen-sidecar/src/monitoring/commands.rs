//! The `dashboard` and `alerts` subcommands, as functions that return what
//! to print (so `main` only maps errors to exit codes).

use std::path::Path;

use serde_json::json;

use super::api::{Change, DEFAULT_API_BASE, MonitoringApi, console_url};
use super::dashboard::{BUILTIN_DASHBOARD, DashboardDef, cloud_monitoring, grafana};
use super::policies::{CHANNEL_NAME, burn_rate_rules, policies, prometheus_rules, slack_channel};
use super::slos;
use crate::config::DEFAULT_METADATA_HOST;
use crate::eval::SloName;
use crate::gcp::{MetadataClient, TokenSource};

/// Reads the dashboard definition: `file`, or the built-in one.
pub fn load_dashboard(file: Option<&Path>) -> Result<DashboardDef, String> {
    let text = match file {
        Some(f) => {
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?
        }
        None => BUILTIN_DASHBOARD.to_owned(),
    };
    DashboardDef::parse(&text).map_err(|e| format!("dashboard definition: {e}"))
}

/// An access token: `--access-token-file`, else `GOOGLE_OAUTH_ACCESS_TOKEN`,
/// else the metadata server's (on Google Cloud).
pub async fn access_token(file: Option<&Path>) -> Result<String, String> {
    if let Some(f) = file {
        let t =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        return Ok(t.trim().to_owned());
    }
    if let Ok(t) = std::env::var("GOOGLE_OAUTH_ACCESS_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let host =
        std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| DEFAULT_METADATA_HOST.to_owned());
    TokenSource::new(MetadataClient::new(&host))
        .token()
        .await
        .map_err(|e| format!("no access token (--access-token-file, GOOGLE_OAUTH_ACCESS_TOKEN or the metadata server): {e}"))
}

/// `dashboard render`.
pub fn dashboard_render(
    format: &str,
    file: Option<&Path>,
    project: &str,
) -> Result<String, String> {
    let def = load_dashboard(file)?;
    let value = match format {
        "cloud-monitoring" => cloud_monitoring(&def, project),
        "grafana" => grafana(&def),
        other => return Err(format!("--format {other}: cloud-monitoring or grafana")),
    };
    Ok(serde_json::to_string_pretty(&value).expect("JSON serializes"))
}

/// `dashboard deploy`.
pub async fn dashboard_deploy(
    project: &str,
    file: Option<&Path>,
    dry_run: bool,
    token_file: Option<&Path>,
    api_base: Option<&str>,
) -> Result<String, String> {
    let def = load_dashboard(file)?;
    let token = access_token(token_file).await?;
    let api = MonitoringApi::new(api_base.unwrap_or(DEFAULT_API_BASE), project, &token);
    let change = api
        .upsert_dashboard(&cloud_monitoring(&def, project), dry_run)
        .await
        .map_err(|e| e.to_string())?;
    Ok(match change {
        Change::Created(name) => format!("created {name}\n{}", console_url(&name, project)),
        Change::Updated(name) => format!("updated {name}\n{}", console_url(&name, project)),
        Change::WouldApply(what) => format!("dry run: would {what}"),
    })
}

/// `alerts render`.
pub fn alerts_render(format: &str) -> Result<String, String> {
    let config = crate::config::SidecarConfig::load(None).map_err(|e| e.to_string())?;
    let period_hours = config.budget_period.bounds(crate::app::now_ms()).1;
    match format {
        "prometheus" => Ok(prometheus_rules()
            + &burn_rate_rules(&config.slo, period_hours, config.budget_min_events)),
        "cloud-monitoring" => {
            let service = config
                .service
                .clone()
                .unwrap_or_else(|| "SERVICE".to_owned());
            let channels = ["projects/PROJECT_ID/notificationChannels/CHANNEL_ID".to_owned()];
            Ok(serde_json::to_string_pretty(&json!({
                "notificationChannel": slack_channel("#lumen-alerts", "SLACK_BOT_TOKEN"),
                "alertPolicies": policies(&channels),
                "service": { "id": slos::service_id(&service), "body": slos::service(&service) },
                "serviceLevelObjectives": SloName::ALL.iter().map(|n| json!({ "id": slos::slo_id(*n), "body": slos::slo(*n, &config.slo, config.budget_period) })).collect::<Vec<_>>(),
                "burnRatePolicies": SloName::ALL.iter().flat_map(|n| slos::rows(period_hours).into_iter().map(move |r| (*n, r))).map(|(n, r)| slos::burn_policy("PROJECT_ID", &service, n, r, &channels)).collect::<Vec<_>>(),
            }))
            .expect("JSON serializes"))
        }
        other => Err(format!("--format {other}: cloud-monitoring or prometheus")),
    }
}

/// `alerts apply`: the channel (found by name, or created from
/// `SLACK_BOT_TOKEN` and `--slack-channel`), then the four policies.
pub async fn alerts_apply(
    project: &str,
    slack_channel_name: Option<&str>,
    token_file: Option<&Path>,
    api_base: Option<&str>,
) -> Result<String, String> {
    let token = access_token(token_file).await?;
    let api = MonitoringApi::new(api_base.unwrap_or(DEFAULT_API_BASE), project, &token);
    let mut out = Vec::new();
    let channel = match api
        .find_channel(CHANNEL_NAME)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(name) => {
            out.push(format!("channel {CHANNEL_NAME:?} exists: {name}"));
            Some(name)
        }
        None => match (
            std::env::var("SLACK_BOT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            slack_channel_name,
        ) {
            (Some(bot), Some(channel)) => {
                let name = api
                    .create_channel(&slack_channel(channel, &bot))
                    .await
                    .map_err(|e| e.to_string())?;
                out.push(format!("created channel {name}"));
                Some(name)
            }
            _ => {
                out.push(format!(
                    "warning: no {CHANNEL_NAME:?} channel: create it in the console (Monitoring > Alerting > Edit notification channels > Slack, which installs the Google Cloud Monitoring Slack app), or set SLACK_BOT_TOKEN and --slack-channel; policies are applied without a channel"
                ));
                None
            }
        },
    };
    let channels: Vec<String> = channel.into_iter().collect();
    let config = crate::config::SidecarConfig::load(None).map_err(|e| e.to_string())?;
    let service = config.service.clone().ok_or(
        "set LUMEN_SERVICE (or service in the config) to name the Service the SLOs belong to",
    )?;
    let period_hours = config.budget_period.bounds(crate::app::now_ms()).1;
    let service_id = slos::service_id(&service);
    match api
        .ensure_service(&service_id, &slos::service(&service))
        .await
        .map_err(|e| e.to_string())?
    {
        Change::Created(n) => out.push(format!("created {n}")),
        _ => out.push(format!("service {service_id} exists")),
    }
    let mut all_policies = policies(&channels);
    for name in SloName::ALL {
        match api
            .upsert_slo(
                &service_id,
                &slos::slo_id(name),
                &slos::slo(name, &config.slo, config.budget_period),
            )
            .await
            .map_err(|e| e.to_string())?
        {
            Change::Created(n) => out.push(format!("created {n}")),
            Change::Updated(n) => out.push(format!("updated {n}")),
            Change::WouldApply(w) => out.push(w),
        }
        for row in slos::rows(period_hours) {
            all_policies.push(slos::burn_policy(
                &api.project,
                &service,
                name,
                row,
                &channels,
            ));
        }
    }
    for policy in all_policies {
        match api
            .upsert_policy(&policy)
            .await
            .map_err(|e| e.to_string())?
        {
            Change::Created(n) => out.push(format!("created {n}")),
            Change::Updated(n) => out.push(format!("updated {n}")),
            Change::WouldApply(w) => out.push(w),
        }
    }
    Ok(out.join("\n"))
}
