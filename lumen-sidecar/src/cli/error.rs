//! Why a command failed: one enum, and the exit code each maps to (in
//! one place, [`CliError::exit_code`]).

use thiserror::Error;

use crate::config::ConfigError;

/// The exit code of every failure: bad arguments or configuration, an
/// unreachable or badly answering source, a refused change, no data.
pub const EXIT_ERROR: u8 = 3;

/// Why a command could not do what it was asked. Every message names what
/// to fix and never carries a secret.
#[derive(Debug, Error)]
pub enum CliError {
    /// The arguments are missing, malformed or contradict each other.
    #[error("{0}")]
    Usage(String),
    /// The configuration (file or `LUMEN_*` variables) does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A source (a sidecar, a query API, the fleet store, a Google API)
    /// could not be read, or its answer could not be used.
    #[error("{0}")]
    Read(String),
    /// A change (a rollback, a budget, a policy, a dashboard, a command to
    /// a sidecar or the gate) was refused or failed, in whole or in part.
    #[error("{0}")]
    Change(String),
    /// The sidecar could not start, or stopped on an error.
    #[error("{0}")]
    Serve(String),
}

impl CliError {
    /// The process's exit code for this failure. Commands whose answer is
    /// a verdict (`check`, `health`, `gate watch --once`) exit with the
    /// verdict's code instead when they succeed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Config(_) | Self::Read(_) | Self::Change(_) | Self::Serve(_) => {
                EXIT_ERROR
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_exits_3_and_says_what_it_is() {
        let cases = [
            CliError::Usage("--every: at least 1s".into()),
            CliError::Read("sidecar unreachable".into()),
            CliError::Change("the gate refused approve".into()),
            CliError::Serve("address in use".into()),
        ];
        for e in &cases {
            assert_eq!(e.exit_code(), EXIT_ERROR, "{e}");
        }
        assert_eq!(cases[2].to_string(), "the gate refused approve");
    }
}
