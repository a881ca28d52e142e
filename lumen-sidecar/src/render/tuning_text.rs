//! The feedback loop in the Markdown report: each cache's TTL, its last
//! interval, the L1 recommendation, which tiers pay off, and the changes with the hit rates
//! before and after.

use std::fmt::Write;

use crate::app::tuning::TuningReport;
use crate::config::FeedbackMode;

use super::format::cell;

/// The report's "Feedback loop" section (empty when the loop is off).
pub fn tuning_markdown(t: &TuningReport) -> String {
    if t.mode == FeedbackMode::Off {
        return String::new();
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n## Feedback loop ({})\n\nTarget hit rate {}%, TTL from {} s to {} s; version {} on the tuning channel.\n",
        t.mode.as_str(),
        t.control.target_hit_rate,
        t.control.ttl_min_s,
        t.control.ttl_max_s,
        t.version
    );
    if t.caches.is_empty() {
        let _ = writeln!(o, "No cache lookups reported yet.");
        return o;
    }
    let _ = writeln!(
        o,
        "| Cache | TTL (s) | Next (s) | Last interval hit rate | L1 entries for the target | L1 memory |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for (name, c) in &t.caches {
        let (entries, memory) = match &c.l1 {
            Some(r) => (
                r.capacity.map_or("n/a".into(), |n| {
                    format!(
                        "{n}{}",
                        if r.reaches_target {
                            ""
                        } else {
                            " (top of curve)"
                        }
                    )
                }),
                r.memory_bytes
                    .map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            ),
            None => ("too few sampled keys".into(), "".into()),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {entries} | {memory} |",
            cell(name),
            c.ttl_s,
            c.recommended_ttl_s,
            c.hit_rate.map_or("n/a".into(), |h| format!("{h:.1}%")),
        );
    }
    let tiers: Vec<_> = t
        .caches
        .iter()
        .filter_map(|(name, c)| c.tiers.as_ref().map(|tiers| (name, tiers)))
        .collect();
    if !tiers.is_empty() {
        let _ = writeln!(
            o,
            "\n| Cache | L1 lookup | L2 lookup | Origin fetch | Tiers that pay off |\n| --- | ---: | ---: | ---: | --- |"
        );
        let mean = |us: Option<f64>| us.map_or("not timed".into(), |us| format!("{us:.0} µs"));
        for (name, c) in tiers {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                cell(name),
                mean(c.means.l1_us),
                mean(c.means.l2_us),
                mean(c.means.origin_us),
                cell(&c.why),
            );
        }
    }
    let changes: Vec<_> = t
        .caches
        .iter()
        .flat_map(|(name, c)| c.changes.iter().map(move |ch| (name, ch)))
        .collect();
    if !changes.is_empty() {
        let _ = writeln!(
            o,
            "\n| Cache | Change | Hit rate before | Hit rate after |\n| --- | --- | ---: | ---: |"
        );
        for (name, ch) in changes.iter().rev().take(20) {
            let _ = writeln!(
                o,
                "| {} | {} s → {} s | {:.1}% | {} |",
                cell(name),
                ch.from_s,
                ch.to_s,
                ch.hit_rate_before,
                ch.hit_rate_after
                    .map_or("pending".into(), |h| format!("{h:.1}%"))
            );
        }
    }
    o
}
