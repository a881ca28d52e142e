//! Why a batch was refused.

use thiserror::Error;

/// A batch that does not follow the wire contract. Every variant names the
/// field at fault, so a 400 answer can say exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The body is not JSON of the batch's shape (truncated, wrong type,
    /// negative or fractional count, unknown field).
    #[error("{field}: {reason}")]
    Json {
        /// Path of the field, such as `series[0].status.2xx` (`.` for the body).
        field: String,
        /// What the JSON parser said.
        reason: String,
    },
    /// `version` is not one this build reads.
    #[error("version: unsupported wire version {0} (this sidecar reads version 1)")]
    Version(u64),
    /// A field holds a value the contract forbids.
    #[error("{field}: {reason}")]
    Invalid {
        /// Path of the field.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A `latency_us` histogram that cannot be decoded.
    #[error("{field}: not a compressed HdrHistogram ({reason})")]
    Histogram {
        /// Path of the field.
        field: String,
        /// What the decoder said.
        reason: String,
    },
    /// The histogram's total count differs from the status counts plus
    /// `errors`.
    #[error(
        "{field}: histogram holds {histogram} values but status counts plus errors are {counted}"
    )]
    CountMismatch {
        /// Path of the histogram field.
        field: String,
        /// Values in the histogram.
        histogram: u64,
        /// Sum of the status counts and `errors`.
        counted: u64,
    },
}

impl WireError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
