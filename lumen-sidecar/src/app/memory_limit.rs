//! The container's memory limit, from its cgroup, and the window store's
//! share of it.

use std::path::{Path, PathBuf};

/// The share of the container's memory limit the window store may take:
/// the rest is the process, the evaluation's scratch, the checkpoint being
/// written and, on Cloud Run, the in-memory state volume.
pub const STORE_SHARE_OF_LIMIT: f64 = 0.20;

/// A cgroup memory limit file's value: `None` for `max` (v2) or the huge
/// "no limit" value of v1, or anything unreadable.
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n > 0 && n < 1 << 60).then_some(n)
}

/// The limit files of the cgroup a `/proc/self/cgroup` text names (v2's
/// `memory.max`, v1's `memory.limit_in_bytes`), then those at the root of
/// the cgroup file system (what a container with its own cgroup namespace,
/// as on Cloud Run, sees as its own).
pub fn limit_files(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if path.is_empty() || path.split('/').any(|p| p == "..") {
            continue;
        }
        if controllers.is_empty() {
            files.push(Path::new("/sys/fs/cgroup").join(path).join("memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(
                Path::new("/sys/fs/cgroup/memory")
                    .join(path)
                    .join("memory.limit_in_bytes"),
            );
        }
    }
    files.push(PathBuf::from("/sys/fs/cgroup/memory.max"));
    files.push(PathBuf::from("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    files
}

/// The memory limit of the cgroup this process runs in (its own, else the
/// cgroup file system's root; v2, else v1), if it has one.
pub fn container_memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    limit_files(&own)
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|text| parse_cgroup_limit(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_cgroup_is_read_before_the_root() {
        let v1 = "9:name=systemd:/\n4:memory:/lumen/sidecar\n1:cpu,cpuacct:/x\n";
        assert_eq!(
            limit_files(v1)[0],
            PathBuf::from("/sys/fs/cgroup/memory/lumen/sidecar/memory.limit_in_bytes")
        );
        assert_eq!(
            limit_files("0::/system.slice/lumen.service\n")[0],
            PathBuf::from("/sys/fs/cgroup/system.slice/lumen.service/memory.max")
        );
        // At the root (a cgroup namespace), or a path that climbs: the
        // root's files only.
        for text in ["0::/\n", "4:memory:/../../etc\n", ""] {
            assert_eq!(
                limit_files(text),
                [
                    PathBuf::from("/sys/fs/cgroup/memory.max"),
                    PathBuf::from("/sys/fs/cgroup/memory/memory.limit_in_bytes")
                ],
                "{text:?}"
            );
        }
    }

    #[test]
    fn limits_and_no_limits() {
        assert_eq!(parse_cgroup_limit("268435456\n"), Some(268_435_456));
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(
            parse_cgroup_limit("9223372036854771712\n"),
            None,
            "v1's no limit"
        );
        assert_eq!(parse_cgroup_limit(""), None);
    }
}
