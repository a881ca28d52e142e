//! `cost-budget apply`: the service's monthly budget as a Cloud Billing budget
//! (Budget API v1), created or updated with its etag: threshold rules at
//! 50 %, 90 % and 100 % of current spend and 100 % of forecast spend,
//! notifying a Pub/Sub topic and/or Cloud Monitoring email channels.
//!
//! A billing account holds the budgets of many projects, so a budget is
//! named after its service and project and found again only by that name
//! *and* a filter naming this project (by number, as Google stores it):
//! applying for a second project never overwrites the first one's. The
//! amount is in the billing account's currency (Cloud Billing API
//! `billingAccounts.get`), which Google requires of a new budget.
//!
//! Google's actual-spend figures lag by hours (up to a day): this budget is
//! the bill's backstop. The rollback gate acts on Lumen's own near-real-time
//! estimate (`lumen_instance_cost_usd_total`) instead.

use serde_json::{Value, json};
use thiserror::Error;

use crate::google::rest::{ApiError, GoogleRest};

/// Google's endpoint.
pub const DEFAULT_BUDGET_API_BASE: &str = "https://billingbudgets.googleapis.com";
/// The Cloud Billing API (the billing account's currency).
pub const DEFAULT_BILLING_API_BASE: &str = "https://cloudbilling.googleapis.com";
/// The name budgets had before they were named per service and project;
/// one whose filter names this project is adopted (and renamed).
pub const LEGACY_DISPLAY_NAME: &str = "Lumen monthly budget";
/// Google's limit on a budget's display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 60;
/// Email channels a budget may notify at most (the API's limit).
pub const MAX_EMAIL_CHANNELS: usize = 5;
/// The threshold rules: (fraction, spend basis).
pub const THRESHOLDS: [(f64, &str); 4] = [
    (0.5, "CURRENT_SPEND"),
    (0.9, "CURRENT_SPEND"),
    (1.0, "CURRENT_SPEND"),
    (1.0, "FORECASTED_SPEND"),
];
/// The fields `cost-budget apply` sets, as the update mask names them.
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
    /// The project's number (as Google stores it in the filter) whose spend counts.
    pub project: String,
    /// The display name (`apply` finds the budget by it and the project).
    pub display_name: String,
    /// The monthly amount, in `currency`.
    pub amount: f64,
    /// The billing account's currency (ISO 4217).
    pub currency: String,
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
        if self.project.is_empty() || !self.project.chars().all(|c| c.is_ascii_digit()) {
            return bad(format!(
                "--project {:?}: the project NUMBER (gcloud projects describe ID --format='value(projectNumber)'): Google stores a budget's projects by number, so an id would never find the budget again",
                self.project
            ));
        }
        if !(self.amount > 0.0 && self.amount.is_finite() && self.amount < 1e15) {
            return bad(format!(
                "--amount {}: {}, above 0",
                self.amount, self.currency
            ));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return bad(format!(
                "--currency {:?}: an ISO 4217 code such as USD or EUR",
                self.currency
            ));
        }
        if self.display_name.is_empty()
            || self.display_name.chars().count() > MAX_DISPLAY_NAME_CHARS
        {
            return bad(format!(
                "--display-name {:?}: 1 to {MAX_DISPLAY_NAME_CHARS} characters",
                self.display_name
            ));
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
        let cents = (self.amount * 100.0).round() as u64;
        let mut amount =
            json!({ "currencyCode": self.currency, "units": (cents / 100).to_string() });
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

/// The display name of `service`'s budget for project `number`, within
/// Google's 60 characters (the service's name is shortened first).
pub fn display_name(service: &str, number: &str) -> String {
    let tail = format!(" (project {number})");
    let room = MAX_DISPLAY_NAME_CHARS.saturating_sub("Lumen: ".len() + tail.chars().count());
    let short: String = service.chars().take(room).collect();
    format!("Lumen: {short}{tail}")
}

/// This project's budget among `budgets`: the one named as `spec` says
/// (or with the legacy name) whose filter names exactly this project.
pub fn find_budget<'a>(budgets: &'a [Value], spec: &BudgetSpec) -> Option<&'a Value> {
    let project = format!("projects/{}", spec.project);
    let ours = |b: &&Value| {
        b["budgetFilter"]["projects"]
            .as_array()
            .is_some_and(|p| p.len() == 1 && p[0] == project.as_str())
    };
    budgets
        .iter()
        .filter(ours)
        .find(|b| b["displayName"] == spec.display_name.as_str())
        .or_else(|| {
            budgets
                .iter()
                .filter(ours)
                .find(|b| b["displayName"] == LEGACY_DISPLAY_NAME)
        })
}

