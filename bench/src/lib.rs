//! Benchmarks of Lumen against its peers, and the tools that turn their
//! output into `bench/RESULTS.md`.
//!
//! ```no_run
//! // Reads criterion's estimates after `cargo bench`.
//! let median_ns = lumen_bench::criterion_median_ns("request_overhead_1_thread", "lumen");
//! ```

#![forbid(unsafe_code)]

pub mod fleet_redis;
pub mod peers;
pub mod report;
pub mod router_shape;
pub mod workload;

pub use report::{
    Machine, criterion_median_ns, figures_path, release_sidecar, replace_section, workspace_root,
    write_figures,
};
