//! The dashboard definition (`deploy/dashboards/lumen.yaml`) and what it
//! renders to: a Cloud Monitoring `projects.dashboards` resource or a
//! Grafana dashboard for a Prometheus data source.

use serde::Deserialize;
use serde_json::{Value, json};

/// The definition shipped with the sidecar (overridable with `--file`).
pub const BUILTIN_DASHBOARD: &str = include_str!("../../assets/dashboard.yaml");
/// Columns of Cloud Monitoring's mosaic layout.
pub const MOSAIC_COLUMNS: u32 = 48;
/// Height of a row, in mosaic units.
pub const ROW_HEIGHT: u32 = 16;

/// A threshold line or colour band.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Where.
    pub value: f64,
    /// Scorecards: `RED` or `YELLOW`.
    #[serde(default)]
    pub color: Option<String>,
    /// Scorecards: `ABOVE` or `BELOW`.
    #[serde(default)]
    pub direction: Option<String>,
}

/// What a widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetKind {
    /// One number with colour thresholds.
    Scorecard,
    /// Lines over time.
    Xy,
    /// A logs panel.
    Logs,
}

/// One widget.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: WidgetKind,
    /// PromQL queries (left axis).
    #[serde(default)]
    pub queries: Vec<String>,
    /// PromQL queries on the right axis.
    #[serde(default)]
    pub y2_queries: Vec<String>,
    /// Thresholds.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Logs filter (logs panels).
    #[serde(default)]
    pub filter: Option<String>,
}

/// One row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Title.
    pub title: String,
    /// Widgets, left to right.
    pub widgets: Vec<Widget>,
}

/// The whole dashboard.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardDef {
    /// Display name (also how `deploy` finds an existing one).
    pub display_name: String,
    /// Rows, top to bottom.
    pub rows: Vec<Row>,
}

impl DashboardDef {
    /// Parses a definition.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    /// Every PromQL query of every widget.
    pub fn queries(&self) -> impl Iterator<Item = &str> {
        self.rows
            .iter()
            .flat_map(|r| &r.widgets)
            .flat_map(|w| w.queries.iter().chain(&w.y2_queries))
            .map(String::as_str)
    }
}

fn cm_query(q: &str) -> Value {
    json!({ "prometheusQuery": q })
}

fn cm_widget(w: &Widget, project: &str) -> Value {
    match w.kind {
        WidgetKind::Scorecard => {
            let thresholds: Vec<Value> = w
                .thresholds
                .iter()
                .map(|t| json!({ "value": t.value, "color": t.color.clone().unwrap_or_else(|| "RED".into()), "direction": t.direction.clone().unwrap_or_else(|| "BELOW".into()) }))
                .collect();
            json!({ "title": w.title, "scorecard": {
                "timeSeriesQuery": cm_query(w.queries.first().map_or("", String::as_str)),
                "sparkChartView": { "sparkChartType": "SPARK_LINE" },
                "thresholds": thresholds,
            }})
        }
        WidgetKind::Xy => {
            let mut data_sets: Vec<Value> = w
                .queries
                .iter()
                .map(|q| json!({ "timeSeriesQuery": cm_query(q), "plotType": "LINE", "targetAxis": "Y1" }))
                .collect();
            data_sets.extend(
                w.y2_queries
                    .iter()
                    .map(|q| json!({ "timeSeriesQuery": cm_query(q), "plotType": "LINE", "targetAxis": "Y2" })),
            );
            let thresholds: Vec<Value> = w
                .thresholds
                .iter()
                .map(|t| json!({ "value": t.value, "targetAxis": "Y1" }))
                .collect();
            let mut chart = json!({ "dataSets": data_sets, "thresholds": thresholds, "yAxis": { "scale": "LINEAR" } });
            if !w.y2_queries.is_empty() {
                chart["y2Axis"] = json!({ "scale": "LINEAR" });
            }
            json!({ "title": w.title, "xyChart": chart })
        }
        WidgetKind::Logs => json!({ "title": w.title, "logsPanel": {
            "filter": w.filter.clone().unwrap_or_default(),
            "resourceNames": [format!("projects/{project}")],
        }}),
    }
}

