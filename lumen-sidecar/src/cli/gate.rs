//! `gate watch`, `gate rollout` and `gate approve|veto|status`,
//! from their arguments to the gate and its API.

use std::time::Duration;

use super::sources::{fleet_reader, send_command};
use super::{
    CliError, GateCommandArgs, GateRolloutArgs, GateStartArgs, GateWatchArgs, RolloutFlags,
};
use crate::app::now_ms;
use crate::config::window_is_valid;
use crate::gate::slack_interactions::{SlackApprovers, SlackDecisions};
use crate::gate::{
    CloudRunService, GateExit, GateRules, GateSettings, GateSlack, GateStatus, RolloutPlan,
    RolloutRequest, SlackTarget, gate, parse_approvers, router, status_text,
};
use crate::google::access_tokens::command_tokens;
use crate::http_client::OffClock;

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
    let slack_approvers = SlackApprovers::parse(
        a.slack_approvers.as_deref(),
        a.slack_approver_group.as_deref(),
    )?;
    match (&a.slack_signing_secret, slack_approvers.is_empty()) {
        (Some(s), _) if s.trim().is_empty() => {
            return Err("--slack-signing-secret: empty".into());
        }
        (Some(_), true) => {
            return Err("--slack-signing-secret: name who may decide with the buttons (--slack-approvers U…,U… or --slack-approver-group S…)".into());
        }
        (None, false) => {
            return Err("--slack-approvers and --slack-approver-group need --slack-signing-secret (or SLACK_SIGNING_SECRET)".into());
        }
        _ => {}
    }
    Ok(())
}

/// The rollout `r` asks for, or why not.
fn rollout_plan(r: &GateRolloutArgs) -> Result<RolloutPlan, String> {
    if r.gate.dry_run {
        return Err(
            "--dry-run: a rollout moves traffic to be able to compare; watch a revision without changing traffic with `gate watch --dry-run`".into(),
        );
    }
    rollout_request(&r.rollout).plan()
}

/// The request the rollout flags make.
fn rollout_request(r: &RolloutFlags) -> RolloutRequest {
    RolloutRequest {
        to: r.to.clone(),
        steps: r.steps.clone(),
        step_for_s: r.step_for.as_secs(),
        max_hold_s: r.max_hold.as_secs(),
        alpha: r.alpha,
        share_tolerance: r.share_tolerance,
        shift_tolerance: r.shift_tolerance,
        min_requests: r.rollout_min_requests,
        by: None,
    }
}

/// `gate rollout`: runs the rollout to its end (or until `shutdown`);
/// prints the status at the end.
pub async fn gate_rollout(
    r: GateRolloutArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<GateExit, CliError> {
    let plan = rollout_plan(&r).map_err(CliError::Usage)?;
    run_gate(r.gate, Some(plan), shutdown).await
}

/// `gate watch`: runs the gate until `--once` has its answer or `shutdown`
/// completes; prints the status at the end.
pub async fn gate_watch(
    a: GateWatchArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<GateExit, CliError> {
    run_gate(a, None, shutdown).await
}

async fn run_gate(
    a: GateWatchArgs,
    rollout: Option<RolloutPlan>,
    shutdown: impl Future<Output = ()>,
) -> Result<GateExit, CliError> {
    check_args(&a).map_err(CliError::Usage)?;
    let once = a.once || rollout.is_some();
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
    let tokens = command_tokens(a.access_token_file.as_deref())
        .await
        .map_err(CliError::Read)?;
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
        .map_err(|e| CliError::Serve(format!("--listen {}: {e}", a.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Serve(e.to_string()))?;
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
        slack_buttons: a.slack_signing_secret.is_some(),
        rollout,
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
        Some(text) => parse_approvers(text).map_err(CliError::Usage)?,
        None => Vec::new(),
    };
    let slack_decisions = match &a.slack_signing_secret {
        Some(secret) => Some(std::sync::Arc::new(SlackDecisions::new(
            secret.trim().as_bytes(),
            SlackApprovers::parse(
                a.slack_approvers.as_deref(),
                a.slack_approver_group.as_deref(),
            )
            .map_err(CliError::Usage)?,
            a.slack_token
                .clone()
                .map(|token| (a.slack_api_base.clone(), token)),
            OffClock::inline(),
        ))),
        None => None,
    };
    let api = router(
        shared.clone(),
        commands,
        a.api_token.clone(),
        approvers,
        slack_decisions,
    );
    // Bounded as the sidecar's listener is: a connection cap and a
    // header-read timeout.
    let limits = crate::listen::connections::ListenerLimits {
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        header_read_timeout: crate::config::DEFAULT_HEADER_READ_TIMEOUT,
    };
    let server = tokio::spawn(crate::listen::connections::serve(
        listener,
        api,
        limits,
        std::future::pending(),
    ));
    tracing::info!(api = %bound, service = %a.service, "rollback gate watching");
    let exit = tokio::select! {
        exit = gate.run(once) => exit,
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

/// `gate start`: asks the gate service at `--url` to carry out a rollout.
pub async fn gate_start(a: &GateStartArgs) -> Result<String, CliError> {
    let request = rollout_request(&a.rollout);
    request.plan().map_err(CliError::Usage)?;
    let base = a.api.url.trim_end_matches('/');
    let by = super::sources::asker(a.api.by.clone());
    let body = serde_json::to_string(&RolloutRequest {
        by: Some(by),
        ..request
    })
    .expect("a request serializes");
    let text = send_command(
        &format!("the gate at {base}"),
        "POST",
        &format!("{base}/v1/gate/rollout"),
        body,
        a.api.api_token.as_deref(),
    )
    .await?;
    if a.api.json {
        return Ok(text);
    }
    let status: GateStatus = serde_json::from_str(&text)
        .map_err(|e| CliError::Read(format!("not a gate status: {e}")))?;
    Ok(status_text(&status))
}

/// `gate approve`, `gate veto` (`action`), `gate status` (`action` "status"):
/// the watcher's answer.
pub async fn gate_command(action: &str, a: &GateCommandArgs) -> Result<String, CliError> {
    let base = a.api.url.trim_end_matches('/');
    let (method, url, body) = if action == "status" {
        ("GET", format!("{base}/v1/gate"), String::new())
    } else if a.window.is_none() {
        return Err(CliError::Usage(format!(
            "--window: name the window to {action} (its Slack message gives the command with it)"
        )));
    } else {
        let by = super::sources::asker(a.api.by.clone());
        (
            "POST",
            format!("{base}/v1/gate/{action}"),
            serde_json::json!({ "window": a.window, "by": by }).to_string(),
        )
    };
    let text = send_command(
        &format!("the gate at {base}"),
        method,
        &url,
        body,
        a.api.api_token.as_deref(),
    )
    .await?;
    if a.api.json {
        return Ok(text);
    }
    Ok(if action == "status" {
        let status: GateStatus = serde_json::from_str(&text)
            .map_err(|e| CliError::Read(format!("not a gate status: {e}")))?;
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
