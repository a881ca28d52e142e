//! Rendering an [`SloReport`](crate::eval::SloReport) for people: the check's
//! seven phases, the Markdown report, the status page.

mod actions;
mod check_text;
mod experiment_text;
pub mod format;
mod health_text;
mod markdown;
mod status_page;
mod tuning_text;

pub use actions::{ALL_MET, action_items};
pub use check_text::{budget_text, check_text};
pub use experiment_text::{experiment_markdown, experiments_markdown, outcome_name};
pub use health_text::{health_markdown, health_text};
pub use markdown::{budget_markdown, markdown};
pub use status_page::{escape as escape_html, status_page};
pub use tuning_text::tuning_markdown;
