//! The commands of Phase 3: `gate watch`, `gate approve|veto|status`,
//! `budget apply`, from their arguments to the gate and the APIs.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::app::now_ms;
use crate::budget::{BudgetSpec, account_currency, apply};
use crate::check::fleet_reader;
use crate::cli::{BudgetAction, GateCommandArgs, GateWatchArgs, TuneApplyArgs};
use crate::config::{SidecarConfig, window_is_valid};
use crate::gate::{
    CloudRunService, GateExit, GateRules, GateSettings, GateSlack, GateStatus, OffClock,
    SlackTarget, gate, router, status_text,
};
use crate::google_rest::GoogleRest;
use crate::monitoring::commands::access_tokens;

fn check_args(a: &GateWatchArgs) -> Result<(), String> {
    // Closed by default: off loopback, only with a token (as `serve`).
    if !a.listen.ip().is_loopback()
        && a.api_token.as_deref().is_none_or(str::is_empty)
        && a.approvers.is_none()
    {
        return Err(format!(
            "--listen {}: not a loopback address and no --api-token (LUMEN_GATE_TOKEN) or --approvers: anyone who reaches it could approve a rollback; give tokens or listen on 127.0.0.1",
            a.listen
        ));
    }
    if !window_is_valid(a.window) {
        return Err(format!(
            "--window {}s: whole minutes from 1m to 24h",
            a.window.as_secs()
        ));
    }
    if a.interval < Duration::from_secs(1) || a.interval > Duration::from_secs(3600) {
        return Err("--interval: from 1s to 1h".into());
    }
    if a.approval_window < Duration::from_secs(10)
        || a.approval_window > Duration::from_secs(86_400)
    {
        return Err("--approval-window: from 10s to 24h".into());
    }
    for (flag, v) in [
        ("--roi-below", a.roi_below),
        ("--compliance-below", a.compliance_below),
    ] {
        if !v.is_finite() {
            return Err(format!("{flag}: a number"));
        }
    }
    if a.budget.is_some_and(|b| !(b > 0.0 && b.is_finite())) {
        return Err("--budget: USD, above 0".into());
    }
    if a.slack_channel.is_some() && a.slack_token.is_none() {
        return Err("--slack-channel needs --slack-token (or SLACK_BOT_TOKEN)".into());
    }
    Ok(())
}

/// `gate watch`: runs the gate until `--once` has its answer or `shutdown`
/// completes; prints the status at the end.
pub async fn gate_watch(
    a: GateWatchArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<GateExit, String> {
    check_args(&a)?;
    let metrics_service = a
        .metrics_service
        .clone()
        .unwrap_or_else(|| a.service.clone());
    let source = fleet_reader(
        &a.prometheus,
        Some(&metrics_service),
        a.config.as_deref(),
        a.access_token_file.as_deref(),
    )
    .await?;
    let tokens = access_tokens(a.access_token_file.as_deref()).await?;
    let run = CloudRunService::new(&a.run_api_base, tokens, &a.project, &a.region, &a.service);
    let slack = GateSlack::new(match (&a.slack_token, &a.slack_channel, &a.slack_webhook) {
        (Some(token), Some(channel), _) => SlackTarget::WebApi {
            base: a.slack_api_base.clone(),
            token: token.clone(),
            channel: channel.clone(),
        },
        (None, _, Some(url)) => SlackTarget::Webhook { url: url.clone() },
        _ => SlackTarget::Off,
    });
    let rules = GateRules {
        roi_below_percent: a.roi_below,
        compliance_below_percent: a.compliance_below,
        budget_usd: a.budget.unwrap_or(source.config.cost.monthly_budget_usd),
        hold_for: a.hold_for,
        min_requests: a.min_requests,
        min_lookups: a.min_lookups,
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", a.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let settings = GateSettings {
        service: a.service.clone(),
        window: a.window,
        interval: a.interval,
        approval_window: a.approval_window,
        require_approval: a.require_approval,
        dry_run: a.dry_run,
        rules,
        target_lookback: a.target_lookback,
        api_url: a
            .api_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
    };
    let (gate, shared, commands) = gate(
        settings,
        source,
        run,
        slack,
        OffClock::inline(),
        a.replay_from.unwrap_or_else(now_ms),
    );
    let approvers = match &a.approvers {
        Some(text) => crate::gate::parse_approvers(text)?,
        None => Vec::new(),
    };
    let api = router(shared.clone(), commands, a.api_token.clone(), approvers);
    // Bounded as the sidecar's listener is: a connection cap and a
    // header-read timeout.
    let limits = crate::listen::serve::ListenerLimits {
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        header_read_timeout: crate::config::DEFAULT_HEADER_READ_TIMEOUT,
    };
    let server = tokio::spawn(crate::listen::serve::serve(
        listener,
        api,
        limits,
        std::future::pending(),
    ));
    tracing::info!(api = %bound, service = %a.service, "rollback gate watching");
    let exit = tokio::select! {
        exit = gate.run(a.once) => exit,
        () = shutdown => GateExit::Holding,
    };
    server.abort();
    let status = crate::gate::watch::lock(&shared).snapshot();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("the status serializes")
        );
    } else {
        print!("{}", status_text(&status));
    }
    Ok(exit)
}

