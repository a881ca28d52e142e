//! The fleet, as the sidecar's own handlers see it: an evaluation of the
//! whole service that the composition root may install (the fleet store,
//! when one is configured), so the read API and the status page can show
//! the fleet beside this instance without depending on how it is read.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::eval::SloReport;

/// A report that is being read.
pub type ReportFuture<'a> = Pin<Box<dyn Future<Output = Result<SloReport, String>> + Send + 'a>>;

/// Reads the whole fleet's SLO report.
pub trait FleetView: Send + Sync + std::fmt::Debug {
    /// The report of `service` over `window` ending at `at_ms`; `Err` says
    /// why the fleet could not be read.
    fn slo_report(&self, service: &str, window: Duration, at_ms: u64) -> ReportFuture<'_>;
}
