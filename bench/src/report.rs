//! Reading bench output and rewriting sections of `bench/RESULTS.md`.

use std::path::{Path, PathBuf};

/// The workspace root (where `target/` and `bench/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate sits in the workspace")
        .to_owned()
}

/// Builds the sidecar in release with the same cargo and returns its
/// binary, for the bins that run it as users do.
pub fn release_sidecar() -> PathBuf {
    let build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace_root())
            .args([
                "build",
                "--release",
                "-p",
                "lumen-sidecar",
                "--bin",
                "lumen-sidecar",
            ])
            .status()
            .expect("cargo runs");
    assert!(build.success(), "building the sidecar");
    workspace_root().join("target/release/lumen-sidecar")
}

/// Where the bins write their figures for the `results` bin:
/// `target/lumen-bench/FILE`.
pub fn figures_path(file: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join("lumen-bench")
        .join(file)
}

/// Writes a bin's figures to [`figures_path`]`(file)` as JSON.
pub fn write_figures(file: &str, figures: &serde_json::Value) {
    let path = figures_path(file);
    std::fs::create_dir_all(path.parent().expect("a file in a folder")).expect("target dir");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(figures).expect("JSON values serialise"),
    )
    .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
}

/// Criterion's median estimate, in ns, for `group`/`id` (the group's `/`
/// written as `_`, as criterion names its folders).
pub fn criterion_median_ns(group: &str, id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let path = target
        .join("criterion")
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// What the figures were measured on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Cores available.
    pub cores: usize,
    /// `rustc --version`.
    pub rustc: String,
}

impl Machine {
    /// Reads this machine's.
    pub fn here() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            rustc,
        }
    }

    /// One line for a results section.
    pub fn line(&self) -> String {
        format!("{} cores, {}, {}", self.cores, self.cpu, self.rustc)
    }
}

/// Replaces what stands between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
/// in `document` with `body`; appends the section if it is not there.
pub fn replace_section(document: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    match (document.find(&begin), document.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{begin}\n{body}\n{}", &document[..b], &document[e..])
        }
        _ => format!("{}\n{begin}\n{body}\n{end}\n", document.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_or_appended() {
        let doc = "# R\n<!-- a:begin -->\nold\n<!-- a:end -->\ntail\n";
        assert_eq!(
            replace_section(doc, "a", "new"),
            "# R\n<!-- a:begin -->\nnew\n<!-- a:end -->\ntail\n"
        );
        assert_eq!(
            replace_section("# R\n", "b", "x"),
            "# R\n<!-- b:begin -->\nx\n<!-- b:end -->\n"
        );
    }
}
