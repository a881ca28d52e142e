//! `slo export` and `slo import`: the service's SLOs as OpenSLO v1
//! documents, and OpenSLO documents as Lumen's settings.

use std::path::Path;

use super::{CliError, monitoring::scope};
use crate::monitoring::openslo;

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
