//! `lumen-sidecar`: parse, build, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use lumen_sidecar::Sidecar;
use lumen_sidecar::app::now_ms;
use lumen_sidecar::check::{CheckError, fetch_budget, fetch_health, fetch_report, window_arg};
use lumen_sidecar::cli::FleetArgs;
use lumen_sidecar::cli::{
    AlertsAction, Cli, Command, ConfigAction, DashboardAction, GateAction, TuneAction,
};
use lumen_sidecar::config::SidecarConfig;
use lumen_sidecar::eval::{Band, Status};
use lumen_sidecar::eval::{BudgetReport, HealthReport, SloReport};
use lumen_sidecar::fleet::watch::{WatchPlan, watch};
use lumen_sidecar::monitoring::commands;
use lumen_sidecar::render::{budget_text, check_text, health_text};
use lumen_sidecar::rollout_commands::{budget_apply, gate_command, gate_watch, tune_apply};

/// Exit code for errors: bad config, unreachable sidecar, no data.
const EXIT_ERROR: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUMEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(run(cli)))
}

async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Serve { config, export } => {
            let config = match SidecarConfig::load_with(config.as_deref(), |k| {
                if k == "LUMEN_EXPORT" && export.is_some() {
                    return export.clone();
                }
                std::env::var(k).ok()
            }) {
                Ok(c) => c.durable_by_default(|k| std::env::var(k).ok()),
                Err(e) => return fail(&e),
            };
            if config.state_dir.is_none() {
                tracing::warn!(
                    "no state directory (store.state_dir = none): acknowledged batches are lost if the sidecar restarts"
                );
            }
            let sidecar = match Sidecar::bind(config).await {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            match sidecar.run(shutdown_signal()).await {
                Ok(()) => 0,
                Err(e) => fail(&e),
            }
        }
        Command::Gate { action } => gate(action).await,
        Command::Budget { action } => print_or_fail(budget_apply(action).await),
        Command::Experiment { action } => {
            print_or_fail(lumen_sidecar::experiment_commands::experiment_command(action).await)
        }
        Command::Tune {
            action: TuneAction::Apply(args),
        } => print_or_fail(tune_apply(*args).await),
        Command::Check {
            url,
            window,
            json,
            verbose,
            fleet,
        } => {
            if let Some(misuse) = fleet.misuse() {
                return fail(&misuse);
            }
            let read = if fleet.is_fleet() {
                fleet_check(&fleet, window.as_deref(), verbose).await
            } else {
                sidecar_check(&url, window.as_deref(), verbose).await
            };
            match read {
                Ok((report, body, budget)) => {
                    if json {
                        println!("{}", String::from_utf8_lossy(&body));
                    } else {
                        print!("{}", check_text(&report, verbose));
                        if let Some(budget) = budget {
                            print!("{}", budget_text(&budget));
                        }
                    }
                    if report.status == Status::NoData {
                        eprintln!(
                            "error: no data: {} holds no request of {} in the window",
                            fleet.source().unwrap_or(url),
                            report.service
                        );
                    }
                    report.status.code()
                }
                Err(e) => fail(&e),
            }
        }
        Command::Health { fleet, .. } if fleet.misuse().is_some() => {
            fail(&fleet.misuse().unwrap_or_default())
        }
        Command::Health {
            url,
            window,
            json,
            verbose,
            fleet,
        } => match if fleet.is_fleet() {
            fleet_health(&fleet, window.as_deref()).await
        } else {
            fetch_health(&url, window.as_deref())
                .await
                .map(|(report, body)| (report, body.to_vec()))
                .map_err(|e| e.to_string())
        } {
            Ok((report, body)) => {
                if json {
                    println!("{}", String::from_utf8_lossy(&body));
                } else {
                    print!("{}", health_text(&report, verbose));
                }
                if report.band == Band::NoData {
                    let missing: Vec<String> = report
                        .components
                        .iter()
                        .filter(|c| c.required && c.score.is_none())
                        .map(|c| {
                            format!("{} ({})", c.name, c.missing.as_deref().unwrap_or("missing"))
                        })
                        .collect();
                    eprintln!(
                        "error: no data: no health score without {}",
                        missing.join(" and ")
                    );
                }
                report.band.exit_code()
            }
            Err(e) => fail(&e),
        },
        Command::Dashboard { action } => match action {
            DashboardAction::Render {
                format,
                file,
                project,
                config,
                service,
            } => print_or_fail(
                commands::scope(config.as_deref(), &project, service.as_deref()).and_then(
                    |(_, scope)| commands::dashboard_render(&format, file.as_deref(), &scope),
                ),
            ),
            DashboardAction::Deploy {
                project,
                dry_run,
                file,
                config,
                service,
                access_token_file,
                api_base,
            } => match commands::scope(config.as_deref(), &project, service.as_deref()) {
                Ok((_, scope)) => print_or_fail(
                    commands::dashboard_deploy(
                        &scope,
                        file.as_deref(),
                        dry_run,
                        access_token_file.as_deref(),
                        api_base.as_deref(),
                    )
                    .await,
                ),
                Err(e) => fail(&e),
            },
        },
        Command::Alerts { action } => match action {
            AlertsAction::Watch {
                fleet,
                slack_webhook_url,
                window,
                every,
                ticks,
            } => alerts_watch(&fleet, &slack_webhook_url, window.as_deref(), &every, ticks).await,
            AlertsAction::Render {
                format,
                project,
                config,
                service,
            } => print_or_fail(
                commands::scope(config.as_deref(), &project, service.as_deref())
                    .and_then(|(config, scope)| commands::alerts_render(&format, &config, &scope)),
            ),
            AlertsAction::Apply {
                project,
                config,
                service,
                slack_channel,
                only,
                access_token_file,
                api_base,
            } => {
                let (config, scope) =
                    match commands::scope(config.as_deref(), &project, service.as_deref()) {
                        Ok(s) => s,
                        Err(e) => return fail(&e),
                    };
                let parts = commands::ApplyParts::from_only(&only);
                match commands::alerts_apply(
                    &config,
                    &scope,
                    parts,
                    slack_channel.as_deref(),
                    access_token_file.as_deref(),
                    api_base.as_deref(),
                )
                .await
                {
                    Ok(report) => {
                        for line in &report.lines {
                            println!("{line}");
                        }
                        if report.failures > 0 {
                            fail(&format!(
                                "{} of the objects above failed; the others were applied",
                                report.failures
                            ))
                        } else {
                            0
                        }
                    }
                    Err(e) => fail(&e),
                }
            }
        },
        Command::Config { action } => match action {
            ConfigAction::Check { config } => match SidecarConfig::load(config.as_deref()) {
                Ok(_) => {
                    println!("config is valid");
                    0
                }
                Err(e) => fail(&e),
            },
            ConfigAction::Show { config } => match SidecarConfig::load(config.as_deref()) {
                Ok(c) => {
                    print!("{}", c.to_toml());
                    0
                }
                Err(e) => fail(&e),
            },
        },
    }
}

