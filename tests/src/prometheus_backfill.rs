//! A real Prometheus holding a scripted past: sidecars' `/metrics` scrapes
//! taken one after another, each stamped with a time of the script (as if
//! Prometheus had scraped them every 15 s), written as OpenMetrics, turned
//! into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`, and
//! served by `prometheus`. Queries at those past times then answer exactly
//! what a Prometheus scraping those sidecars would have.

use std::path::PathBuf;
use std::process::Command;

use crate::{Proc, find_program, free_port, wait_ready};

/// Scrapes gathered for the backfill.
#[derive(Debug, Default)]
pub struct Backfill {
    lines: Vec<String>,
}

/// `name{labels} value` with `extra` labels added.
fn with_labels(line: &str, extra: &str) -> Option<(String, String)> {
    let (series, value) = line.rsplit_once(' ')?;
    let series = match series.split_once('{') {
        Some((name, rest)) => {
            let rest = rest.strip_suffix('}')?;
            if rest.is_empty() {
                format!("{name}{{{extra}}}")
            } else {
                format!("{name}{{{rest},{extra}}}")
            }
        }
        None => format!("{series}{{{extra}}}"),
    };
    Some((series, value.to_owned()))
}

impl Backfill {
    /// Adds one scrape of `metrics` (Prometheus text) from `instance`, taken at `at_ms`.
    pub fn add_scrape(&mut self, metrics: &str, instance: &str, at_ms: u64) {
        let extra = format!("instance=\"{instance}\",job=\"lumen\"");
        for line in metrics.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = with_labels(line, &extra) {
                self.lines.push(format!(
                    "{series} {value} {}.{:03}",
                    at_ms / 1000,
                    at_ms % 1000
                ));
            }
        }
    }

    /// Samples gathered.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether none were gathered.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Writes the blocks and starts Prometheus on them: the process, its
    /// query API's base URL, its directory.
    pub async fn serve(self, name: &str) -> (Proc, String, PathBuf) {
        let promtool = find_program("promtool")
            .expect("promtool is installed with prometheus (scripts/test.sh)");
        let prometheus =
            find_program("prometheus").expect("prometheus is installed (scripts/test.sh)");
        let dir = std::env::temp_dir().join(format!("lumen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let input = dir.join("scrapes.om");
        let mut text = self.lines.join("\n");
        text.push_str("\n# EOF\n");
        std::fs::write(&input, text).expect("write the OpenMetrics file");
        let data = dir.join("data");
        let out = Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("config");
        let port = free_port();
        let mut cmd = Command::new(prometheus);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=30d")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", cmd);
        let api = format!("http://127.0.0.1:{port}");
        wait_ready(&api, "/-/ready").await;
        (proc, api, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_added_to_every_sample() {
        assert_eq!(
            with_labels("a_total{x=\"1\"} 5", "instance=\"i\""),
            Some(("a_total{x=\"1\",instance=\"i\"}".into(), "5".into()))
        );
        assert_eq!(
            with_labels("up 1", "instance=\"i\""),
            Some(("up{instance=\"i\"}".into(), "1".into()))
        );
    }
}
