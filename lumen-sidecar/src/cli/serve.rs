//! `serve` (the sidecar itself) and `config check|show`.

use std::path::PathBuf;

use super::{CliError, ConfigAction};
use crate::config::SidecarConfig;
use crate::sidecar::Sidecar;

/// `serve`: loads the configuration (`--export` over `LUMEN_EXPORT`),
/// binds, and runs until `shutdown` completes and the drain is done.
pub async fn serve(
    config: Option<PathBuf>,
    export: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, CliError> {
    let config = SidecarConfig::load_with(config.as_deref(), |k| {
        if k == "LUMEN_EXPORT" && export.is_some() {
            return export.clone();
        }
        std::env::var(k).ok()
    })?
    .durable_by_default(|k| std::env::var(k).ok());
    if config.state_dir.is_none() {
        tracing::warn!(
            "no state directory (store.state_dir = none): acknowledged batches are lost if the sidecar restarts"
        );
    }
    let sidecar = Sidecar::bind(config)
        .await
        .map_err(|e| CliError::Serve(e.to_string()))?;
    sidecar
        .run(shutdown)
        .await
        .map_err(|e| CliError::Serve(e.to_string()))?;
    Ok(0)
}

/// `config check` and `config show`: the text to print.
pub fn config(action: ConfigAction) -> Result<String, CliError> {
    match action {
        ConfigAction::Check { config } => {
            SidecarConfig::load(config.as_deref())?;
            Ok("config is valid".to_owned())
        }
        ConfigAction::Show { config } => Ok(SidecarConfig::load(config.as_deref())?.to_toml()),
    }
}