/// A check through one sidecar: its report, the JSON as it sent it, and
/// its budgets when `verbose`.
async fn sidecar_check(
    url: &str,
    window: Option<&str>,
    verbose: bool,
) -> Result<(SloReport, Vec<u8>, Option<BudgetReport>), String> {
    let (report, body) = fetch_report(url, window).await.map_err(|e| match e {
        e @ (CheckError::Unreachable { .. } | CheckError::BadAnswer { .. }) => e.to_string(),
    })?;
    let budget = if verbose {
        fetch_budget(url).await.ok()
    } else {
        None
    };
    Ok((report, body.to_vec(), budget))
}

/// The fleet's source from the command's arguments, and its window.
async fn reader_and_window(
    fleet: &FleetArgs,
    window: Option<&str>,
) -> Result<(lumen_sidecar::fleet::FleetSource, std::time::Duration), String> {
    let reader = fleet.open().await?;
    let window = window_arg(window, reader.config().window)?;
    Ok((reader, window))
}

/// A check of the whole fleet through a Prometheus query API or the fleet store.
async fn fleet_check(
    fleet: &FleetArgs,
    window: Option<&str>,
    verbose: bool,
) -> Result<(SloReport, Vec<u8>, Option<BudgetReport>), String> {
    let (reader, window) = reader_and_window(fleet, window).await?;
    let at = now_ms();
    let report = reader
        .slo_report(window, at)
        .await
        .map_err(|e| e.to_string())?;
    let budget = if verbose {
        Some(reader.budget(at).await.map_err(|e| e.to_string())?)
    } else {
        None
    };
    let body = serde_json::to_vec_pretty(&report).expect("a report serializes");
    Ok((report, body, budget))
}

/// The whole fleet's health through a Prometheus query API or the fleet store.
async fn fleet_health(
    fleet: &FleetArgs,
    window: Option<&str>,
) -> Result<(HealthReport, Vec<u8>), String> {
    let (reader, window) = reader_and_window(fleet, window).await?;
    let report = reader
        .health(window, now_ms())
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec_pretty(&report).expect("a report serializes");
    Ok((report, body))
}

/// `alerts watch`: the fleet's alert rules, one process, until stopped.
async fn alerts_watch(
    fleet: &FleetArgs,
    webhook: &str,
    window: Option<&str>,
    every: &str,
    ticks: Option<u64>,
) -> u8 {
    let Some(url) = fleet.source() else {
        return fail(
            &"alerts watch needs --prometheus URL (the query API that holds every instance's metrics) or --fleet-redis URL (the fleet store)",
        );
    };
    let webhook: http::Uri = match webhook.parse() {
        Ok(u) => u,
        Err(e) => return fail(&format!("--slack-webhook-url: {e}")),
    };
    let every = match lumen_middleware::units::parse_duration(every) {
        Ok(d) if d >= std::time::Duration::from_secs(1) => d,
        Ok(_) => return fail(&"--every: at least 1s"),
        Err(e) => return fail(&format!("--every: {e}")),
    };
    if url.is_empty() {
        return fail(&"the fleet source: an empty URL");
    }
    let (reader, window) = match reader_and_window(fleet, window).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let plan = WatchPlan {
        window,
        every,
        ticks,
    };
    let summary = watch(reader, webhook, plan, shutdown_signal()).await;
    tracing::info!(?summary, "alerts watch stopped");
    if summary.failed > 0 || summary.dropped > 0 {
        EXIT_ERROR
    } else {
        0
    }
}

async fn gate(action: GateAction) -> u8 {
    let (name, args) = match action {
        GateAction::Watch(args) => {
            return match gate_watch(*args, shutdown_signal()).await {
                Ok(exit) => exit.code(),
                Err(e) => fail(&e),
            };
        }
        GateAction::Approve(a) => ("approve", a),
        GateAction::Veto(a) => ("veto", a),
        GateAction::Status(a) => ("status", a),
    };
    print_or_fail(gate_command(name, &args).await)
}

fn print_or_fail(result: Result<String, String>) -> u8 {
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            0
        }
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::fmt::Display) -> u8 {
    eprintln!("error: {error}");
    EXIT_ERROR
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; draining"),
        () = term => tracing::info!("SIGTERM received; draining"),
    }
}
