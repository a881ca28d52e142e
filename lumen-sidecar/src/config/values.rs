//! Reading one setting's value from text, with what is allowed when it
//! cannot be read.

use std::net::SocketAddr;
use std::time::Duration;

use lumen_middleware::units::parse_duration;

use super::{ExportMode, OtlpProtocol};
use crate::eval::StatusClass;

/// A finite number.
pub fn number(v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| "a number".to_owned())
}

/// A finite number, 0 or more; `allowed` says what is allowed otherwise.
pub fn non_negative(v: &str, allowed: &str) -> Result<f64, String> {
    number(v)
        .ok()
        .filter(|n| *n >= 0.0)
        .ok_or_else(|| allowed.to_owned())
}

/// A whole number; `allowed` says what is allowed otherwise.
pub fn whole(v: &str, allowed: &str) -> Result<u64, String> {
    v.trim().parse().map_err(|_| allowed.to_owned())
}

/// A percent above 0, at most 100.
pub fn percent_range(v: &str) -> Result<f64, String> {
    let n = number(v)?;
    if !(n > 0.0 && n <= 100.0) {
        return Err("a percent above 0, at most 100".into());
    }
    Ok(n)
}

/// A duration such as `90s`, `5m`, `1h`.
pub fn duration(v: &str) -> Result<Duration, String> {
    parse_duration(v.trim())
}

/// An IP address and port.
pub fn addr(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| "an IP address and port, such as 127.0.0.1:9464".to_owned())
}

/// Status classes, comma-separated: at least one of `1xx` … `5xx`.
pub fn classes(v: &str) -> Result<Vec<StatusClass>, String> {
    let list: Vec<StatusClass> = v
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            StatusClass::parse(c)
                .ok_or_else(|| format!("{c} is not one of 1xx, 2xx, 3xx, 4xx, 5xx"))
        })
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("at least one of 1xx, 2xx, 3xx, 4xx, 5xx".into());
    }
    Ok(list)
}

/// `off`, `otlp` or `stdout`.
pub fn mode(v: &str) -> Result<ExportMode, String> {
    match v.trim() {
        "off" => Ok(ExportMode::Off),
        "otlp" => Ok(ExportMode::Otlp),
        "stdout" => Ok(ExportMode::Stdout),
        _ => Err("off, otlp or stdout".into()),
    }
}

/// The word for `mode`.
pub fn mode_name(mode: ExportMode) -> &'static str {
    match mode {
        ExportMode::Off => "off",
        ExportMode::Otlp => "otlp",
        ExportMode::Stdout => "stdout",
    }
}

/// `http/protobuf` or `grpc`.
pub fn protocol(v: &str) -> Result<OtlpProtocol, String> {
    match v.trim() {
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "grpc" => Ok(OtlpProtocol::Grpc),
        _ => Err("http/protobuf or grpc".into()),
    }
}

/// The word for `protocol`.
pub fn protocol_name(protocol: OtlpProtocol) -> &'static str {
    match protocol {
        OtlpProtocol::HttpProtobuf => "http/protobuf",
        OtlpProtocol::Grpc => "grpc",
    }
}

/// `k=v,k2=v2` (values percent-decoded), as the OTEL_* variables write pairs.
pub fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair}: comma-separated key=value pairs"))?;
            Ok((k.trim().to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
