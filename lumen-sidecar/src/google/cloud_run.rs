//! The rollback on the Cloud Run Admin API v2: read the service (etag,
//! traffic), list its revisions, choose the newest Ready revision older
//! than the bad one that served traffic before it, PATCH only the
//! service's traffic (`updateMask=traffic`) to 100 % on it with the etag,
//! keeping every tag as a 0 % entry so tagged URLs keep resolving, poll the
//! long-running operation, verify `trafficStatuses`. A stale etag (409
//! ABORTED, 412, or 400 FAILED_PRECONDITION as AIP-154 allows) re-reads and
//! re-decides. Sending only the traffic (not the template) means the caller
//! needs `run.services.update` and not `iam.serviceAccounts.actAs` on the
//! service's runtime identity.
//!
//! Traffic then stays pinned to that revision: the next deploy does not
//! take traffic until it is set back to the latest revision
//! (`gcloud run services update-traffic SERVICE --to-latest`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::google::deployments::parse_rfc3339_ms;
use crate::google::rest::{ApiError, GoogleRest};
use crate::http_client::OffClock;

/// Google's endpoint.
pub const DEFAULT_RUN_API_BASE: &str = "https://run.googleapis.com";
/// Attempts of a whole read-decide-patch round (an etag conflict starts another).
pub const MAX_ROUNDS: u32 = 3;
/// Attempts of one call that fails in passing (no answer, 429, 5xx).
pub const MAX_CALL_ATTEMPTS: u32 = 4;
/// How often the operation is polled.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long the operation may take.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(600);

/// A change to the service (a rollback, min instances) not carried out.
#[derive(Debug, Clone, Error)]
pub enum RollbackError {
    /// The API failed (after retries, for failures in passing).
    #[error("Cloud Run Admin API: {0}")]
    Api(#[from] ApiError),
    /// No revision qualifies as the target.
    #[error("no revision to roll back to: none older than {bad} is Ready and served traffic")]
    NoTarget {
        /// The bad revision.
        bad: String,
    },
    /// The bad revision no longer serves (someone changed traffic): nothing done.
    #[error("{bad} no longer serves traffic ({serving} does): nothing done")]
    Superseded {
        /// The bad revision.
        bad: String,
        /// What serves now.
        serving: String,
    },
    /// The etag kept changing under us.
    #[error("the service kept changing (etag conflict {0} times): nothing done")]
    Conflicts(u32),
    /// The long-running operation failed.
    #[error("the update operation {name} failed: {message}")]
    OperationFailed {
        /// The operation.
        name: String,
        /// Its error.
        message: String,
    },
    /// The operation did not finish in time (the update may still land).
    #[error("the update operation {0} did not finish in time: the traffic change is not confirmed")]
    OperationTimeout(String),
    /// The operation finished but traffic is not where it should be.
    #[error("after the update, the service shows {found}, not {target}")]
    NotVerified {
        /// What was asked for.
        target: String,
        /// What the statuses show.
        found: String,
    },
}

/// A revision as the gate needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    /// Its short name (`api-00042-abc`).
    pub name: String,
    /// When it was created, Unix ms.
    pub created_ms: u64,
    /// Whether its `Ready` condition succeeded.
    pub ready: bool,
}

/// The short name of a revision resource name.
pub fn short_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl RevisionInfo {
    /// From a v2 Revision resource.
    pub fn from_resource(r: &Value) -> Option<Self> {
        let ready = r["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["state"] == "CONDITION_SUCCEEDED")
        });
        Some(Self {
            name: short_name(r["name"].as_str()?).to_owned(),
            created_ms: parse_rfc3339_ms(r["createTime"].as_str()?)?,
            ready,
        })
    }
}

