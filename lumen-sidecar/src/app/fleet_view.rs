//! The fleet, as the sidecar's own handlers see it: an evaluation of the
//! whole service that the composition root may install (the fleet store,
//! when one is configured), so the read API and the status page can show
//! the fleet beside this instance without depending on how it is read.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::eval::SloReport;
use crate::store::Exclusion;

/// A report that is being read.
pub type ReportFuture<'a> = Pin<Box<dyn Future<Output = Result<SloReport, String>> + Send + 'a>>;

/// A mark being shared: whether the fleet holds it now, or why not.
pub type ShareFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// Reads the whole fleet's SLO report.
pub trait FleetView: Send + Sync + std::fmt::Debug {
    /// The report of `service` over `window` ending at `at_ms`; `Err` says
    /// why the fleet could not be read.
    fn slo_report(&self, service: &str, window: Duration, at_ms: u64) -> ReportFuture<'_>;

    /// Shares a window kept off `service`'s budget with every sidecar
    /// (`Ok(false)`: this view shares nothing).
    fn share_exclusion(&self, service: &str, mark: &Exclusion) -> ShareFuture<'_> {
        let _ = (service, mark);
        Box::pin(async { Ok(false) })
    }
}
