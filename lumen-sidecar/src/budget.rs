//! `budget apply`: the service's monthly budget as a Cloud Billing budget
//! (Budget API v1), created or updated by display name with its etag:
//! threshold rules at 50 %, 90 % and 100 % of current spend and 100 % of
//! forecast spend, notifying a Pub/Sub topic and/or Cloud Monitoring
//! email channels.
//!
//! Google's actual-spend figures lag by hours (up to a day): this budget is
//! the bill's backstop. The rollback gate acts on Lumen's own near-real-time
//! estimate (`lumen_instance_cost_usd_total`) instead.

use serde_json::{Value, json};
use thiserror::Error;

use crate::google_rest::{ApiError, GoogleRest};

/// Google's endpoint.
pub const DEFAULT_BUDGET_API_BASE: &str = "https://billingbudgets.googleapis.com";
/// The budget's display name by default.
pub const DEFAULT_DISPLAY_NAME: &str = "Lumen monthly budget";
/// Email channels a budget may notify at most (the API's limit).
pub const MAX_EMAIL_CHANNELS: usize = 5;
/// The threshold rules: (fraction, spend basis).
pub const THRESHOLDS: [(f64, &str); 4] = [
    (0.5, "CURRENT_SPEND"),
    (0.9, "CURRENT_SPEND"),
    (1.0, "CURRENT_SPEND"),
    (1.0, "FORECASTED_SPEND"),
];
/// The fields `budget apply` sets, as the update mask names them.
pub const UPDATE_MASK: &str = "displayName,budgetFilter,amount,thresholdRules,notificationsRule";

/// A budget request that cannot be made.
#[derive(Debug, Error)]
pub enum BudgetError {
    /// An argument is not what the API takes.
    #[error("{0}")]
    Invalid(String),
    /// The API failed.
    #[error("Billing Budget API: {0}")]
    Api(#[from] ApiError),
}

/// What the budget is.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSpec {
    /// The billing account id (`012345-6789AB-CDEF01`).
    pub billing_account: String,
    /// The project (its number or id) whose spend counts.
    pub project: String,
    /// The display name (the key `apply` finds it by).
    pub display_name: String,
    /// The monthly amount, USD.
    pub amount_usd: f64,
    /// A Pub/Sub topic (`projects/P/topics/T`) to notify.
    pub pubsub_topic: Option<String>,
    /// Cloud Monitoring email channels (`projects/P/notificationChannels/N`), at most 5.
    pub email_channels: Vec<String>,
}

impl BudgetSpec {
    /// Why the API would refuse it, if so.
    pub fn validate(&self) -> Result<(), BudgetError> {
        let bad = |m: String| Err(BudgetError::Invalid(m));
        let parts: Vec<&str> = self.billing_account.split('-').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.len() != 6 || !p.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return bad(format!(
                "--billing-account {:?}: a billing account id looks like 012345-6789AB-CDEF01",
                self.billing_account
            ));
        }
        if self.project.is_empty() || self.project.contains('/') {
            return bad(format!(
                "--project {:?}: the project's number or id, without projects/",
                self.project
            ));
        }
        if !(self.amount_usd > 0.0 && self.amount_usd.is_finite()) {
            return bad(format!("--amount {}: USD, above 0", self.amount_usd));
        }
        if let Some(t) = &self.pubsub_topic {
            let p: Vec<&str> = t.split('/').collect();
            if p.len() != 4
                || p[0] != "projects"
                || p[2] != "topics"
                || p[1].is_empty()
                || p[3].is_empty()
            {
                return bad(format!(
                    "--pubsub-topic {t:?}: projects/PROJECT/topics/TOPIC"
                ));
            }
        }
        if self.email_channels.len() > MAX_EMAIL_CHANNELS {
            return bad(format!(
                "{} --email-channel: a budget notifies at most {MAX_EMAIL_CHANNELS}",
                self.email_channels.len()
            ));
        }
        for c in &self.email_channels {
            let p: Vec<&str> = c.split('/').collect();
            if p.len() != 4 || p[0] != "projects" || p[2] != "notificationChannels" {
                return bad(format!(
                    "--email-channel {c:?}: projects/PROJECT/notificationChannels/ID"
                ));
            }
        }
        Ok(())
    }

    /// The Budget resource (without name and etag).
    pub fn body(&self) -> Value {
        let cents = (self.amount_usd * 100.0).round() as u64;
        let mut amount = json!({ "currencyCode": "USD", "units": (cents / 100).to_string() });
        if !cents.is_multiple_of(100) {
            amount["nanos"] = json!((cents % 100) * 10_000_000);
        }
        let mut notifications = json!({ "schemaVersion": "1.0" });
        if let Some(t) = &self.pubsub_topic {
            notifications["pubsubTopic"] = json!(t);
        }
        if !self.email_channels.is_empty() {
            notifications["monitoringNotificationChannels"] = json!(self.email_channels);
        }
        json!({
            "displayName": self.display_name,
            "budgetFilter": {
                "projects": [format!("projects/{}", self.project)],
                "calendarPeriod": "MONTH",
                "creditTypesTreatment": "INCLUDE_ALL_CREDITS",
            },
            "amount": { "specifiedAmount": amount },
            "thresholdRules": THRESHOLDS
                .iter()
                .map(|(p, basis)| json!({ "thresholdPercent": p, "spendBasis": basis }))
                .collect::<Vec<_>>(),
            "notificationsRule": notifications,
        })
    }
}

