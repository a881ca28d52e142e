//! Google Cloud at the edges: the metadata server (identity, tokens), the
//! access tokens every call asks for, the one client of Google's JSON REST
//! APIs, and what Lumen does with them: Cloud Run (the service's traffic,
//! revisions and scaling), the deployments count, the monthly cost budget on
//! the Cloud Billing Budget API.

pub mod access_tokens;
pub mod cloud_run;
pub mod cost_budget;
pub mod deployments;
pub mod metadata;
pub mod rest;

pub use access_tokens::AccessTokens;
pub use metadata::{GcpError, InstanceIdentity, MetadataClient, TokenSource, identify};
pub use rest::{ApiError, GoogleRest};
