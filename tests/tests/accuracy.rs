//! P95 and P99 through the whole path — the middleware's recording path, the
//! shipper's wire encoding, the sidecar's ingest, store and evaluation — are
//! within 0.1 % of the exact nearest-rank quantiles of the same values.

use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_sidecar::Sidecar;
use lumen_sidecar::config::SidecarConfig;
use lumen_tests::distributions::{exact_quantile, standard};

const SAMPLES: usize = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantiles_through_the_whole_path_are_within_a_thousandth() {
    for (seed, (name, distribution)) in standard().into_iter().enumerate() {
        let sidecar = Sidecar::bind(SidecarConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..SidecarConfig::default()
        })
        .await
        .expect("binds");
        let addr = sidecar.local_addr();
        tokio::spawn(sidecar.run(std::future::pending()));
        let (layer, shipper) = pair({
            let mut c = LumenConfig::default();
            c.sidecar_url = format!("http://{addr}/v1/ingest");
            c.interval = Duration::from_secs(3600);
            c
        })
        .expect("valid");
        let mut shipper = shipper.spawn();
        let recorder = layer.recorder();

        let mut values = distribution.sample(SAMPLES, seed as u64 + 1);
        for v in &values {
            recorder.record_response(Some("/r"), *v, 200);
        }
        assert_eq!(
            shipper
                .flush()
                .await
                .expect("the shipper runs")
                .unsent_requests,
            0
        );
        values.sort_unstable();

        let body = lumen_sidecar::cli::sources::get(&format!("http://{addr}"), "/v1/slo?window=5m")
            .await
            .expect("report");
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(doc["requests"], SAMPLES as u64);
        for (slo, q) in [("latency_p95", 0.95), ("latency_p99", 0.99)] {
            let reported_ms = doc["slos"]
                .as_array()
                .expect("slos")
                .iter()
                .find(|s| s["name"] == slo)
                .expect("slo")["current"]
                .as_f64()
                .expect("value");
            let exact_ms = exact_quantile(&values, q) as f64 / 1000.0;
            let error = (reported_ms - exact_ms).abs() / exact_ms;
            assert!(
                error <= 0.001,
                "{name} {slo}: reported {reported_ms} ms, exact {exact_ms} ms, error {:.4} %",
                error * 100.0
            );
        }
        assert_eq!(
            shipper
                .shutdown(Duration::from_secs(1))
                .await
                .expect("the shipper runs")
                .unsent_requests,
            0
        );
    }
}
