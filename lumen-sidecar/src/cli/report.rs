//! `check` and `health`: one sidecar's report, or the whole fleet's,
//! printed as text or JSON, with the verdict as the exit code.

use super::sources::{CheckError, fetch_budget, fetch_health, fetch_report, window_arg};
use super::{CliError, FleetArgs, ReadArgs};
use crate::app::now_ms;
use crate::eval::{Band, BudgetReport, HealthReport, SloReport, Status};
use crate::fleet::FleetSource;
use crate::render::{budget_text, check_text, health_text};

/// `check`: prints the seven phases (or the JSON); exits with the status's
/// code (0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 NO_DATA).
pub async fn check(read: &ReadArgs) -> Result<u8, CliError> {
    misuse(&read.fleet)?;
    let window = read.window.as_deref();
    let (report, body, budget) = if read.fleet.is_fleet() {
        fleet_check(&read.fleet, window, read.verbose).await?
    } else {
        sidecar_check(&read.url, window, read.verbose).await?
    };
    if read.json {
        println!("{}", String::from_utf8_lossy(&body));
    } else {
        print!("{}", check_text(&report, read.verbose));
        if let Some(budget) = budget {
            print!("{}", budget_text(&budget));
        }
    }
    if report.status == Status::NoData {
        eprintln!(
            "error: no data: {} holds no request of {} in the window",
            read.fleet.source().unwrap_or_else(|| read.url.clone()),
            report.service
        );
    }
    Ok(report.status.code())
}

/// `health`: prints the six sections (or the JSON); exits with the band's
/// code (0 EXCELLENT or GOOD, 1 FAIR, 2 POOR, 3 NO_DATA).
pub async fn health(read: &ReadArgs) -> Result<u8, CliError> {
    misuse(&read.fleet)?;
    let window = read.window.as_deref();
    let (report, body) = if read.fleet.is_fleet() {
        fleet_health(&read.fleet, window).await?
    } else {
        let (report, body) = fetch_health(&read.url, window).await.map_err(read_error)?;
        (report, body.to_vec())
    };
    if read.json {
        println!("{}", String::from_utf8_lossy(&body));
    } else {
        print!("{}", health_text(&report, read.verbose));
    }
    if report.band == Band::NoData {
        let missing: Vec<String> = report
            .components
            .iter()
            .filter(|c| c.required && c.score.is_none())
            .map(|c| format!("{} ({})", c.name, c.missing.as_deref().unwrap_or("missing")))
            .collect();
        eprintln!(
            "error: no data: no health score without {}",
            missing.join(" and ")
        );
    }
    Ok(report.band.exit_code())
}

/// A sidecar that could not be read, or answered badly.
fn read_error(e: CheckError) -> CliError {
    CliError::Read(e.to_string())
}

/// Fleet options given without a fleet source.
fn misuse(fleet: &FleetArgs) -> Result<(), CliError> {
    match fleet.misuse() {
        Some(why) => Err(CliError::Usage(why.to_owned())),
        None => Ok(()),
    }
}

/// A check through one sidecar: its report, the JSON as it sent it, and
/// its budgets when `verbose`.
async fn sidecar_check(
    url: &str,
    window: Option<&str>,
    verbose: bool,
) -> Result<(SloReport, Vec<u8>, Option<BudgetReport>), CliError> {
    let (report, body) = fetch_report(url, window).await.map_err(read_error)?;
    let budget = if verbose {
        fetch_budget(url).await.ok()
    } else {
        None
    };
    Ok((report, body.to_vec(), budget))
}

/// The fleet's source from the command's arguments, and its window.
pub(super) async fn reader_and_window(
    fleet: &FleetArgs,
    window: Option<&str>,
) -> Result<(FleetSource, std::time::Duration), CliError> {
    let reader = fleet.open().await?;
    let window = window_arg(window, reader.config().window).map_err(CliError::Usage)?;
    Ok((reader, window))
}

/// A check of the whole fleet through a Prometheus query API or the fleet store.
async fn fleet_check(
    fleet: &FleetArgs,
    window: Option<&str>,
    verbose: bool,
) -> Result<(SloReport, Vec<u8>, Option<BudgetReport>), CliError> {
    let (reader, window) = reader_and_window(fleet, window).await?;
    let at = now_ms();
    let read_error = |e: crate::fleet::FleetError| CliError::Read(e.to_string());
    let report = reader.slo_report(window, at).await.map_err(read_error)?;
    let budget = if verbose {
        Some(reader.budget(at).await.map_err(read_error)?)
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
) -> Result<(HealthReport, Vec<u8>), CliError> {
    let (reader, window) = reader_and_window(fleet, window).await?;
    let report = reader
        .health(window, now_ms())
        .await
        .map_err(|e| CliError::Read(e.to_string()))?;
    let body = serde_json::to_vec_pretty(&report).expect("a report serializes");
    Ok((report, body))
}
