//! `tune apply --min-instances`: the feedback loop's advice applied to Cloud Run.

use super::sources::fleet_store_reader;
use super::{CliError, TuneApplyArgs};
use crate::app::now_ms;
use crate::google::access_tokens::command_tokens;
use crate::google::cloud_run::{CloudRunService, set_min_instances};
use crate::http_client::OffClock;

/// `tune apply --min-instances`: the advice from the fleet store's instance
/// lifetimes, and with `--confirm` the service patched to it and verified.
pub async fn tune_apply(a: TuneApplyArgs) -> Result<String, CliError> {
    use crate::eval::min_instances::{Lifetime, advise_min_instances};
    if !a.min_instances {
        return Err(CliError::Usage(
            "nothing to apply: give --min-instances".into(),
        ));
    }
    if !(a.avoid > 0.0 && a.avoid <= 100.0) {
        return Err(CliError::Usage(format!(
            "--avoid {}: a percent above 0, at most 100",
            a.avoid
        )));
    }
    let reader = fleet_store_reader(
        &a.fleet_redis,
        a.fleet_redis_ca_file.as_deref(),
        Some(&a.service),
        a.config.as_deref(),
    )?;
    let infos = reader
        .instances()
        .await
        .map_err(|e| CliError::Read(e.to_string()))?;
    let now = now_ms();
    let lives: Vec<Lifetime> = infos
        .values()
        .filter_map(|i| {
            let start_ms = i.started_ms?;
            // Seen in the last minute: still running.
            let end_ms = if i.last_seen_ms + 60_000 >= now {
                now
            } else {
                i.last_seen_ms
            };
            Some(Lifetime {
                start_ms,
                end_ms,
                cold_p95_ms: i.cold_p95_ms,
                warm_p95_ms: i.warm_p95_ms,
            })
        })
        .collect();
    let earliest = lives.iter().map(|l| l.start_ms).min().unwrap_or(now);
    let from = earliest.max(now.saturating_sub(a.window.as_millis() as u64));
    let advice = advise_min_instances(
        &lives,
        from,
        now,
        a.floor,
        a.avoid / 100.0,
        reader.config.cost.instance_usd_per_s(),
    );
    let mut out = if a.json {
        serde_json::to_string_pretty(&advice).expect("the advice serializes") + "\n"
    } else {
        let mut o = format!(
            "Min instances for {}: {} ({})\n  evidence: {} instances, {} cold starts, peak {} running, over {:.1} h\n",
            a.service,
            advice.recommended,
            advice.why,
            lives.len(),
            advice.cold_starts,
            advice.peak_instances,
            (advice.to_ms - advice.from_ms) as f64 / 3_600_000.0
        );
        for opt in &advice.options {
            o.push_str(&format!(
                "  {:>3} warm: avoids {:>5} cold starts ({:>5.1} %), +${:.2} a month\n",
                opt.min_instances,
                opt.cold_starts_avoided,
                opt.avoided_share * 100.0,
                opt.extra_monthly_usd
            ));
        }
        o
    };
    let tokens = command_tokens(a.access_token_file.as_deref())
        .await
        .map_err(CliError::Read)?;
    let run = CloudRunService::new(&a.run_api_base, tokens, &a.project, &a.region, &a.service);
    if !a.confirm {
        out.push_str(&format!(
            "dry run: would PATCH {}/v2/{} with scaling.minInstanceCount = {} (add --confirm)\n",
            a.run_api_base.trim_end_matches('/'),
            run.name,
            advice.recommended
        ));
        return Ok(out);
    }
    let op = set_min_instances(&run, &OffClock::inline(), advice.recommended)
        .await
        .map_err(|e| CliError::Change(e.to_string()))?;
    out.push_str(&format!(
        "set scaling.minInstanceCount = {} on {} (operation {op}); verified. Min instances are billed while idle.\n",
        advice.recommended, run.name
    ));
    Ok(out)
}
