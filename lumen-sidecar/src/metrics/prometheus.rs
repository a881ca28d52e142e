//! `/metrics`: the catalogue in the Prometheus text format (0.0.4).

use std::fmt::Write;

use super::{CATALOGUE, SampleValue, Sources};

fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(value: SampleValue, out: &mut String) {
    match value {
        SampleValue::Count(n) => {
            let _ = write!(out, "{n}");
        }
        SampleValue::Float(v) if v.is_nan() => out.push_str("NaN"),
        SampleValue::Float(v) if v == f64::INFINITY => out.push_str("+Inf"),
        SampleValue::Float(v) if v == f64::NEG_INFINITY => out.push_str("-Inf"),
        SampleValue::Float(v) => {
            let _ = write!(out, "{v}");
        }
    }
}

/// Every `/metrics` metric of the catalogue with its HELP and TYPE lines;
/// a metric without samples is left out whole.
pub fn prometheus_text(sources: &Sources<'_>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    for def in CATALOGUE.iter().filter(|m| m.on_prometheus()) {
        let samples = (def.samples)(sources);
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", def.name, escape_help(def.help));
        let _ = writeln!(out, "# TYPE {} {}", def.name, def.kind.as_str());
        for sample in samples {
            out.push_str(def.name);
            out.push_str(sample.suffix);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in def.labels.iter().zip(&sample.labels).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push_str("=\"");
                    escape_label(value, &mut out);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            format_value(sample.value, &mut out);
            out.push('\n');
        }
    }
    out
}
