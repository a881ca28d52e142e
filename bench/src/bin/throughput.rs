//! Server throughput over real HTTP on loopback: a hello-world axum app
//! served bare, with Lumen, with axum-prometheus and with the OpenTelemetry
//! tower layer (each added with `Router::layer`), each in its own process
//! with one runtime worker, driven in turn by the same load generator (one
//! thread, keep-alive connections) for several interleaved rounds.
//!
//! Run: `cargo run -p lumen-bench --release --features peers --bin throughput`
//! (`-- --rounds 5 --seconds 5 --connections 16`); it writes
//! `target/lumen-bench/throughput.json` for the `results` bin.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use lumen_bench::write_figures;

const VARIANTS: [&str; 4] = ["bare", "lumen", "axum_prometheus", "opentelemetry_tower"];

fn app(variant: &str) -> Router {
    let router = Router::new().route("/hello", get(|| async { "hello" }));
    match variant {
        "bare" => router,
        "lumen" => {
            let (layer, _shipper) =
                lumen_middleware::pair(lumen_middleware::LumenConfig::default())
                    .expect("valid config");
            router.layer(layer.with_matched_path())
        }
        "axum_prometheus" => {
            let (layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
            router.layer(layer)
        }
        "opentelemetry_tower" => {
            use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
            let provider = SdkMeterProvider::builder()
                .with_reader(ManualReader::builder().build())
                .build();
            opentelemetry::global::set_meter_provider(provider);
            let layer = opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
                .with_tracing(false)
                .build()
                .expect("layer builds");
            router.layer(layer)
        }
        other => panic!("unknown variant {other}"),
    }
}

fn serve(variant: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        axum::serve(listener, app(variant)).await.expect("serves");
    });
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(variant: &str) -> Server {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["serve", variant])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("server prints its address");
    Server {
        child,
        addr: line.trim().parse().expect("an address"),
    }
}

/// Drives `addr` with `connections` keep-alive connections for `seconds`;
/// returns requests per second and the latency histogram (µs).
async fn drive(addr: SocketAddr, connections: usize, seconds: u64) -> (f64, Histogram<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .expect("connects");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get("/hello")
                    .header("host", "bench")
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let start = Instant::now();
                let res = sender.send_request(req).await.expect("answer");
                res.into_body().collect().await.expect("body");
                latency.saturating_record(start.elapsed().as_micros() as u64);
                n += 1;
            }
            (n, latency)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid");
    for t in tasks {
        let (n, h) = t.await.expect("connection task");
        total += n;
        latency.add(&h).expect("same bounds");
    }
    (total as f64 / started.elapsed().as_secs_f64(), latency)
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(&args[2]);
        return;
    }
    let (rounds, seconds, connections) = (
        arg("--rounds", 5),
        arg("--seconds", 5),
        arg("--connections", 16) as usize,
    );
    let servers: Vec<Server> = VARIANTS.iter().map(|v| start(v)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut p99: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    runtime.block_on(async {
        // Warm every server once.
        for s in &servers {
            drive(s.addr, connections, 1).await;
        }
        for round in 0..rounds as usize {
            // Rotate the order each round so no variant always runs first.
            for k in 0..VARIANTS.len() {
                let i = (k + round) % VARIANTS.len();
                let (r, h) = drive(servers[i].addr, connections, seconds).await;
                println!(
                    "round {round}: {:<20} {r:>9.0} req/s  p99 {:>6} µs",
                    VARIANTS[i],
                    h.value_at_quantile(0.99)
                );
                rps[i].push(r);
                p99[i].push(h.value_at_quantile(0.99) as f64);
            }
        }
    });
    let bare = median(rps[0].clone());
    let rows: Vec<serde_json::Value> = VARIANTS
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let r = median(rps[i].clone());
            serde_json::json!({ "variant": v, "median_rps": r, "median_p99_us": median(p99[i].clone()), "ratio_to_bare": r / bare, "rounds": rounds, "seconds": seconds, "connections": connections })
        })
        .collect();
    for r in &rows {
        println!("{r}");
    }
    write_figures("throughput.json", &serde_json::json!(rows));
}