/// `gate approve`, `gate veto` (`action`), `gate status` (`action` "status"):
/// the watcher's answer.
pub async fn gate_command(action: &str, a: &GateCommandArgs) -> Result<String, String> {
    let base = a.url.trim_end_matches('/');
    let (method, url, body) = if action == "status" {
        ("GET", format!("{base}/v1/gate"), String::new())
    } else if a.window.is_none() {
        return Err(format!(
            "--window: name the window to {action} (its Slack message gives the command with it)"
        ));
    } else {
        let by =
            a.by.clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "someone".into());
        (
            "POST",
            format!("{base}/v1/gate/{action}"),
            serde_json::json!({ "window": a.window, "by": by }).to_string(),
        )
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(&url)
        .header("content-type", "application/json");
    if let Some(t) = &a.api_token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("{url}: {e}"))?;
    let client = crate::https::https_client();
    let answer = crate::https::exchange(&client, request, Some(Duration::from_secs(10)), 4 << 20)
        .await
        .map_err(|e| format!("the gate at {base} did not answer: {e}"))?;
    let text = answer.text(1 << 20);
    if !answer.status.is_success() {
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(format!("the gate refused {action}: {why}"));
    }
    if a.json {
        return Ok(text);
    }
    Ok(if action == "status" {
        let status: GateStatus =
            serde_json::from_str(&text).map_err(|e| format!("not a gate status: {e}"))?;
        status_text(&status)
    } else {
        format!(
            "{action}: accepted{}\n",
            a.window
                .as_deref()
                .map(|w| format!(" for window {w}"))
                .unwrap_or_default()
        )
    })
}

/// A refusal for want of a quota project, with what to do about it.
fn with_quota_hint(error: String) -> String {
    if error.contains("quota project") {
        format!(
            "{error}\n(with a person's credentials, give --quota-project PROJECT or GOOGLE_CLOUD_QUOTA_PROJECT; the caller needs serviceusage.services.use there)"
        )
    } else {
        error
    }
}

/// `budget apply`: what was (or would be) sent.
pub async fn budget_apply(action: BudgetAction) -> Result<String, String> {
    let BudgetAction::Apply {
        billing_account,
        project,
        service,
        amount,
        currency,
        display_name,
        pubsub_topic,
        email_channel,
        config,
        access_token_file,
        api_base,
        billing_api_base,
        quota_project,
        dry_run,
    } = action;
    let config = SidecarConfig::load(config.as_deref()).map_err(|e| e.to_string())?;
    let service =
        crate::monitoring::scope::Scope::from_config(&config, "", service.as_deref())?.service;
    let mut spec = BudgetSpec {
        display_name: display_name
            .unwrap_or_else(|| crate::budget::display_name(&service, &project)),
        billing_account,
        project,
        amount: amount.unwrap_or(config.cost.monthly_budget_usd),
        currency: currency
            .as_deref()
            .map_or_else(|| "USD".to_owned(), |c| c.trim().to_ascii_uppercase()),
        pubsub_topic,
        email_channels: email_channel,
    };
    // Bad arguments are refused before any call (the currency, when not
    // given, is checked again once the account has said it).
    spec.validate().map_err(|e| e.to_string())?;
    let tokens = access_tokens(access_token_file.as_deref()).await?;
    let quota_project = quota_project.or_else(|| config.export.quota_project.clone());
    let api = GoogleRest::new(&api_base, tokens.clone()).with_quota_project(quota_project.clone());
    if currency.is_none() {
        let billing = GoogleRest::new(&billing_api_base, tokens).with_quota_project(quota_project);
        spec.currency = account_currency(&billing, &spec.billing_account)
            .await
            .map_err(|e| with_quota_hint(format!("{e} (or give --currency)")))?;
        if amount.is_none() && spec.currency != "USD" {
            return Err(format!(
                "billing account {} bills in {}; cost.monthly_budget_usd is USD: give --amount in {}",
                spec.billing_account, spec.currency, spec.currency
            ));
        }
    }
    spec.validate().map_err(|e| e.to_string())?;
    let applied = apply(&api, &spec, dry_run)
        .await
        .map_err(|e| with_quota_hint(e.to_string()))?;
    let body =
        serde_json::to_string_pretty(&applied.request.body).expect("a JSON value serializes");
    Ok(if applied.done {
        format!(
            "{} {}\n{} budget {} \"{}\" ({} {} a month). Google's spend figures lag by hours: the rollback gate uses Lumen's own estimate.\n",
            applied.request.method,
            applied.request.path,
            if applied.request.method == "POST" {
                "created"
            } else {
                "updated"
            },
            applied.name,
            spec.display_name,
            spec.amount,
            spec.currency
        )
    } else {
        format!(
            "dry run: would send\n{} {}{}\n{body}\n",
            applied.request.method,
            api.base(),
            applied.request.path
        )
    })
}

/// `tune apply --min-instances`: the advice from the fleet store's instance
/// lifetimes, and with `--confirm` the service patched to it and verified.
pub async fn tune_apply(a: TuneApplyArgs) -> Result<String, String> {
    use crate::eval::min_instances::{Lifetime, advise_min_instances};
    if !a.min_instances {
        return Err("nothing to apply: give --min-instances".into());
    }
    if !(a.avoid > 0.0 && a.avoid <= 100.0) {
        return Err(format!(
            "--avoid {}: a percent above 0, at most 100",
            a.avoid
        ));
    }
    let reader = crate::check::fleet_store_reader(
        &a.fleet_redis,
        a.fleet_redis_ca_file.as_deref(),
        Some(&a.service),
        a.config.as_deref(),
    )?;
    let infos = reader.instances().await.map_err(|e| e.to_string())?;
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
    let tokens = access_tokens(a.access_token_file.as_deref()).await?;
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
    let op = crate::gate::set_min_instances(&run, &OffClock::inline(), advice.recommended)
        .await
        .map_err(|e| e.to_string())?;
    out.push_str(&format!(
        "set scaling.minInstanceCount = {} on {} (operation {op}); verified. Min instances are billed while idle.\n",
        advice.recommended, run.name
    ));
    Ok(out)
}