/// The revision serving the most traffic, from the service's
/// `trafficStatuses` (a LATEST entry is the latest ready revision).
pub fn serving_revision(service: &Value) -> Option<String> {
    let statuses = service["trafficStatuses"].as_array()?;
    let top = statuses
        .iter()
        .filter(|s| s["percent"].as_u64().unwrap_or(0) > 0)
        .max_by_key(|s| s["percent"].as_u64().unwrap_or(0))?;
    match top["revision"].as_str() {
        Some(r) if !r.is_empty() => Some(short_name(r).to_owned()),
        _ if top["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST" => {
            service["latestReadyRevision"]
                .as_str()
                .map(|r| short_name(r).to_owned())
        }
        _ => None,
    }
}

/// The traffic of `service` with all of it on `revision`: one 100 % entry,
/// then every tagged entry kept at 0 % (a PATCH that leaves a tag out
/// deletes it, and its URL stops resolving).
pub fn pinned_traffic(service: &Value, revision: &str) -> Vec<Value> {
    split_traffic(service, &[(revision.to_owned(), 100)])
}

/// The revisions taking traffic and their percents, from the service's
/// `trafficStatuses` (a `LATEST` entry named as the latest ready revision),
/// largest first.
pub fn traffic_split(service: &Value) -> Vec<(String, u64)> {
    let mut split: Vec<(String, u64)> = Vec::new();
    for s in service["trafficStatuses"].as_array().into_iter().flatten() {
        let percent = s["percent"].as_u64().unwrap_or(0);
        if percent == 0 {
            continue;
        }
        let name = match s["revision"].as_str().filter(|r| !r.is_empty()) {
            Some(r) => short_name(r).to_owned(),
            None => match service["latestReadyRevision"].as_str() {
                Some(r) => short_name(r).to_owned(),
                None => continue,
            },
        };
        match split.iter_mut().find(|(n, _)| *n == name) {
            Some((_, p)) => *p += percent,
            None => split.push((name, percent)),
        }
    }
    split.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    split
}

/// `to` at `percent`, the rest shared among `from`'s other revisions in
/// proportion to their percents (largest remainders take the rounding),
/// revisions at 0 % left out.
pub fn stepped_split(from: &[(String, u64)], to: &str, percent: u64) -> Vec<(String, u64)> {
    let percent = percent.min(100);
    let others: Vec<&(String, u64)> = from.iter().filter(|(n, p)| n != to && *p > 0).collect();
    let weight: u64 = others.iter().map(|(_, p)| p).sum();
    let rest = 100 - percent;
    let mut split: Vec<(String, u64)> = Vec::new();
    if percent > 0 || weight == 0 {
        split.push((to.to_owned(), if weight == 0 { 100 } else { percent }));
    }
    if weight > 0 && rest > 0 {
        let mut shares: Vec<(String, u64, u64)> = others
            .iter()
            .map(|(n, p)| (n.clone(), rest * p / weight, rest * p % weight))
            .collect();
        let mut left = rest - shares.iter().map(|s| s.1).sum::<u64>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| shares[b].2.cmp(&shares[a].2).then(a.cmp(&b)));
        for i in order {
            if left == 0 {
                break;
            }
            shares[i].1 += 1;
            left -= 1;
        }
        split.extend(shares.into_iter().filter(|s| s.1 > 0).map(|s| (s.0, s.1)));
    }
    split
}

/// Whether the service's `trafficStatuses` show exactly `split`.
pub fn traffic_is(service: &Value, split: &[(String, u64)]) -> bool {
    let mut want = split.to_vec();
    want.retain(|(_, p)| *p > 0);
    want.sort();
    let mut now = traffic_split(service);
    now.sort();
    now == want
}

/// The traffic of `service` set to `split`: one entry per revision, then
/// every tagged entry kept at 0 % (a PATCH that leaves a tag out deletes
/// it, and its URL stops resolving).
pub fn split_traffic(service: &Value, split: &[(String, u64)]) -> Vec<Value> {
    let mut traffic: Vec<Value> = split
        .iter()
        .filter(|(_, p)| *p > 0)
        .map(|(revision, percent)| {
            json!({
                "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                "revision": revision,
                "percent": percent,
            })
        })
        .collect();
    for entry in service["traffic"].as_array().into_iter().flatten() {
        let Some(tag) = entry["tag"].as_str().filter(|t| !t.is_empty()) else {
            continue;
        };
        let mut kept = json!({ "type": entry["type"], "tag": tag, "percent": 0 });
        if let Some(r) = entry["revision"].as_str().filter(|r| !r.is_empty()) {
            kept["revision"] = json!(r);
        }
        traffic.push(kept);
    }
    traffic
}

/// The newest revision created before `bad` that is Ready and is in
/// `served` (revisions with traffic on record).
pub fn choose_target(
    revisions: &[RevisionInfo],
    bad: &str,
    served: &BTreeSet<String>,
) -> Option<RevisionInfo> {
    let bad_created = revisions.iter().find(|r| r.name == bad)?.created_ms;
    revisions
        .iter()
        .filter(|r| r.created_ms < bad_created && r.ready && served.contains(&r.name))
        .max_by_key(|r| r.created_ms)
        .cloned()
}

