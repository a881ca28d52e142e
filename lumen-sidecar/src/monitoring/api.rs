//! The Cloud Monitoring REST API: dashboards (v1), notification channels and
//! alert policies (v3), created or updated by display name, so that running
//! `deploy`/`apply` twice changes and duplicates nothing.

use serde_json::Value;

pub use crate::google::rest::ApiError;
use crate::google::rest::GoogleRest;

/// Google's endpoint.
pub const DEFAULT_API_BASE: &str = "https://monitoring.googleapis.com";

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
    rest: GoogleRest,
    /// The project.
    pub project: String,
}

impl MonitoringApi {
    /// A client of `base` for `project` with tokens from `tokens`.
    pub fn new(
        base: &str,
        project: &str,
        tokens: std::sync::Arc<crate::google::AccessTokens>,
    ) -> Self {
        Self {
            rest: GoogleRest::new(base, tokens),
            project: project.to_owned(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.rest.call(method, path, body).await
    }

    async fn list(&self, path: &str, field: &str) -> Result<Vec<Value>, ApiError> {
        self.rest.list(path, field).await
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
    fn console_urls_name_the_dashboard() {
        assert_eq!(
            super::console_url("projects/p/dashboards/abc", "p"),
            "https://console.cloud.google.com/monitoring/dashboards/builder/abc?project=p"
        );
    }
}
