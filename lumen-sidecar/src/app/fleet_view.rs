//! The fleet, as the sidecar's own handlers see it: an evaluation of the
//! whole service that the composition root may install (the fleet store,
//! when one is configured), so the read API and the status page can show
//! the fleet beside this instance without depending on how it is read.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::what_if_answer::WhatIfAnswer;
use crate::eval::{SloPeriod, SloReport, SloTargets};
use crate::store::Exclusion;

/// A report that is being read.
pub type ReportFuture<'a> = Pin<Box<dyn Future<Output = Result<SloReport, String>> + Send + 'a>>;

/// A what-if being replayed over the fleet's history.
pub type WhatIfFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<WhatIfAnswer>, String>> + Send + 'a>>;

/// A mark being shared: whether the fleet holds it now, or why not.
pub type ShareFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// Reads the whole fleet's SLO report.
pub trait FleetView: Send + Sync + std::fmt::Debug {
    /// The report of `service` over `window` ending at `at_ms`; `Err` says
    /// why the fleet could not be read.
    fn slo_report(&self, service: &str, window: Duration, at_ms: u64) -> ReportFuture<'_>;

    /// `targets` over `service`'s stored history for `period` at `at_ms`
    /// (`Ok(None)`: this view keeps no history; the sidecar's own is used).
    fn what_if(
        &self,
        service: &str,
        targets: &SloTargets,
        period: SloPeriod,
        at_ms: u64,
    ) -> WhatIfFuture<'_> {
        let _ = (service, targets, period, at_ms);
        Box::pin(async { Ok(None) })
    }

    /// Shares a window kept off `service`'s budget with every sidecar
    /// (`Ok(false)`: this view shares nothing).
    fn share_exclusion(&self, service: &str, mark: &Exclusion) -> ShareFuture<'_> {
        let _ = (service, mark);
        Box::pin(async { Ok(false) })
    }
}
