//! The sidecar as the Cloud Run kit runs it, restarted with a full day: the
//! release binary in a memory cgroup limited to the kit's sidecar limit
//! (read from `deploy/cloudrun/service.yaml`, which the sidecar then reads
//! from its cgroup as on Cloud Run), its state on a tmpfs of the kit's
//! volume size (charged to the same cgroup, as an in-memory volume is),
//! fed a production day (64 routes, up to 3,000 requests a route-minute,
//! lognormal σ 1, 50 million requests) over HTTP, stopped with SIGTERM and
//! started again; then a 24 h evaluation and a checkpoint. Reported: the
//! process's peak RSS and the state files against the limit.
//!
//! Needs root (a cgroup and a tmpfs). Run:
//! `cargo run -p lumen-bench --release --bin restart_memory`; it writes
//! `target/lumen-bench/restart_memory.json` for the `results` bin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lumen_bench::{workspace_root, write_figures};
use lumen_tests::workload::Workload;
use lumen_tests::{Proc, Tmpfs, free_port, get_ok, wait_ready};

/// A size such as `256Mi` or `64Mi`, bytes.
fn kube_size(text: &str) -> u64 {
    let text = text.trim().trim_matches('"');
    let (number, scale) = [("Gi", 1_u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        .iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))
        .unwrap_or((text, 1));
    number.parse::<u64>().expect("a size") * scale
}

/// The kit's sidecar memory limit and state volume size.
fn kit_sizes() -> (u64, u64) {
    let yaml = std::fs::read_to_string(workspace_root().join("deploy/cloudrun/service.yaml"))
        .expect("the kit's service.yaml");
    let sidecar = &yaml[yaml
        .find("- name: lumen-sidecar")
        .expect("the sidecar container")..];
    let limit = sidecar
        .lines()
        .find_map(|l| l.trim().strip_prefix("memory:"))
        .map(kube_size)
        .expect("the sidecar's memory limit");
    let volume = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("sizeLimit:"))
        .map(kube_size)
        .expect("the state volume's size limit");
    (limit, volume)
}

/// A memory cgroup (v1 or v2) limited to `bytes`, removed when dropped.
struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    fn new(bytes: u64) -> Self {
        let name = format!("lumen-bench-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, v2) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(&name), false)
        } else {
            (Path::new("/sys/fs/cgroup").join(&name), true)
        };
        std::fs::create_dir_all(&dir).expect("a cgroup (run as root)");
        let limit = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(dir.join(limit), bytes.to_string()).expect("the cgroup's limit");
        Self { dir, v2 }
    }

    /// The cgroup's peak memory (RSS, page cache and tmpfs pages).
    fn peak(&self) -> u64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn reset_peak(&self) {
        if !self.v2 {
            let _ = std::fs::write(self.dir.join("memory.max_usage_in_bytes"), "0");
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `lumen-sidecar serve` (release) inside `cgroup`.
fn start(bin: &Path, cgroup: &Cgroup, port: u16, state: &Path, volume: u64) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" serve",
            cgroup.dir.display()
        ))
        .arg(bin)
        .env("LUMEN_LISTEN", format!("127.0.0.1:{port}"))
        .env("LUMEN_STATE_DIR", state)
        .env("LUMEN_STATE_MAX_BYTES", volume.to_string())
        .env("LUMEN_SNAPSHOT_INTERVAL", "20s")
        .env("RUST_LOG", "info");
    Proc::spawn("sidecar", cmd)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn counter(base: &str, name: &str) -> u64 {
    get_ok(&format!("{base}/metrics"))
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

async fn budget_events(base: &str) -> u64 {
    let budget: serde_json::Value =
        serde_json::from_str(&get_ok(&format!("{base}/v1/budget")).await).expect("JSON");
    budget["slos"][0]["events"].as_u64().expect("events")
}

/// Posts `body` until it is taken (the middleware retries a 503 too).
async fn post(url: &str, body: Vec<u8>) {
    let client = lumen_tests::json_client::JsonClient::default();
    loop {
        let (status, answer) = client.post(url, body.clone()).await;
        match status {
            200 => return,
            503 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("{other}: {answer}"),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let (limit, volume_size) = kit_sizes();
    let bin = lumen_bench::release_sidecar();
    let cgroup = Cgroup::new(limit);
    let volume = Tmpfs::mount("restart-memory", volume_size).expect("a tmpfs (run as root)");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let sidecar = start(&bin, &cgroup, port, &volume.path, volume_size);
    wait_ready(&base, "/healthz").await;
    let workload = Workload::day();
    let (bodies, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let maker = std::thread::spawn(move || {
        for m in 0..workload.minutes {
            if bodies
                .blocking_send(workload.batch("restart-api", "instance-1", m + 1, m))
                .is_err()
            {
                return;
            }
        }
    });
    while let Some(body) = next.recv().await {
        post(&format!("{base}/v1/ingest"), body).await;
    }
    maker.join().expect("the bodies were made");
    let _ = get_ok(&format!("{base}/v1/slo?window=24h")).await;
    let fill_peak_rss = status_kib(sidecar.id(), "VmHWM:");
    let fill_cgroup_peak = cgroup.peak();
    assert_eq!(sidecar.terminate(), Some(0), "a clean stop");
    let files_at_stop = dir_bytes(&volume.path);

    cgroup.reset_peak();
    let sidecar = start(&bin, &cgroup, port, &volume.path, volume_size);
    wait_ready(&base, "/healthz").await;
    let restored = budget_events(&base).await;
    assert_eq!(restored, workload.total_requests(), "every request kept");
    for path in ["/v1/slo?window=24h", "/v1/health?window=24h", "/v1/report"] {
        let _ = get_ok(&format!("{base}{path}")).await;
    }
    // One checkpoint after the restart (written, read back and checked).
    let written = counter(&base, "lumen_snapshots_written_total").await;
    while counter(&base, "lumen_snapshots_written_total").await == written {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let peak_rss = status_kib(sidecar.id(), "VmHWM:");
    let files = dir_bytes(&volume.path);
    let cgroup_peak = cgroup.peak();
    let log = sidecar.log_text();
    let budget_line = log
        .lines()
        .find(|l| l.contains("store memory cap set"))
        .unwrap_or("")
        .to_owned();
    drop(sidecar);
    let share = (peak_rss + files) as f64 / limit as f64;
    let row = serde_json::json!({
        "limit_bytes": limit,
        "volume_bytes": volume_size,
        "requests": workload.total_requests(),
        "routes": workload.routes,
        "fill_peak_rss_bytes": fill_peak_rss,
        "fill_cgroup_peak_bytes": fill_cgroup_peak,
        "state_files_at_stop_bytes": files_at_stop,
        "restart_peak_rss_bytes": peak_rss,
        "state_files_bytes": files,
        "restart_cgroup_peak_bytes": cgroup_peak,
        "share_of_limit": share,
        "budget_log": budget_line,
    });
    println!("{row:#}");
    write_figures("restart_memory.json", &serde_json::json!([row]));
}
