//! Numbers, times and tables as people read them.

use crate::eval::SloResult;

/// `99.52%`, `123.4 ms`, `0.021 ms`, or `n/a` without a value. Values
/// below 1 keep three significant digits, so a sub-millisecond latency
/// never reads as `0 ms`.
pub fn value(v: Option<f64>, unit: &str) -> String {
    match (v, unit) {
        (None, _) => "n/a".to_owned(),
        (Some(v), "%") => format!("{}%", trim(v, 3)),
        (Some(v), unit) if v != 0.0 && v.abs() < 1.0 => {
            // Three significant digits: 0.0213 → 0.0213, 0.5 → 0.5.
            let digits = (2 - v.abs().log10().floor() as i64).clamp(1, 9) as usize;
            format!("{} {unit}", trim(v, digits))
        }
        (Some(v), unit) => format!("{} {unit}", trim(v, 1)),
    }
}

/// A percent, or `n/a`.
pub fn percent(v: Option<f64>) -> String {
    value(v, "%")
}

/// `>= 99.5%`, `< 200 ms`.
pub fn target(slo: &SloResult) -> String {
    format!("{} {}", slo.comparison, value(Some(slo.target), &slo.unit))
}

/// Rounds to at most `digits` decimals and drops trailing zeros.
fn trim(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// `MET` or `NOT MET`, `n/a` without data.
pub fn met(slo: &SloResult) -> &'static str {
    match (slo.current, slo.met) {
        (None, _) => "n/a",
        (Some(_), true) => "MET",
        (Some(_), false) => "NOT MET",
    }
}

/// `2026-11-26T05:39:00Z` from Unix ms.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = crate::eval::calendar::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.push(line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `text` safe in a Markdown table cell (its `|` escaped).
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(value(Some(99.5), "%"), "99.5%");
        assert_eq!(value(Some(99.123_456), "%"), "99.123%");
        assert_eq!(value(Some(200.0), "ms"), "200 ms");
        assert_eq!(value(Some(12.345), "ms"), "12.3 ms");
        assert_eq!(value(None, "ms"), "n/a");
        assert_eq!(value(Some(0.021), "ms"), "0.021 ms", "21 µs");
        assert_eq!(value(Some(0.5), "ms"), "0.5 ms");
        assert_eq!(value(Some(0.0), "ms"), "0 ms");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_764_135_540_000), "2025-11-26T05:39:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["a", "bb"],
            &[
                vec!["long cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(
            t,
            "a          bb\n---------  --\nlong cell  x\ny          z"
        );
    }
}