/// The billing account's currency, from the Cloud Billing API (`billing`):
/// a new budget's amount must be in it.
pub async fn account_currency(billing: &GoogleRest, account: &str) -> Result<String, BudgetError> {
    let answer = billing
        .call("GET", &format!("/v1/billingAccounts/{account}"), None)
        .await?;
    answer["currencyCode"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            BudgetError::Invalid(format!(
                "billingAccounts/{account} does not say its currency: give --currency"
            ))
        })
}

/// Creates the budget, or updates this project's (found by [`find_budget`],
/// with its etag); with `dry_run`, reads only and says what it would send.
pub async fn apply(
    api: &GoogleRest,
    spec: &BudgetSpec,
    dry_run: bool,
) -> Result<BudgetApplied, BudgetError> {
    spec.validate()?;
    let parent = format!("billingAccounts/{}", spec.billing_account);
    let budgets = api
        .list(&format!("/v1/{parent}/budgets"), "budgets")
        .await?;
    let existing = find_budget(&budgets, spec);
    if let Some(found) = existing
        && let Some(theirs) = found["amount"]["specifiedAmount"]["currencyCode"].as_str()
        && theirs != spec.currency
    {
        return Err(BudgetError::Invalid(format!(
            "the budget {} is in {theirs}, not {}: an update must keep its currency",
            found["name"].as_str().unwrap_or_default(),
            spec.currency
        )));
    }
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
                        crate::http_client::percent_encode(UPDATE_MASK)
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
            display_name: display_name("api", "123456789"),
            amount: 200.0,
            currency: "USD".into(),
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
            amount: 199.99,
            currency: "EUR".into(),
            ..spec()
        }
        .body();
        assert_eq!(cents["amount"]["specifiedAmount"]["units"], "199");
        assert_eq!(cents["amount"]["specifiedAmount"]["nanos"], 990_000_000);
        assert_eq!(cents["amount"]["specifiedAmount"]["currencyCode"], "EUR");
    }

    #[test]
    fn a_budget_is_found_by_its_name_and_this_project_only() {
        let budget = |name: &str, project: &str| {
            json!({"name": format!("billingAccounts/a/budgets/{name}{project}"), "displayName": name,
                   "budgetFilter": {"projects": [format!("projects/{project}")]}})
        };
        let mine = display_name("api", "123456789");
        let other = display_name("api", "987654321");
        let list = [
            budget(&other, "987654321"),
            budget(LEGACY_DISPLAY_NAME, "987654321"),
            budget(&mine, "987654321"), // a name that lies about its filter
        ];
        assert_eq!(find_budget(&list, &spec()), None);
        let mut with_legacy = list.to_vec();
        with_legacy.push(budget(LEGACY_DISPLAY_NAME, "123456789"));
        assert_eq!(
            find_budget(&with_legacy, &spec()).map(|b| b["displayName"].clone()),
            Some(json!(LEGACY_DISPLAY_NAME))
        );
        with_legacy.push(budget(&mine, "123456789"));
        assert_eq!(
            find_budget(&with_legacy, &spec()).map(|b| b["displayName"].clone()),
            Some(json!(mine))
        );
        let long = display_name(&"s".repeat(100), "123456789012");
        assert_eq!(long.chars().count(), MAX_DISPLAY_NAME_CHARS);
        assert!(long.ends_with("(project 123456789012)"));
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
                    amount: 0.0,
                    ..spec()
                },
                "--amount",
            ),
            (
                BudgetSpec {
                    project: "lumen-demo".into(),
                    ..spec()
                },
                "--project",
            ),
            (
                BudgetSpec {
                    currency: "usd".into(),
                    ..spec()
                },
                "--currency",
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
