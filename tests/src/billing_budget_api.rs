//! A stand-in for the Cloud Billing Budget API v1 (Google's API cannot run
//! here). It checks every request as the discovery document describes it:
//! `GET|POST /v1/billingAccounts/{id}/budgets`, `PATCH
//! /v1/billingAccounts/{id}/budgets/{id}?updateMask=…` with the stored
//! `etag`, a Budget body of known fields only (`displayName`,
//! `budgetFilter{projects, calendarPeriod, creditTypesTreatment}`,
//! `amount.specifiedAmount{currencyCode, units (a string), nanos}`,
//! `thresholdRules[{thresholdPercent, spendBasis}]`, `notificationsRule
//! {pubsubTopic, schemaVersion, monitoringNotificationChannels (≤ 5)}`) and
//! the documented enums. As Google does, it pages lists, stores a filter's
//! projects by number, holds the amount in the billing account's currency
//! (refusing another one), answers the account's currency on the Cloud
//! Billing API's `GET /v1/billingAccounts/{id}`, accepts only tokens it
//! issued that have not expired, and can insist on a quota project.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::google_stand_in::{TokenAuthority, google_error, request_line};

/// What the stand-in holds and saw.
#[derive(Debug, Default)]
pub struct BudgetState {
    /// The budgets, as stored (with `name` and `etag`).
    pub budgets: Vec<Value>,
    /// Every request: `METHOD path?query`.
    pub requests: Vec<String>,
    /// Requests refused as not what the API documents.
    pub violations: Vec<String>,
    /// The tokens Google would accept.
    pub authority: TokenAuthority,
    /// The billing account's currency (ISO 4217); `USD` when empty.
    pub currency: String,
    /// Refuse calls without `x-goog-user-project` (403), as Google does for
    /// a person's credentials on a consumer API without a quota project.
    pub needs_quota_project: bool,
    /// The quota project of each call that named one.
    pub quota_projects: Vec<String>,
}

/// Budgets per page of a list (small, so paging is exercised).
const PAGE: usize = 2;

impl BudgetState {
    fn currency(&self) -> &str {
        if self.currency.is_empty() {
            "USD"
        } else {
            &self.currency
        }
    }
}

/// `projects/ID` as Google stores it: by number (`projects/NUMBER`).
fn stored_project(p: &str) -> String {
    let id = p.trim_start_matches("projects/");
    if id.chars().all(|c| c.is_ascii_digit()) {
        return p.to_owned();
    }
    let number = id.bytes().fold(100_000_000_000_u64, |n, b| {
        (n * 31 + u64::from(b)) % 900_000_000_000 + 100_000_000_000
    });
    format!("projects/{number}")
}

/// A running stand-in.
#[derive(Debug, Clone)]
pub struct BudgetApi {
    /// Its base URL.
    pub base: String,
    state: Arc<Mutex<BudgetState>>,
}

impl BudgetApi {
    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const FIELDS: [&str; 5] = [
    "displayName",
    "budgetFilter",
    "amount",
    "thresholdRules",
    "notificationsRule",
];

fn check_budget(b: &Value) -> Result<(), String> {
    let obj = b.as_object().ok_or("not an object")?;
    for k in obj.keys() {
        if !FIELDS.contains(&k.as_str()) && k != "name" && k != "etag" {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{k}\""
            ));
        }
    }
    if !b["displayName"].is_string() {
        return Err("displayName".into());
    }
    let f = &b["budgetFilter"];
    let projects = f["projects"].as_array().ok_or("budgetFilter.projects")?;
    if projects
        .iter()
        .any(|p| !p.as_str().is_some_and(|p| p.starts_with("projects/")))
    {
        return Err("budgetFilter.projects: projects/{project}".into());
    }
    if !["MONTH", "QUARTER", "YEAR"].contains(&f["calendarPeriod"].as_str().unwrap_or("")) {
        return Err("budgetFilter.calendarPeriod".into());
    }
    if let Some(t) = f.get("creditTypesTreatment")
        && ![
            "INCLUDE_ALL_CREDITS",
            "EXCLUDE_ALL_CREDITS",
            "INCLUDE_SPECIFIED_CREDITS",
        ]
        .contains(&t.as_str().unwrap_or(""))
    {
        return Err("budgetFilter.creditTypesTreatment".into());
    }
    let money = &b["amount"]["specifiedAmount"];
    if !money["units"].is_string() {
        return Err(format!("amount.specifiedAmount {money}: units is a string"));
    }
    if money.get("nanos").is_some_and(|n| !n.is_i64()) {
        return Err("amount.specifiedAmount.nanos".into());
    }
    for r in b["thresholdRules"].as_array().ok_or("thresholdRules")? {
        if !r["thresholdPercent"].is_number()
            || !["CURRENT_SPEND", "FORECASTED_SPEND"]
                .contains(&r["spendBasis"].as_str().unwrap_or(""))
        {
            return Err(format!("thresholdRules {r}"));
        }
    }
    let n = &b["notificationsRule"];
    if let Some(t) = n.get("pubsubTopic") {
        if !t.as_str().is_some_and(|t| t.contains("/topics/")) {
            return Err("notificationsRule.pubsubTopic".into());
        }
        if n["schemaVersion"] != "1.0" {
            return Err("notificationsRule.schemaVersion must be 1.0 with a topic".into());
        }
    }
    if n["monitoringNotificationChannels"]
        .as_array()
        .is_some_and(|c| c.len() > 5)
    {
        return Err("notificationsRule.monitoringNotificationChannels: at most 5".into());
    }
    Ok(())
}

