//! `slo export` and `slo import`: the service's SLOs as OpenSLO v1
//! documents, and OpenSLO documents as Lumen's settings.

use std::path::Path;

use super::sources::get;
use super::{CliError, monitoring::scope};
use crate::app::WhatIfAnswer;
use crate::eval::SloName;
use crate::monitoring::openslo;
use crate::render::format::utc;

/// Largest OpenSLO file read.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// `slo export --format openslo`: the configuration's SLOs (its targets,
/// its error-budget period, the series of its data path) as a YAML stream.
pub fn export(
    format: &str,
    config: Option<&Path>,
    service: Option<&str>,
) -> Result<String, CliError> {
    if format != "openslo" {
        return Err(CliError::Usage(format!("--format {format}: openslo")));
    }
    let (config, scope) = scope(config, "", service)?;
    Ok(openslo::export(&scope, config.budget_period))
}

/// `slo import FILE`: the OpenSLO documents of `file` as `lumen.toml`
/// settings, or the document and field Lumen cannot evaluate.
pub fn import(file: &Path) -> Result<String, CliError> {
    let size = std::fs::metadata(file)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(CliError::Usage(format!(
            "{}: {size} bytes, more than {MAX_FILE_BYTES}",
            file.display()
        )));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let imported =
        openslo::import(&text).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    Ok(imported.to_toml())
}

/// The `/v1/what-if` query of `--target SLO=VALUE` arguments and a period.
pub fn what_if_query(targets: &[String], period: Option<&str>) -> Result<String, CliError> {
    let mut query = Vec::new();
    for target in targets {
        let (slo, value) = target.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "--target {target}: SLO=VALUE, such as availability=99.9"
            ))
        })?;
        let value = value.trim();
        let (key, value) = match slo.trim() {
            "availability" | "error_rate" | "error_classes" => (slo.trim(), value.to_owned()),
            "latency_p95" | "latency_p99" => {
                let ms = lumen_middleware::units::parse_duration(value)
                    .map_err(|e| CliError::Usage(format!("--target {target}: {e}")))?
                    .as_secs_f64()
                    * 1000.0;
                (
                    if slo.trim() == "latency_p95" {
                        "latency_p95_ms"
                    } else {
                        "latency_p99_ms"
                    },
                    ms.to_string(),
                )
            }
            other => {
                return Err(CliError::Usage(format!(
                    "--target {other}: one of availability, error_rate, latency_p95, latency_p99, error_classes"
                )));
            }
        };
        query.push(format!(
            "{key}={}",
            crate::http_client::percent_encode(&value)
        ));
    }
    if let Some(p) = period {
        query.push(format!("period={}", crate::http_client::percent_encode(p)));
    }
    Ok(format!("/v1/what-if?{}", query.join("&")))
}

/// `slo what-if`: the sidecar at `url` replays its history under `targets`.
pub async fn what_if(
    targets: &[String],
    period: Option<&str>,
    url: &str,
    json: bool,
) -> Result<String, CliError> {
    let path = what_if_query(targets, period)?;
    let body = get(url, &path)
        .await
        .map_err(|e| CliError::Read(e.to_string()))?;
    if json {
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    let answer: WhatIfAnswer = serde_json::from_slice(&body)
        .map_err(|e| CliError::Read(format!("not a what-if answer: {e}")))?;
    Ok(what_if_text(&answer))
}

/// A time given as RFC 3339 or Unix ms.
fn instant(flag: &str, text: &str) -> Result<u64, CliError> {
    let text = text.trim();
    text.parse::<u64>()
        .ok()
        .or_else(|| crate::google::deployments::parse_rfc3339_ms(text))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{flag} {text}: RFC 3339 (2026-12-06T02:00:00Z) or Unix ms"
            ))
        })
}