/// One request `apply` makes (or, dry, would make).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRequest {
    /// `POST` or `PATCH`.
    pub method: &'static str,
    /// The path.
    pub path: String,
    /// The body.
    pub body: Value,
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetApplied {
    /// The request made (or, dry, the one that would be).
    pub request: BudgetRequest,
    /// The budget's resource name (empty on a dry run's create).
    pub name: String,
    /// Whether it was made.
    pub done: bool,
}

/// Creates the budget, or updates the one with its display name (with
/// that one's etag); with `dry_run`, reads only and says what it would send.
pub async fn apply(
    api: &GoogleRest,
    spec: &BudgetSpec,
    dry_run: bool,
) -> Result<BudgetApplied, BudgetError> {
    spec.validate()?;
    let parent = format!("billingAccounts/{}", spec.billing_account);
    let existing = api
        .list(&format!("/v1/{parent}/budgets"), "budgets")
        .await?
        .into_iter()
        .find(|b| b["displayName"] == spec.display_name.as_str());
    let mut body = spec.body();
    let (request, name) = match existing {
        Some(found) => {
            let name = found["name"].as_str().unwrap_or_default().to_owned();
            body["name"] = json!(name);
            body["etag"] = found["etag"].clone();
            (
                BudgetRequest {
                    method: "PATCH",
                    path: format!(
                        "/v1/{name}?updateMask={}",
                        crate::https::percent_encode(UPDATE_MASK)
                    ),
                    body,
                },
                name,
            )
        }
        None => (
            BudgetRequest {
                method: "POST",
                path: format!("/v1/{parent}/budgets"),
                body,
            },
            String::new(),
        ),
    };
    if dry_run {
        return Ok(BudgetApplied {
            request,
            name,
            done: false,
        });
    }
    let answer = api
        .call(request.method, &request.path, Some(&request.body))
        .await?;
    Ok(BudgetApplied {
        name: answer["name"].as_str().map_or(name, str::to_owned),
        request,
        done: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BudgetSpec {
        BudgetSpec {
            billing_account: "012345-6789AB-CDEF01".into(),
            project: "123456789".into(),
            display_name: DEFAULT_DISPLAY_NAME.into(),
            amount_usd: 200.0,
            pubsub_topic: Some("projects/p/topics/budget".into()),
            email_channels: vec!["projects/p/notificationChannels/7".into()],
        }
    }

    #[test]
    fn the_body_has_the_four_thresholds_and_whole_dollars() {
        let b = spec().body();
        assert_eq!(
            b["amount"]["specifiedAmount"],
            json!({"currencyCode": "USD", "units": "200"})
        );
        assert_eq!(b["thresholdRules"].as_array().map(Vec::len), Some(4));
        assert_eq!(b["thresholdRules"][3]["spendBasis"], "FORECASTED_SPEND");
        assert_eq!(b["budgetFilter"]["projects"][0], "projects/123456789");
        let cents = BudgetSpec {
            amount_usd: 199.99,
            ..spec()
        }
        .body();
        assert_eq!(cents["amount"]["specifiedAmount"]["units"], "199");
        assert_eq!(cents["amount"]["specifiedAmount"]["nanos"], 990_000_000);
    }

    #[test]
    fn bad_arguments_are_refused_with_the_flag_named() {
        for (s, flag) in [
            (
                BudgetSpec {
                    billing_account: "nope".into(),
                    ..spec()
                },
                "--billing-account",
            ),
            (
                BudgetSpec {
                    amount_usd: 0.0,
                    ..spec()
                },
                "--amount",
            ),
            (
                BudgetSpec {
                    pubsub_topic: Some("budget".into()),
                    ..spec()
                },
                "--pubsub-topic",
            ),
            (
                BudgetSpec {
                    email_channels: vec!["projects/p/notificationChannels/1".into(); 6],
                    ..spec()
                },
                "--email-channel",
            ),
        ] {
            let e = s.validate().expect_err(flag).to_string();
            assert!(e.contains(flag), "{e}");
        }
        assert!(spec().validate().is_ok());
    }
}
