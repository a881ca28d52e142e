//! HTTP status classes.

use serde::{Deserialize, Serialize};

/// An HTTP status class: the one representation the middleware, the wire
/// contract and the sidecar share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StatusClass {
    /// 1xx.
    #[serde(rename = "1xx")]
    Informational,
    /// 2xx.
    #[serde(rename = "2xx")]
    Success,
    /// 3xx.
    #[serde(rename = "3xx")]
    Redirect,
    /// 4xx.
    #[serde(rename = "4xx")]
    ClientError,
    /// 5xx.
    #[serde(rename = "5xx")]
    ServerError,
}

impl StatusClass {
    /// Every class, in index order.
    pub const ALL: [Self; 5] = [
        Self::Informational,
        Self::Success,
        Self::Redirect,
        Self::ClientError,
        Self::ServerError,
    ];

    /// The class of a status code; codes outside 100–599 fall into the
    /// nearest class.
    #[inline]
    pub fn of_code(code: u16) -> Self {
        Self::ALL[usize::from(code / 100).clamp(1, 5) - 1]
    }

    /// Index in [`super::StatusCounts::as_array`] (0 for 1xx … 4 for 5xx).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses `1xx` … `5xx`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "1xx" => Self::Informational,
            "2xx" => Self::Success,
            "3xx" => Self::Redirect,
            "4xx" => Self::ClientError,
            "5xx" => Self::ServerError,
            _ => return None,
        })
    }

    /// `1xx` … `5xx`.
    pub fn as_str(self) -> &'static str {
        ["1xx", "2xx", "3xx", "4xx", "5xx"][self.index()]
    }
}