/// `slo exclude`: asks the sidecar to keep a window off the budgets.
pub async fn exclude(
    from: &str,
    to: &str,
    reason: &str,
    by: Option<String>,
    url: &str,
    token: Option<&str>,
) -> Result<String, CliError> {
    let (from_ms, to_ms) = (instant("--from", from)?, instant("--to", to)?);
    let by = super::sources::asker(by);
    // Checked here as the sidecar checks it: a precise error, nothing sent.
    crate::store::Exclusion::new(from_ms, to_ms, reason, &by, 0).map_err(CliError::Usage)?;
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/v1/ingest").unwrap_or(base);
    let body =
        serde_json::json!({ "from_ms": from_ms, "to_ms": to_ms, "reason": reason, "by": by });
    let text = super::sources::send_command(
        &format!("the sidecar at {base}"),
        "POST",
        &format!("{base}/v1/exclusions"),
        body.to_string(),
        token,
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Read(format!("not an exclusion answer: {e}")))?;
    Ok(format!(
        "Kept off the error budgets: {} to {} ({}); {} requests held so far left out; {}.\n",
        utc(from_ms),
        utc(to_ms),
        reason.trim(),
        answer["left_out"]["total"].as_u64().unwrap_or(0),
        answer["fleet"].as_str().unwrap_or("the fleet not asked")
    ))
}

/// `slo exclusions`: the windows kept off the budgets, as text.
pub async fn exclusions(url: &str) -> Result<String, CliError> {
    let body = get(url, "/v1/exclusions")
        .await
        .map_err(|e| CliError::Read(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| CliError::Read(format!("not an exclusions answer: {e}")))?;
    let mut out = String::from("Kept off the error budgets:\n");
    for w in v["recurring"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  every {} (UTC, from the config)\n",
            w.as_str().unwrap_or("?")
        ));
    }
    for e in v["one_off"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} to {}: {} (marked by {})\n",
            utc(e["from_ms"].as_u64().unwrap_or(0)),
            utc(e["to_ms"].as_u64().unwrap_or(0)),
            e["reason"].as_str().unwrap_or(""),
            e["by"].as_str().unwrap_or("")
        ));
    }
    if v["recurring"].as_array().is_none_or(Vec::is_empty)
        && v["one_off"].as_array().is_none_or(Vec::is_empty)
    {
        out.push_str("  nothing\n");
    }
    Ok(out)
}

/// The answer as text: per SLO its target, good share, budget left and
/// the alerts that would have fired.
pub fn what_if_text(a: &WhatIfAnswer) -> String {
    let t = &a.targets;
    let mut out = format!(
        "What if ({}; budgets over {}{}; alerts replayed from {}):\n",
        a.scope,
        a.period,
        a.recounted_from_ms
            .map(|from| format!(
                ", counted again from the histograms held since {}",
                utc(from)
            ))
            .unwrap_or_default(),
        utc(a.what_if.replayed_from_ms)
    );
    for slo in &a.what_if.budget.slos {
        let target = match slo.name {
            SloName::Availability => format!("availability ≥ {} %", t.availability_percent),
            SloName::LatencyP95 => format!("P95 < {} ms", t.latency_p95_ms),
            SloName::LatencyP99 => format!("P99 < {} ms", t.latency_p99_ms),
            SloName::ErrorRate => format!("error rate < {} %", t.error_rate_percent),
        };
        let good = if slo.events > 0 {
            format!(
                "{:.3} % good",
                (slo.events - slo.bad) as f64 / slo.events as f64 * 100.0
            )
        } else {
            "no requests".to_owned()
        };
        let left = slo
            .remaining_percent
            .map(|r| format!("budget left {r:.1} %"))
            .unwrap_or_else(|| "no budget yet".to_owned());
        out.push_str(&format!(
            "  {target}: {good} of {} requests, {left}\n",
            slo.events
        ));
        let fired: Vec<_> = a
            .what_if
            .alerts
            .iter()
            .filter(|x| x.slo == slo.name)
            .collect();
        if fired.is_empty() {
            out.push_str("    no page or ticket would have fired\n");
        }
        for x in fired {
            out.push_str(&format!(
                "    {} ({} and {}): {} → {}\n",
                x.severity,
                x.long_window,
                x.short_window,
                utc(x.from_ms),
                x.to_ms.map_or_else(|| "still firing".to_owned(), utc)
            ));
        }
    }
    out
}
