//! Evaluation: pure functions from a window's data to indicators, SLO
//! results, compliance and status. No I/O, no clock: callers pass `now`.

mod slis;
mod slo;
mod slo_report;

pub use slis::{Slis, StatusClass, error_count};
pub use slo::{
    DEFAULT_AVAILABILITY_PERCENT, DEFAULT_ERROR_RATE_PERCENT, DEFAULT_LATENCY_P95_MS,
    DEFAULT_LATENCY_P99_MS, SloEvaluation, SloName, SloResult, SloTargets, Status,
    WARNING_COMPLIANCE_PERCENT, evaluate, status_of,
};
pub use slo_report::{CacheReport, CountsReport, RouteReport, SloReport};
