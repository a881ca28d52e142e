//! The command line: its arguments ([`args`]), one module per command
//! family, one error type ([`CliError`]) and the exit codes in one place
//! ([`run`]). `main` parses and hands off here.

pub mod args;
pub mod compact;
pub mod cost_budget;
mod error;
pub mod experiment;
pub mod gate;
pub mod monitoring;
pub mod sources;
pub mod report;
pub mod serve;
pub mod slo;
pub mod tune;

pub use args::{
    AlertsAction, BudgetAction, Cli, Command, ConfigAction, DashboardAction, ExperimentAction,
    ExperimentStartArgs, ExperimentTarget, FleetArgs, GateAction, GateCommandArgs, GateRolloutArgs,
    GateStartArgs, GateWatchArgs, ReadArgs, RolloutFlags, SloAction, TuneAction, TuneApplyArgs,
};
pub use error::{CliError, EXIT_ERROR};

/// Runs the command `cli` names until it is done or `shutdown` completes,
/// and returns the process's exit code: the command's verdict, or
/// [`CliError::exit_code`] after printing why it failed.
pub async fn run(cli: Cli, shutdown: impl Future<Output = ()> + Send + 'static) -> u8 {
    let result = match cli.command {
        Command::Serve { config, export } => serve::serve(config, export, shutdown).await,
        Command::Check { read } => report::check(&read).await,
        Command::Health { read } => report::health(&read).await,
        Command::Dashboard { action } => monitoring::dashboard(action).await.map(printed),
        Command::Alerts { action } => monitoring::alerts(action, shutdown).await,
        Command::Gate { action } => match action {
            GateAction::Watch(args) => gate::gate_watch(*args, shutdown)
                .await
                .map(|exit| exit.code()),
            GateAction::Rollout(args) => gate::gate_rollout(*args, shutdown)
                .await
                .map(|exit| exit.code()),
            GateAction::Start(a) => gate::gate_start(&a).await.map(printed),
            GateAction::Approve(a) => gate::gate_command("approve", &a).await.map(printed),
            GateAction::Veto(a) => gate::gate_command("veto", &a).await.map(printed),
            GateAction::Status(a) => gate::gate_command("status", &a).await.map(printed),
        },
        Command::CostBudget { action } => cost_budget::budget_apply(action).await.map(printed),
        Command::Experiment { action } => experiment::experiment_command(action).await.map(printed),
        Command::Tune {
            action: TuneAction::Apply(args),
        } => tune::tune_apply(*args).await.map(printed),
        Command::Slo { action } => match action {
            SloAction::Export {
                format,
                config,
                service,
            } => slo::export(&format, config.as_deref(), service.as_deref()).map(printed),
            SloAction::Import { file } => slo::import(&file).map(printed),
            SloAction::Exclude {
                from,
                to,
                reason,
                by,
                url,
                token,
            } => slo::exclude(&from, &to, &reason, by, &url, token.as_deref())
                .await
                .map(printed),
            SloAction::Exclusions { url } => slo::exclusions(&url).await.map(printed),
            SloAction::WhatIf {
                targets,
                period,
                url,
                json,
            } => slo::what_if(&targets, period.as_deref(), &url, json)
                .await
                .map(printed),
        },
        Command::Compact(args) => compact::compact(&args).await.map(printed),
        Command::Config { action } => serve::config(action).map(printed),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Prints a command's answer; exit code 0.
fn printed(text: String) -> u8 {
    println!("{}", text.trim_end());
    0
}
