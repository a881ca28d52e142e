//! A fleet's known load: what each app instance sends, shipped through the
//! middleware's real shipper, and the `lumen-sidecar` command line.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};

/// One instance's load: `requests` requests, one in five on `/health`, the
/// rest on `/ask` (every `fail_every`-th a 503, every 7th a 404),
/// latencies from [`latency_us`], a cache lookup per request, and
/// `cancelled` abandoned requests.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLoad {
    /// Finished requests.
    pub requests: u64,
    /// Every this-many-th request is a 503.
    pub fail_every: u64,
    /// Requests abandoned on `/ask`.
    pub cancelled: u64,
    /// Varies the latencies between instances.
    pub seed: u64,
}

/// Request `i`'s latency: 95 % fast (1 to 150 ms), 3 % just under the P95
/// target, 2 % from 300 to 680 ms, half of them under the P99 target, so
/// the P99 verdict sits on the edge.
pub fn latency_us(i: u64, seed: u64) -> u64 {
    let x = (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % 1000;
    match x {
        0..=949 => 1_000 + x * 150,
        950..=979 => 150_000 + (x - 950) * 1_500,
        _ => 300_000 + (x - 980) * 20_000,
    }
}

impl InstanceLoad {
    /// Every finished request's latency, µs, in the order sent.
    pub fn latencies(&self) -> Vec<u64> {
        (0..self.requests)
            .map(|i| latency_us(i, self.seed))
            .collect()
    }
}

/// Ships `load` as one app instance of `service` to each of `sidecars`
/// (the same requests to each), through the middleware's shipper; asserts
/// that every request was acknowledged.
pub async fn ship(service: &str, load: InstanceLoad, sidecars: &[SocketAddr]) {
    for addr in sidecars {
        let (layer, shipper) = pair({
            let mut c = LumenConfig::default();
            c.service = service.into();
            c.sidecar_url = format!("http://{addr}/v1/ingest");
            c.interval = Duration::from_secs(3600);
            c
        })
        .expect("valid config");
        let mut shipper = shipper.spawn();
        let r = layer.recorder();
        for i in 0..load.requests {
            let status = if i % load.fail_every == 0 {
                503
            } else if i % 7 == 0 {
                404
            } else {
                200
            };
            let route = if i % 5 == 0 { "/health" } else { "/ask" };
            r.record_request(
                Some(route),
                &http::Method::GET,
                latency_us(i, load.seed),
                status,
            );
            r.record_cache(Some(route), i % 3 != 0);
        }
        for _ in 0..load.cancelled {
            r.record_cancelled(Some("/ask"));
        }
        assert_eq!(
            shipper
                .flush()
                .await
                .expect("the shipper runs")
                .unsent_requests,
            0
        );
        assert_eq!(
            shipper
                .shutdown(Duration::from_secs(2))
                .await
                .expect("the shipper runs")
                .unsent_requests,
            0
        );
    }
}

/// Runs `lumen-sidecar COMMAND ARGS…` without the caller's Lumen and Google
/// environment: its exit code, stdout and stderr.
pub fn sidecar_cli(command: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(crate::binary("lumen-sidecar"))
        .arg(command)
        .args(args)
        .env_remove("LUMEN_CONFIG")
        .env_remove("LUMEN_SERVICE")
        .env_remove("GOOGLE_OAUTH_ACCESS_TOKEN")
        .output()
        .expect("lumen-sidecar runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
