//! The Lumen sidecar: it ingests the batches `lumen-middleware` ships,
//! keeps rolling per-minute windows, evaluates SLOs and serves them as JSON,
//! Markdown, Prometheus text, a status page and CLI checks.
//!
//! Evaluation is pure ([`eval`]); the store ([`store`]) is plain data; I/O
//! sits at the edges: [`server`], [`http_client`], [`google`], [`cli`].
//!
//! ```
//! use std::time::Duration;
//! use lumen_sidecar::eval::{SloReport, SloTargets, Status};
//! use lumen_sidecar::store::WindowStore;
//!
//! let store = WindowStore::new(Duration::from_secs(24 * 3600));
//! let now_ms = 1_764_130_000_000;
//! let data = store.window(now_ms, Duration::from_secs(3600));
//! let report = SloReport::evaluate(&data, &SloTargets::default(), Some("api"), now_ms);
//! assert_eq!(report.status, Status::NoData);
//! ```

#![forbid(unsafe_code)]

// In the order data flows, each module importing only those above it
// (tests/tests/module_graph.rs checks it; rustfmt.toml keeps the order).
pub mod store;
pub mod eval;
pub mod config;
pub mod app;
pub mod metrics;
pub mod render;
pub mod http_client;
pub mod google;
pub mod listen;
pub mod server;
pub mod export;
pub mod monitoring;
pub mod fleet;
pub mod alerts;
pub mod gate;
pub mod sidecar;
pub mod cli;

pub use sidecar::{ServeError, Sidecar};
