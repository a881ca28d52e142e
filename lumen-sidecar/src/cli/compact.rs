//! `compact`: the fleet store's closed blocks merged now.

use super::CliError;
use super::args::CompactArgs;
use super::sources::fleet_store_reader;
use crate::app::now_ms;

/// Merges the closed blocks of the service's fleet store; says each block
/// on stderr as it is merged, and what was done.
pub async fn compact(a: &CompactArgs) -> Result<String, CliError> {
    let reader = fleet_store_reader(
        &a.fleet_redis,
        a.fleet_redis_ca_file.as_deref(),
        a.service.as_deref(),
        a.config.as_deref(),
    )?;
    let summary = reader
        .compact(now_ms(), |tier, start, fields| {
            eprintln!("merged {fields} fields of the {tier:?} block at minute {start}");
        })
        .await
        .map_err(|e| CliError::Read(e.to_string()))?;
    Ok(format!(
        "{}: {} blocks merged ({} fields), {} read again as they changed",
        reader.service, summary.blocks, summary.fields, summary.retried
    ))
}