/// The Cloud Monitoring dashboard resource (without `name`/`etag`).
pub fn cloud_monitoring(def: &DashboardDef, project: &str) -> Value {
    let mut tiles = Vec::new();
    for (r, row) in def.rows.iter().enumerate() {
        let n = row.widgets.len().max(1) as u32;
        let width = MOSAIC_COLUMNS / n;
        for (i, w) in row.widgets.iter().enumerate() {
            tiles.push(json!({
                "xPos": width * i as u32,
                "yPos": ROW_HEIGHT * r as u32,
                "width": width,
                "height": ROW_HEIGHT,
                "widget": cm_widget(w, project),
            }));
        }
    }
    json!({ "displayName": def.display_name, "mosaicLayout": { "columns": MOSAIC_COLUMNS, "tiles": tiles } })
}

/// Grafana colour steps for scorecard bands. Grafana colours a value by the
/// highest step at or below it, so steps go up in value: below the lowest
/// `BELOW` threshold its colour (red), then each next threshold's colour,
/// and green from the highest one up (higher is better).
pub fn band_steps(thresholds: &[Threshold]) -> Vec<Value> {
    let mut below: Vec<&Threshold> = thresholds.iter().collect();
    below.sort_by(|a, b| a.value.total_cmp(&b.value));
    let colour = |t: &Threshold| {
        t.color
            .clone()
            .unwrap_or_else(|| "RED".into())
            .to_lowercase()
    };
    let mut steps = vec![json!({
        "color": below.first().map_or_else(|| "green".to_owned(), |t| colour(t)),
        "value": null,
    })];
    for (i, t) in below.iter().enumerate() {
        let next = below
            .get(i + 1)
            .map_or_else(|| "green".to_owned(), |n| colour(n));
        steps.push(json!({ "color": next, "value": t.value }));
    }
    steps
}

/// Grafana steps for threshold lines on a chart: transparent below, a red
/// line at each threshold (drawn with `thresholdsStyle: line`).
pub fn line_steps(thresholds: &[Threshold]) -> Vec<Value> {
    let mut values: Vec<f64> = thresholds.iter().map(|t| t.value).collect();
    values.sort_by(f64::total_cmp);
    std::iter::once(json!({ "color": "transparent", "value": null }))
        .chain(
            values
                .into_iter()
                .map(|v| json!({ "color": "red", "value": v })),
        )
        .collect()
}

/// A Grafana dashboard for a Prometheus data source (`${datasource}`).
pub fn grafana(def: &DashboardDef) -> Value {
    let mut panels = Vec::new();
    let mut id = 1;
    for (r, row) in def.rows.iter().enumerate() {
        let n = row.widgets.len().max(1) as u32;
        let width = 24 / n;
        for (i, w) in row.widgets.iter().enumerate() {
            let grid = json!({ "x": width * i as u32, "y": 8 * r as u32, "w": width, "h": 8 });
            let targets: Vec<Value> = w
                .queries
                .iter()
                .chain(&w.y2_queries)
                .enumerate()
                .map(|(k, q)| json!({ "refId": char::from(b'A' + k as u8).to_string(), "expr": q, "datasource": { "type": "prometheus", "uid": "${datasource}" } }))
                .collect();
            let panel = match w.kind {
                WidgetKind::Scorecard => {
                    json!({ "type": "stat", "targets": targets, "fieldConfig": { "defaults": { "thresholds": { "mode": "absolute", "steps": band_steps(&w.thresholds) } } } })
                }
                WidgetKind::Xy => {
                    json!({ "type": "timeseries", "targets": targets, "fieldConfig": { "defaults": {
                        "thresholds": { "mode": "absolute", "steps": line_steps(&w.thresholds) },
                        "custom": { "thresholdsStyle": { "mode": "line" } },
                    } } })
                }
                WidgetKind::Logs => {
                    json!({ "type": "text", "options": { "mode": "markdown", "content": format!("Logs live in Cloud Logging: `{}`", w.filter.clone().unwrap_or_default()) } })
                }
            };
            let mut panel = panel;
            panel["id"] = json!(id);
            panel["title"] = json!(w.title);
            panel["gridPos"] = grid;
            panels.push(panel);
            id += 1;
        }
    }
    json!({
        "title": def.display_name,
        "uid": "lumen",
        "schemaVersion": 39,
        "time": { "from": "now-24h", "to": "now" },
        "templating": { "list": [{ "name": "datasource", "type": "datasource", "query": "prometheus" }] },
        "panels": panels,
    })
}
