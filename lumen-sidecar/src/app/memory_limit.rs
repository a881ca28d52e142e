//! The container's memory limit, from its cgroup, and the window store's
//! share of it.

use std::path::Path;

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

/// The memory limit of the cgroup this process runs in (v2, else v1), if
/// it has one.
pub fn container_memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|f| std::fs::read_to_string(Path::new(f)).ok())
    .and_then(|text| parse_cgroup_limit(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

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
