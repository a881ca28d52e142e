//! The fleet store: every sidecar of a service writes its minutes (per
//! route: counts and the packed HDR histogram) to the Redis the service
//! already runs (Memorystore), so any process can merge the whole fleet's
//! histograms exactly, ended instances included.
//!
//! Layout ([`keys`]): one hash per service, tier and block start, one field
//! per sidecar, all of a service's keys under one Redis Cluster hash tag.
//! Minutes are kept 2 h, 10-minute blocks 7 h, hours the retention, budget
//! hours 32 days. A write is a block's whole state (never an increment), so
//! retries and restarts never double-count; the writer ([`writer`]) runs
//! beside ingest and never blocks it, catching up after an outage. The
//! reader ([`reader`]) evaluates with the sidecar's own pure functions.

mod block;
pub mod budget_minutes;
pub mod compaction;
mod connection;
mod error;
pub mod experiments;
pub mod instance_index;
pub mod keys;
pub mod reader;
pub mod shared_exclusions;
pub mod tuning;
pub mod writer;

pub use block::{BLOCK_FORMAT, FleetBlock, InstanceInfo, decode, encode};
pub use compaction::{CompactionSummary, MERGED_FIELD, compact};
pub use connection::{connection, open_client};
pub use error::{FleetStoreError, masked as masked_url};
pub use experiments::FleetExperiments;
pub use keys::{FleetKeys, Tier};
pub use reader::{FleetStoreReader, FleetStoreView, FleetStoreWindow};
pub use tuning::FleetTuning;
pub use writer::{FleetWriter, WriteSummary, fleet_instance};
