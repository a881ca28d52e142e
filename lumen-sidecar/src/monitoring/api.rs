//! The Cloud Monitoring REST API: dashboards (v1), notification channels and
//! alert policies (v3), created or updated by display name, so that running
//! `deploy`/`apply` twice changes and duplicates nothing.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use thiserror::Error;

/// Google's endpoint.
pub const DEFAULT_API_BASE: &str = "https://monitoring.googleapis.com";

/// A call that failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// No answer.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// An error status.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Start of the answer.
        body: String,
    },
}

/// What `deploy`/`apply` did to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created; its resource name.
    Created(String),
    /// Updated in place; its resource name.
    Updated(String),
    /// Left alone (dry run): what would be done.
    WouldApply(String),
}

/// An authenticated client of one project.
#[derive(Debug, Clone)]
pub struct MonitoringApi {
    client: crate::https::HttpsClient,
    base: String,
    token: String,
    /// The project.
    pub project: String,
}

impl MonitoringApi {
    /// A client of `base` for `project` with `token`.
    pub fn new(base: &str, project: &str, token: &str) -> Self {
        Self {
            client: crate::https::https_client(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            project: project.to_owned(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let transport = |reason: String| ApiError::Transport {
            method: method.to_owned(),
            url: url.clone(),
            reason,
        };
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| transport(e.to_string()))?;
        let answer = crate::https::exchange(
            &self.client,
            request,
            Some(Duration::from_secs(30)),
            16 * 1024 * 1024,
        )
        .await
        .map_err(|e| transport(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(ApiError::Status {
                method: method.to_owned(),
                url: url.clone(),
                status: answer.status.as_u16(),
                body: answer.text(300),
            });
        }
        Ok(if answer.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&answer.body).map_err(|e| transport(format!("not JSON: {e}")))?
        })
    }

    /// Every item of a paginated list.
    async fn list(&self, path: &str, field: &str) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match &token {
                Some(t) => format!("{path}?pageToken={}", crate::https::percent_encode(t)),
                None => path.to_owned(),
            };
            let answer = self.call("GET", &page, None).await?;
            items.extend(answer[field].as_array().cloned().unwrap_or_default());
            match answer["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// Creates or replaces the dashboard with `dashboard`'s display name.
    pub async fn upsert_dashboard(
        &self,
        dashboard: &Value,
        dry_run: bool,
    ) -> Result<Change, ApiError> {
        let path = format!("/v1/projects/{}/dashboards", self.project);
        let name = dashboard["displayName"].as_str().unwrap_or_default();
        let existing = self
            .list(&path, "dashboards")
            .await?
            .into_iter()
            .find(|d| d["displayName"] == name);
        match existing {
            Some(found) => {
                let resource = found["name"].as_str().unwrap_or_default().to_owned();
                if dry_run {
                    return Ok(Change::WouldApply(format!("update {resource}")));
                }
                let mut body = dashboard.clone();
                body["name"] = found["name"].clone();
                body["etag"] = found["etag"].clone();
                self.call("PATCH", &format!("/v1/{resource}"), Some(&body))
                    .await?;
                Ok(Change::Updated(resource))
            }
            None if dry_run => Ok(Change::WouldApply(format!("create dashboard {name:?}"))),
            None => {
                let created = self.call("POST", &path, Some(dashboard)).await?;
                Ok(Change::Created(
                    created["name"].as_str().unwrap_or_default().to_owned(),
                ))
            }
        }
    }

    /// The channel named `display_name`, if any.
    pub async fn find_channel(&self, display_name: &str) -> Result<Option<String>, ApiError> {
        let path = format!("/v3/projects/{}/notificationChannels", self.project);
        Ok(self
            .list(&path, "notificationChannels")
            .await?
            .into_iter()
            .find(|c| c["displayName"] == display_name)
            .and_then(|c| c["name"].as_str().map(str::to_owned)))
    }

    /// Creates a notification channel.
    pub async fn create_channel(&self, channel: &Value) -> Result<String, ApiError> {
        let path = format!("/v3/projects/{}/notificationChannels", self.project);
        let created = self.call("POST", &path, Some(channel)).await?;
        Ok(created["name"].as_str().unwrap_or_default().to_owned())
    }

    /// Creates or replaces the policy with `policy`'s display name.
    pub async fn upsert_policy(&self, policy: &Value) -> Result<Change, ApiError> {
        let path = format!("/v3/projects/{}/alertPolicies", self.project);
        let name = policy["displayName"].as_str().unwrap_or_default();
        let existing = self
            .list(&path, "alertPolicies")
            .await?
            .into_iter()
            .find(|p| p["displayName"] == name);
        match existing {
            Some(found) => {
                let resource = found["name"].as_str().unwrap_or_default().to_owned();
                let mut body = policy.clone();
                body["name"] = found["name"].clone();
                self.call("PATCH", &format!("/v3/{resource}"), Some(&body))
                    .await?;
                Ok(Change::Updated(resource))
            }
            None => {
                let created = self.call("POST", &path, Some(policy)).await?;
                Ok(Change::Created(
                    created["name"].as_str().unwrap_or_default().to_owned(),
                ))
            }
        }
    }
}

impl MonitoringApi {
    /// Creates the Service `id` unless it exists.
    pub async fn ensure_service(&self, id: &str, service: &Value) -> Result<Change, ApiError> {
        let path = format!("/v3/projects/{}/services/{id}", self.project);
        match self.call("GET", &path, None).await {
            Ok(found) => Ok(Change::Updated(
                found["name"].as_str().unwrap_or(&path).to_owned(),
            )),
            Err(ApiError::Status { status: 404, .. }) => {
                let created = self
                    .call(
                        "POST",
                        &format!("/v3/projects/{}/services?serviceId={id}", self.project),
                        Some(service),
                    )
                    .await?;
                Ok(Change::Created(
                    created["name"].as_str().unwrap_or_default().to_owned(),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates or replaces the SLO `id` of Service `service_id`.
    pub async fn upsert_slo(
        &self,
        service_id: &str,
        id: &str,
        slo: &Value,
    ) -> Result<Change, ApiError> {
        let base = format!(
            "/v3/projects/{}/services/{service_id}/serviceLevelObjectives",
            self.project
        );
        match self.call("GET", &format!("{base}/{id}"), None).await {
            Ok(found) => {
                let name = found["name"].as_str().unwrap_or_default().to_owned();
                self.call("PATCH", &format!("/v3/{name}"), Some(slo))
                    .await?;
                Ok(Change::Updated(name))
            }
            Err(ApiError::Status { status: 404, .. }) => {
                let created = self
                    .call(
                        "POST",
                        &format!("{base}?serviceLevelObjectiveId={id}"),
                        Some(slo),
                    )
                    .await?;
                Ok(Change::Created(
                    created["name"].as_str().unwrap_or_default().to_owned(),
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// The console URL of a dashboard resource name.
pub fn console_url(resource: &str, project: &str) -> String {
    let id = resource.rsplit('/').next().unwrap_or(resource);
    format!("https://console.cloud.google.com/monitoring/dashboards/builder/{id}?project={project}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_tokens_are_percent_encoded() {
        assert_eq!(crate::https::percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(crate::https::percent_encode("Ab-9._~"), "Ab-9._~");
    }
}