async fn handle(
    State(state): State<Arc<Mutex<BudgetState>>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    let path = format!("/v1/{rest}");
    s.requests
        .push(request_line(&method, &path, query.as_deref()));
    if let Some((answer, violation)) = s.authority.check(&method, &path, &headers) {
        s.violations.extend(violation);
        return answer;
    }
    match headers
        .get("x-goog-user-project")
        .and_then(|v| v.to_str().ok())
    {
        Some(p) => s.quota_projects.push(p.to_owned()),
        None if s.needs_quota_project => {
            return google_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Your application is authenticating by using local Application Default Credentials. The billingbudgets.googleapis.com API requires a quota project, which is not set by default.",
            );
        }
        None => {}
    }
    let params: Vec<(String, String)> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        // Cloud Billing API v1 `billingAccounts.get` (same stand-in host).
        ("GET", ["billingAccounts", account]) => axum::Json(json!({
            "name": format!("billingAccounts/{account}"),
            "open": true,
            "displayName": "My Billing Account",
            "masterBillingAccount": "",
            "currencyCode": s.currency(),
        }))
        .into_response(),
        ("GET", ["billingAccounts", _, "budgets"]) => {
            let start: usize = params
                .iter()
                .find(|(k, _)| k == "pageToken")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = s.budgets.iter().skip(start).take(PAGE).cloned().collect();
            let mut answer = json!({ "budgets": page });
            if start + PAGE < s.budgets.len() {
                answer["nextPageToken"] = json!((start + PAGE).to_string());
            }
            axum::Json(answer).into_response()
        }
        ("POST", ["billingAccounts", account, "budgets"]) => {
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                s.violations.push("POST: not JSON".into());
                return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "not JSON");
            };
            if let Err(why) = check_budget(&b) {
                s.violations.push(format!("POST: {why}"));
                return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &why);
            }
            if b.get("etag").is_some() || b.get("name").is_some() {
                s.violations.push("POST with name or etag".into());
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "name and etag are output only on create",
                );
            }
            let currency = s.currency().to_owned();
            let given = &b["amount"]["specifiedAmount"]["currencyCode"];
            if given.as_str().is_some_and(|c| c != currency) {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    &format!(
                        "Budget currency code {given} must match the billing account's currency {currency}."
                    ),
                );
            }
            let mut stored = b;
            stored["amount"]["specifiedAmount"]["currencyCode"] = json!(currency);
            if let Some(projects) = stored["budgetFilter"]["projects"].as_array_mut() {
                for p in projects.iter_mut() {
                    *p = json!(stored_project(p.as_str().unwrap_or_default()));
                }
            }
            stored["name"] = json!(format!(
                "billingAccounts/{account}/budgets/b{}",
                s.budgets.len() + 1
            ));
            stored["etag"] = json!("e1");
            s.budgets.push(stored.clone());
            axum::Json(stored).into_response()
        }
        ("PATCH", ["billingAccounts", _, "budgets", _]) => {
            let mask = query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .find_map(|p| p.strip_prefix("updateMask="))
                .map(|m| m.replace("%2C", ","))
                .unwrap_or_default();
            if mask.is_empty() || mask.split(',').any(|f| !FIELDS.contains(&f)) {
                s.violations.push(format!("PATCH updateMask {mask:?}"));
                return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "updateMask");
            }
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "not JSON");
            };
            if let Err(why) = check_budget(&b) {
                s.violations.push(format!("PATCH: {why}"));
                return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &why);
            }
            let name = path.trim_start_matches("/v1/").to_owned();
            let Some(i) = s.budgets.iter().position(|x| x["name"] == name.as_str()) else {
                return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such budget");
            };
            if b["etag"] != s.budgets[i]["etag"] {
                return google_error(
                    StatusCode::CONFLICT,
                    "ABORTED",
                    "etag mismatch: the budget changed",
                );
            }
            let version: u32 = s.budgets[i]["etag"]
                .as_str()
                .and_then(|e| e.trim_start_matches('e').parse().ok())
                .unwrap_or(1);
            let theirs = s.budgets[i]["amount"]["specifiedAmount"]["currencyCode"].clone();
            let given = &b["amount"]["specifiedAmount"]["currencyCode"];
            if mask.split(',').any(|f| f == "amount") && given.is_string() && *given != theirs {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    &format!(
                        "Budget currency code {given} must match the existing budget's {theirs}."
                    ),
                );
            }
            let mut stored = s.budgets[i].clone();
            for f in mask.split(',') {
                stored[f] = b[f].clone();
            }
            stored["amount"]["specifiedAmount"]["currencyCode"] = theirs;
            if let Some(projects) = stored["budgetFilter"]["projects"].as_array_mut() {
                for p in projects.iter_mut() {
                    *p = json!(stored_project(p.as_str().unwrap_or_default()));
                }
            }
            stored["etag"] = json!(format!("e{}", version + 1));
            s.budgets[i] = stored.clone();
            axum::Json(stored).into_response()
        }
        _ => {
            s.violations
                .push(format!("{method} {path}: no such method"));
            google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method")
        }
    }
}

/// Starts the stand-in on a loopback port.
pub async fn budget_api() -> BudgetApi {
    let state = Arc::new(Mutex::new(BudgetState::default()));
    let app = axum::Router::new()
        .route("/v1/{*rest}", axum::routing::any(handle))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    BudgetApi {
        base: format!("http://{addr}"),
        state,
    }
}
