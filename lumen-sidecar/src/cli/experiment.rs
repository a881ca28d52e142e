//! `experiment start|status|stop`: the sidecar's experiments API from the
//! command line.

use super::sources::send_command;
use super::{CliError, ExperimentAction, ExperimentTarget};
use crate::app::experiments::{ExperimentReport, ExperimentsReport};
use crate::eval::Metric;

/// Runs `action`; the text to print, or why it failed.
pub async fn experiment_command(action: ExperimentAction) -> Result<String, CliError> {
    match action {
        ExperimentAction::Start(args) => {
            let primary = Metric::parse(&args.primary).ok_or_else(|| {
                CliError::Usage(format!(
                    "--primary {}: one of cache_hit_rate, error_rate, under_p95_target, under_p99_target",
                    args.primary
                ))
            })?;
            lumen_middleware::units::parse_duration(&args.duration)
                .map_err(|e| CliError::Usage(format!("--duration: {e}")))?;
            let body = serde_json::json!({
                "param": args.param,
                "a": args.a,
                "b": args.b,
                "share_b_percent": args.share,
                "duration": args.duration,
                "primary": primary,
                "alpha": args.alpha,
                "tau": args.tau,
            });
            let text = call(&args.target, "POST", "/v1/experiments", body.to_string()).await?;
            if args.target.json {
                return Ok(text);
            }
            let e: ExperimentReport = serde_json::from_str(&text)
                .map_err(|e| CliError::Read(format!("not an experiment: {e}")))?;
            Ok(format!(
                "experiment {} started: {} = {} (A) against {} (B), B gets {} % of requests, until {} at the latest\n",
                e.id,
                e.spec.param,
                e.spec.a,
                e.spec.b,
                e.spec.share_b_percent,
                crate::render::format::utc(e.ends_ms)
            ))
        }
        ExperimentAction::Status(target) => {
            let text = call(&target, "GET", "/v1/experiments", String::new()).await?;
            if target.json {
                return Ok(text);
            }
            let report: ExperimentsReport = serde_json::from_str(&text)
                .map_err(|e| CliError::Read(format!("not an experiments report: {e}")))?;
            let md = crate::render::experiments_markdown(&report);
            Ok(if md.is_empty() {
                "no experiment has run on this sidecar\n".into()
            } else {
                md
            })
        }
        ExperimentAction::Stop(target) => {
            let text = call(&target, "POST", "/v1/experiments/stop", String::new()).await?;
            if target.json {
                return Ok(text);
            }
            let e: ExperimentReport = serde_json::from_str(&text)
                .map_err(|e| CliError::Read(format!("not an experiment: {e}")))?;
            Ok(format!(
                "experiment {} stopped; {} stays {}\n",
                e.id,
                e.spec.param,
                e.kept_value.unwrap_or(e.spec.a)
            ))
        }
    }
}

async fn call(
    target: &ExperimentTarget,
    method: &str,
    path: &str,
    body: String,
) -> Result<String, CliError> {
    let base = target.url.trim_end_matches('/');
    let base = base.strip_suffix("/v1/ingest").unwrap_or(base);
    let url = format!("{base}{path}");
    send_command(
        &format!("the sidecar at {base}"),
        method,
        &url,
        body,
        target.token.as_deref(),
    )
    .await
}
