//! Where batches are kept: the window store and its parts.

mod error_budget_ledger;
mod counts;
pub mod exclusions;
pub mod late_batches;
mod ledger;
mod route_slot;
pub mod snapshot;
mod sparse_histogram;
mod window_histogram;
mod window_store;
pub mod wal;

pub use counts::{Counts, GRPC_CODES};
pub use error_budget_ledger::{BudgetCounts, BudgetLedger, COARSE_HOURS, FINE_MINUTES};
pub use exclusions::{ExcludedSpan, Exclusion, Exclusions, RecurringWindow, parse_recurring};
pub use late_batches::{LATE_AFTER_MINUTES, LateBatch, LateBatches};
pub use ledger::{InstanceEntry, InstanceLedger, MAX_INSTANCES};
pub use sparse_histogram::SparseHistogram;
pub use window_histogram::{Scratch, WindowHistogram, nearest_rank};
pub use window_store::{
    Applied, BudgetFit, BudgetRules, DEFAULT_MAX_ROUTES, HeldMinutes, MAX_FUTURE_MS,
    MAX_MINUTE_COUNT, MINUTE_MS, OTHER_ROUTE, REVISION_MEMORY_MS, ROLLUP_MINUTES, RouteKey,
    RouteSlot, RouteWindow, StoreCheck, StoreError, WindowData, WindowStore, merge_routes, pieces,
    store_layout,
};