/// One service on the Admin API.
#[derive(Debug, Clone)]
pub struct CloudRunService {
    rest: GoogleRest,
    /// `projects/P/locations/R/services/S`.
    pub name: String,
    /// How often an operation is polled.
    pub poll_interval: Duration,
    /// How long an operation may take.
    pub operation_timeout: Duration,
}

impl CloudRunService {
    /// Service `service` of `project` in `region` at `base` with tokens from `tokens`.
    pub fn new(
        base: &str,
        tokens: std::sync::Arc<crate::google::AccessTokens>,
        project: &str,
        region: &str,
        service: &str,
    ) -> Self {
        Self {
            rest: GoogleRest::new(base, tokens),
            name: format!("projects/{project}/locations/{region}/services/{service}"),
            poll_interval: DEFAULT_POLL_INTERVAL,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// `GET` the service.
    pub async fn service(&self) -> Result<Value, ApiError> {
        self.rest
            .call("GET", &format!("/v2/{}", self.name), None)
            .await
    }

    /// Every revision of the service.
    pub async fn revisions(&self) -> Result<Vec<RevisionInfo>, ApiError> {
        Ok(self
            .rest
            .list(&format!("/v2/{}/revisions", self.name), "revisions")
            .await?
            .iter()
            .filter_map(RevisionInfo::from_resource)
            .collect())
    }

    /// `PATCH` only the traffic of the service as read (`service`, whose
    /// etag is sent): all of it on `revision`, its tags kept: the
    /// long-running operation's name.
    pub async fn pin_traffic(&self, service: &Value, revision: &str) -> Result<String, ApiError> {
        let body = json!({
            "etag": service["etag"],
            "traffic": pinned_traffic(service, revision),
        });
        self.patch(&body, "traffic").await
    }

    /// `PATCH` only the traffic of the service as read (`service`, whose
    /// etag is sent): `split`, its tags kept: the operation's name.
    pub async fn set_traffic(
        &self,
        service: &Value,
        split: &[(String, u64)],
    ) -> Result<String, ApiError> {
        let body = json!({
            "etag": service["etag"],
            "traffic": split_traffic(service, split),
        });
        self.patch(&body, "traffic").await
    }

    /// `PATCH` only the service-level `scaling.minInstanceCount` of the
    /// service as read (`service`, whose etag is sent): the long-running
    /// operation's name.
    pub async fn patch_min_instances(&self, service: &Value, min: u32) -> Result<String, ApiError> {
        let body = json!({
            "etag": service["etag"],
            "scaling": { "minInstanceCount": min },
        });
        self.patch(&body, "scaling.minInstanceCount").await
    }

    async fn patch(&self, body: &Value, mask: &str) -> Result<String, ApiError> {
        let op = self
            .rest
            .call(
                "PATCH",
                &format!("/v2/{}?updateMask={mask}", self.name),
                Some(body),
            )
            .await?;
        Ok(op["name"].as_str().unwrap_or_default().to_owned())
    }

    /// `GET` an operation.
    pub async fn operation(&self, name: &str) -> Result<Value, ApiError> {
        self.rest.call("GET", &format!("/v2/{name}"), None).await
    }
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    /// The revision rolled back from.
    pub from: String,
    /// The revision now serving all traffic.
    pub to: String,
    /// The operation that did it.
    pub operation: String,
    /// Etag conflicts met on the way (each re-read and re-decided).
    pub conflicts: u32,
    /// How to let the next deploy take traffic again.
    pub unpin_command: String,
}

/// A call retried while it fails in passing, waiting on the gate's clock.
pub(crate) async fn with_retries<T, F, Fut>(io: &OffClock, mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    let mut attempt = 1;
    loop {
        match io.run(call()).await {
            Err(e) if e.is_transient() && attempt < MAX_CALL_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "Cloud Run Admin API call failed; retrying");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The service, read with retries.
pub(crate) async fn read_service(api: &CloudRunService, io: &OffClock) -> Result<Value, ApiError> {
    with_retries(io, || {
        let api = api.clone();
        async move { api.service().await }
    })
    .await
}

/// Rolls `bad` back to the newest Ready revision before it that is in
/// `served`, and verifies it.
pub async fn roll_back(
    api: &CloudRunService,
    io: &OffClock,
    bad: &str,
    served: &BTreeSet<String>,
    service_id: &str,
) -> Result<RollbackReport, RollbackError> {
    let mut conflicts = 0;
    // The target of a PATCH already sent: an answer lost (a 500 or no
    // answer to a PATCH that was applied) is settled by reading the service.
    let mut sent: Option<String> = None;
    for _ in 0..MAX_ROUNDS {
        let service = read_service(api, io).await?;
        if let Some(target) = &sent
            && all_traffic_on(&service, target)
        {
            return Ok(RollbackReport {
                from: bad.to_owned(),
                to: target.clone(),
                operation: "(its answer was lost; the service read back shows it applied)"
                    .to_owned(),
                conflicts,
                unpin_command: format!(
                    "gcloud run services update-traffic {service_id} --to-latest"
                ),
            });
        }
        match serving_revision(&service) {
            Some(s) if s == bad => {}
            Some(serving) => {
                return Err(RollbackError::Superseded {
                    bad: bad.to_owned(),
                    serving,
                });
            }
            None => {
                return Err(RollbackError::Superseded {
                    bad: bad.to_owned(),
                    serving: "no revision".into(),
                });
            }
        }
        let revisions = with_retries(io, || {
            let api = api.clone();
            async move { api.revisions().await }
        })
        .await?;
        let target = choose_target(&revisions, bad, served).ok_or(RollbackError::NoTarget {
            bad: bad.to_owned(),
        })?;
        sent = Some(target.name.clone());
        let Some(operation) = send_patch(api, io, &service, || {
            let (api, service, to) = (api.clone(), service.clone(), target.name.clone());
            async move { api.pin_traffic(&service, &to).await }
        })
        .await?
        else {
            conflicts += 1;
            continue;
        };
        applied(
            api,
            io,
            &operation,
            |after| all_traffic_on(after, &target.name),
            &format!("100% on {}", target.name),
            traffic_summary,
        )
        .await?;
        return Ok(RollbackReport {
            from: bad.to_owned(),
            to: target.name,
            operation,
            conflicts,
            unpin_command: format!("gcloud run services update-traffic {service_id} --to-latest"),
        });
    }
    Err(RollbackError::Conflicts(conflicts))
}

/// Sets the service's traffic to `split` (with the etag; a conflict
/// re-reads), keeping its tags, waits for the operation and verifies the
/// service's `trafficStatuses` show it: the operation's name. Nothing is
/// sent when the traffic already is `split`.
pub async fn set_split(
    api: &CloudRunService,
    io: &OffClock,
    split: &[(String, u64)],
) -> Result<String, RollbackError> {
    let wanted = split
        .iter()
        .map(|(r, p)| format!("{r} {p}%"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut conflicts = 0;
    let mut sent = false;
    for _ in 0..MAX_ROUNDS {
        let service = read_service(api, io).await?;
        if traffic_is(&service, split) {
            return Ok(if sent {
                "(its answer was lost; the service read back shows it applied)".to_owned()
            } else {
                "(no change: the traffic already was so)".to_owned()
            });
        }
        sent = true;
        let Some(operation) = send_patch(api, io, &service, || {
            let (api, service, split) = (api.clone(), service.clone(), split.to_vec());
            async move { api.set_traffic(&service, &split).await }
        })
        .await?
        else {
            conflicts += 1;
            continue;
        };
        return applied(
            api,
            io,
            &operation,
            |after| traffic_is(after, split),
            &wanted,
            traffic_summary,
        )
        .await;
    }
    Err(RollbackError::Conflicts(conflicts))
}

/// Sets the service's minimum instances to `min` (with the etag; a
/// conflict re-reads), waits for the operation and verifies the service
/// says so: the operation's name.
pub async fn set_min_instances(
    api: &CloudRunService,
    io: &OffClock,
    min: u32,
) -> Result<String, RollbackError> {
    let mut conflicts = 0;
    for _ in 0..MAX_ROUNDS {
        let service = read_service(api, io).await?;
        let Some(operation) = send_patch(api, io, &service, || {
            let (api, service) = (api.clone(), service.clone());
            async move { api.patch_min_instances(&service, min).await }
        })
        .await?
        else {
            conflicts += 1;
            continue;
        };
        let min_of = |s: &Value| s["scaling"]["minInstanceCount"].as_u64();
        return applied(
            api,
            io,
            &operation,
            |after| min_of(after) == Some(u64::from(min)),
            &format!("minInstanceCount {min}"),
            |after| format!("minInstanceCount {:?}", min_of(after)),
        )
        .await;
    }
    Err(RollbackError::Conflicts(conflicts))
}

/// Sends a PATCH of `service` (read with its etag) with retries: the
/// operation's name, or `None` when it was refused because the service
/// changed since it was read (a conflict: read it and decide again).
async fn send_patch<F, Fut>(
    api: &CloudRunService,
    io: &OffClock,
    service: &Value,
    patch: F,
) -> Result<Option<String>, RollbackError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<String, ApiError>> + Send + 'static,
{
    match with_retries(io, patch).await {
        Ok(operation) => Ok(Some(operation)),
        Err(e) if e.is_stale() && changed_since(api, io, service).await? => {
            tracing::warn!(error = %e, "the service changed since it was read; reading it again");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits for `operation` and reads the service back: the operation's
/// name when `holds` it, else what was `found` against the `target`.
async fn applied(
    api: &CloudRunService,
    io: &OffClock,
    operation: &str,
    holds: impl Fn(&Value) -> bool,
    target: &str,
    found: impl Fn(&Value) -> String,
) -> Result<String, RollbackError> {
    wait_for(api, io, operation).await?;
    let after = read_service(api, io).await?;
    if holds(&after) {
        Ok(operation.to_owned())
    } else {
        Err(RollbackError::NotVerified {
            target: target.to_owned(),
            found: found(&after),
        })
    }
}

/// Whether the service's etag moved since `read` was read: what makes a
/// refused PATCH a conflict to decide again rather than a refusal that
/// stands (400 FAILED_PRECONDITION also means "revision not ready").
async fn changed_since(
    api: &CloudRunService,
    io: &OffClock,
    read: &Value,
) -> Result<bool, ApiError> {
    let now = read_service(api, io).await?;
    Ok(now["etag"] != read["etag"])
}

async fn wait_for(
    api: &CloudRunService,
    io: &OffClock,
    operation: &str,
) -> Result<(), RollbackError> {
    let deadline = tokio::time::Instant::now() + api.operation_timeout;
    loop {
        let op = with_retries(io, || {
            let (api, name) = (api.clone(), operation.to_owned());
            async move { api.operation(&name).await }
        })
        .await?;
        if op["done"] == true {
            if let Some(error) = op.get("error") {
                return Err(RollbackError::OperationFailed {
                    name: operation.to_owned(),
                    message: format!(
                        "{} (code {})",
                        error["message"].as_str().unwrap_or("no message"),
                        error["code"]
                    ),
                });
            }
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RollbackError::OperationTimeout(operation.to_owned()));
        }
        tokio::time::sleep(api.poll_interval).await;
    }
}

/// Whether the service's `trafficStatuses` put 100 % on `revision`.
pub fn all_traffic_on(service: &Value, revision: &str) -> bool {
    service["trafficStatuses"].as_array().is_some_and(|ss| {
        ss.iter().any(|s| {
            s["revision"].as_str().map(short_name) == Some(revision)
                && s["percent"].as_u64() == Some(100)
        })
    })
}

/// `trafficStatuses` in a few words (`api-00002 100%`).
pub fn traffic_summary(service: &Value) -> String {
    let parts: Vec<String> = service["trafficStatuses"]
        .as_array()
        .map(|ss| {
            ss.iter()
                .map(|s| {
                    format!(
                        "{} {}%",
                        s["revision"]
                            .as_str()
                            .filter(|r| !r.is_empty())
                            .unwrap_or("LATEST"),
                        s["percent"].as_u64().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty() {
        "no traffic statuses".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(name: &str, created_ms: u64, ready: bool) -> RevisionInfo {
        RevisionInfo {
            name: name.into(),
            created_ms,
            ready,
        }
    }

    #[test]
    fn the_target_is_the_newest_older_ready_revision_that_served() {
        let revisions = [
            rev("api-1", 1, true),
            rev("api-2", 2, true),
            rev("api-3", 3, false),
            rev("api-4", 4, true),
            rev("api-5", 5, true),
        ];
        let served: BTreeSet<String> = ["api-1", "api-2", "api-3", "api-4", "api-5"]
            .map(str::to_owned)
            .into();
        // api-3 is not Ready; api-5 is newer than the bad one.
        assert_eq!(
            choose_target(&revisions, "api-4", &served).map(|r| r.name),
            Some("api-2".into())
        );
        let only_1: BTreeSet<String> = ["api-1".to_owned()].into();
        assert_eq!(
            choose_target(&revisions, "api-4", &only_1).map(|r| r.name),
            Some("api-1".into())
        );
        assert_eq!(choose_target(&revisions, "api-1", &served), None);
        assert_eq!(choose_target(&revisions, "nope", &served), None);
    }

    #[test]
    fn the_serving_revision_comes_from_traffic_statuses() {
        let s = json!({
            "latestReadyRevision": "projects/p/locations/r/services/api/revisions/api-3",
            "trafficStatuses": [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-2", "percent": 10}
            ]
        });
        assert_eq!(serving_revision(&s), Some("api-3".into()));
        assert_eq!(traffic_summary(&s), "LATEST 90%, api-2 10%");
        assert_eq!(serving_revision(&json!({"trafficStatuses": []})), None);
    }

    #[test]
    fn a_pin_keeps_every_tag_at_zero_percent() {
        let s = json!({"traffic": [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100, "tag": "current"},
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-1", "tag": "stable"},
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-2", "percent": 0},
        ]});
        assert_eq!(
            pinned_traffic(&s, "api-1"),
            vec![
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-1", "percent": 100}),
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "tag": "current", "percent": 0}),
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-1", "tag": "stable", "percent": 0}),
            ]
        );
    }

    #[test]
    fn a_step_shares_the_rest_among_the_old_revisions_as_they_were() {
        let from = vec![("api-1".to_owned(), 70), ("api-2".to_owned(), 30)];
        let at = |p| stepped_split(&from, "api-3", p);
        assert_eq!(
            at(5),
            vec![
                ("api-3".into(), 5),
                ("api-1".into(), 67),
                ("api-2".into(), 28)
            ]
        );
        assert_eq!(at(100), vec![("api-3".to_owned(), 100)]);
        for p in 0..=100 {
            assert_eq!(at(p).iter().map(|s| s.1).sum::<u64>(), 100, "{p}");
        }
        // Back to where it was.
        assert_eq!(at(0), from);
        // A service split in three at 33/33/34 and a new revision at 10 %.
        let three = vec![
            ("a".to_owned(), 34),
            ("b".to_owned(), 33),
            ("c".to_owned(), 33),
        ];
        let s = stepped_split(&three, "d", 10);
        assert_eq!(s.iter().map(|s| s.1).sum::<u64>(), 100);
        assert_eq!(s[0], ("d".to_owned(), 10));
    }

    #[test]
    fn the_split_reads_latest_by_name_and_a_set_keeps_the_tags() {
        let s = json!({
            "latestReadyRevision": "projects/p/locations/r/services/api/revisions/api-3",
            "traffic": [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-2", "percent": 10},
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-1", "tag": "stable"},
            ],
            "trafficStatuses": [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-2", "percent": 10},
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-1", "tag": "stable"},
            ]
        });
        let split = traffic_split(&s);
        assert_eq!(split, vec![("api-3".into(), 90), ("api-2".into(), 10)]);
        assert!(traffic_is(
            &s,
            &[("api-2".into(), 10), ("api-3".into(), 90)]
        ));
        assert!(!traffic_is(&s, &[("api-3".into(), 100)]));
        assert_eq!(
            split_traffic(&s, &[("api-4".into(), 5), ("api-3".into(), 95)]),
            vec![
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-4", "percent": 5}),
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-3", "percent": 95}),
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-1", "tag": "stable", "percent": 0}),
            ]
        );
    }

    #[test]
    fn revisions_are_ready_only_when_their_condition_succeeded() {
        let r = json!({
            "name": "projects/p/locations/r/services/api/revisions/api-00002-xyz",
            "createTime": "2026-12-01T10:00:00.123456Z",
            "conditions": [{"type": "Ready", "state": "CONDITION_SUCCEEDED"}]
        });
        let info = RevisionInfo::from_resource(&r).expect("a revision");
        assert_eq!(info.name, "api-00002-xyz");
        assert!(info.ready);
        let mut failed = r.clone();
        failed["conditions"][0]["state"] = json!("CONDITION_FAILED");
        assert!(
            !RevisionInfo::from_resource(&failed)
                .expect("a revision")
                .ready
        );
    }
}
