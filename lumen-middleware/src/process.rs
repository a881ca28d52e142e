//! The app process's CPU time, resident memory and container memory limit,
//! read from `/proc` and cgroup v2 once per interval (never on the request path).

use crate::wire::ProcessStats;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Reads the current figures; `None` where `/proc` is not there (not Linux).
pub(crate) fn read_process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    let cpu_max = std::fs::read_to_string("/sys/fs/cgroup/cpu.max").ok();
    let mut stats = parse(&stat, &status, limit.as_deref())?;
    stats.cpu_limit_cores = cpu_max.as_deref().and_then(parse_cpu_max);
    Some(stats)
}

/// cgroup v2 `cpu.max`: `max 100000` (no limit) or `QUOTA PERIOD` in µs.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (period > 0.0 && quota > 0.0).then(|| quota / period)
}

fn parse(stat: &str, status: &str, memory_max: Option<&str>) -> Option<ProcessStats> {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let memory_limit_bytes = memory_max.and_then(|m| m.trim().parse().ok());
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        rss_bytes: rss_kib * 1024,
        memory_limit_bytes,
        cpu_limit_cores: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (my app (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 8 0";
        let status = "Name:\tapp\nVmRSS:\t   71680 kB\nThreads:\t8\n";
        let s = parse(stat, status, Some("536870912\n")).expect("parses");
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.rss_bytes, 71_680 * 1024);
        assert_eq!(s.memory_limit_bytes, Some(536_870_912));
        let unlimited = parse(stat, status, Some("max\n")).expect("parses");
        assert_eq!(unlimited.memory_limit_bytes, None);
    }

    #[test]
    fn parses_cpu_max() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn reads_this_process() {
        let s = read_process_stats().expect("linux has /proc");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
