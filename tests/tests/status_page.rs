//! The status page in a real headless Chromium (through chromedriver):
//! it loads with no console error, every chart draws data, the cards say
//! what `/v1/slo` says, the route table sorts, a route named like markup
//! is shown as text, the running experiment's arms and interval are drawn,
//! nothing overflows a phone's width, and a screenshot
//! is written for the run's artefacts
//! (`target/lumen-e2e/status-page.png`).

use std::time::Duration;

use lumen_middleware::{LumenConfig, pair};
use lumen_tests::webdriver::Browser;
use lumen_tests::*;
use serde_json::Value;

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// Ships a known load: `/ask` healthy and busy, `/slow` slow with 5xx, and
/// a route whose name is markup.
async fn ship_load(sidecar: &SidecarProc) {
    let (layer, shipper) = pair({
        let mut c = LumenConfig::default();
        c.service = "page-api".into();
        c.revision = Some("page-api-00002-new".into());
        c.sidecar_url = format!("http://{}/v1/ingest", sidecar.addr);
        c.interval = Duration::from_secs(3600);
        c
    })
    .expect("valid config");
    let mut shipper = shipper.spawn();
    let r = layer.recorder();
    for i in 0..600_u64 {
        r.record_request(Some("/ask"), &http::Method::GET, 2_000 + i * 50, 200);
        r.record_cache(Some("/ask"), i % 4 != 0);
    }
    for i in 0..50_u64 {
        let status = if i % 5 == 0 { 503 } else { 200 };
        r.record_request(
            Some("/slow"),
            &http::Method::POST,
            250_000 + i * 9_000,
            status,
        );
    }
    for _ in 0..7 {
        r.record_request(Some(HOSTILE), &http::Method::GET, 1_500, 200);
    }
    assert_eq!(
        shipper.flush().await.expect("shipper runs").unsent_requests,
        0
    );
    let _ = shipper.shutdown(Duration::from_secs(2)).await;
}

/// Starts an experiment and ships its arms' requests on `/ask`: A 300
/// requests (60 % hits), B 320 (61 % hits: no detectable difference, so it
/// keeps running), assigned at random.
async fn ship_experiment(sidecar: &SidecarProc) {
    use lumen_middleware::wire::Arm;
    use lumen_tests::arm_batch::{ArmLoad, arm_batch};
    let client = lumen_tests::json_client::JsonClient::default();
    client
        .post_json(
            &format!("{}/v1/experiments", sidecar.base()),
            r#"{"param": "answer_ttl_s", "a": 300, "b": 900, "duration": "1d"}"#,
        )
        .await;
    let arms = [
        ArmLoad {
            arm: Arm::A,
            requests: 300,
            hits: 180,
        },
        ArmLoad {
            arm: Arm::B,
            requests: 320,
            hits: 195,
        },
    ];
    let batch = arm_batch("experiment-arms", 1, "page-api", "/ask", 1, &arms);
    client
        .post_json(
            &format!("{}/v1/ingest", sidecar.base()),
            &serde_json::to_string(&batch).expect("JSON"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_draws_the_api_in_a_real_browser() {
    let sidecar =
        SidecarProc::start(free_port(), &[("LUMEN_EXPERIMENT_CHECK_INTERVAL", "1s")]).await;
    ship_load(&sidecar).await;
    ship_experiment(&sidecar).await;
    // Two looks: the interval has a line to draw.
    eventually(
        "two looks at the experiment",
        Duration::from_secs(30),
        || async {
            let x: Value =
                serde_json::from_str(&get_ok(&format!("{}/v1/experiments", sidecar.base())).await)
                    .expect("JSON");
            let e = if x["running"].is_object() {
                &x["running"]
            } else {
                &x["decided"][0]
            };
            (e["timeline"].as_array().map(Vec::len) >= Some(2)).then_some(())
        },
    )
    .await;
    // A window kept off the budget, marked with the command a person runs:
    // 20 to 10 minutes ago.
    let minute = now_ms() / 60_000 * 60_000;
    let (from, to) = (minute - 20 * 60_000, minute - 10 * 60_000);
    let out = std::process::Command::new(binary("lumen-sidecar"))
        .args([
            "slo",
            "exclude",
            "--url",
            &sidecar.base(),
            "--reason",
            "db failover <b>",
        ])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .output()
        .expect("lumen-sidecar runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let browser = Browser::start().await;
    browser.goto(&sidecar.base()).await;
    eventually("the page has drawn", Duration::from_secs(30), || async {
        (browser
            .run("return document.body.dataset.ready || ''")
            .await
            == "1")
            .then_some(())
    })
    .await;

    let errors: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // Every chart drew data: points, as visible marks (a line of two or
    // more, or a dot), inside its plot.
    let charts = browser
        .run("return [...document.querySelectorAll('#charts .chart')].map(c => { const s = c.querySelector('svg'); if (!s) return [c.id, 0, 0]; const marks = [...s.querySelectorAll('path')].filter(p => p.getAttribute('d').includes('L')).length + s.querySelectorAll('circle').length; return [c.id, Number(s.dataset.points || 0), marks]; })")
        .await;
    let charts = charts.as_array().expect("charts");
    assert_eq!(charts.len(), 8, "{charts:?}");
    for c in charts {
        assert!(c[1].as_u64().unwrap_or(0) > 0, "a chart without data: {c}");
        assert!(
            c[2].as_u64().unwrap_or(0) > 0,
            "a chart with nothing visible: {c}"
        );
    }

    // Every time chart shades the excluded window and marks the deploy,
    // with what they are as their titles (text, not markup).
    let marked = browser
        .run("return ['chart-latency','chart-requests','chart-errors','chart-availability','chart-cache'].map(id => { const s = document.querySelector('#' + id + ' svg'); return [id, s.querySelectorAll('rect.excluded').length, s.querySelectorAll('line.deploy').length, (s.querySelector('rect.excluded title') || {}).textContent || '', (s.querySelector('line.deploy title') || {}).textContent || '']; })")
        .await;
    for c in marked.as_array().expect("charts") {
        assert_eq!(c[1], 1, "the excluded window on {c}");
        assert_eq!(c[2], 1, "the deploy on {c}");
        assert_eq!(c[3], "kept off the error budget: db failover <b>", "{c}");
        assert_eq!(c[4], "deploy: page-api-00002-new", "{c}");
    }

    // The cards say what /v1/slo says.
    let slo: Value =
        serde_json::from_str(&get_ok(&format!("{}/v1/slo?window=60m", sidecar.base())).await)
            .expect("JSON");
    let cards = browser
        .run("return [...document.querySelectorAll('#cards .card[data-slo]')].map(c => [c.dataset.slo, (c.querySelector('.current') || {}).dataset?.value ?? null, (c.querySelector('.target') || {dataset: {}}).dataset.value ?? null])")
        .await;
    for s in slo["slos"].as_array().expect("slos") {
        let name = s["name"].as_str().expect("name");
        let card = cards
            .as_array()
            .expect("cards")
            .iter()
            .find(|c| c[0] == name)
            .unwrap_or_else(|| panic!("no card for {name}: {cards}"));
        let shown: f64 = card[1]
            .as_str()
            .expect("a value")
            .parse()
            .expect("a number");
        assert_eq!(Some(shown), s["current"].as_f64(), "{name}");
        let target: f64 = card[2]
            .as_str()
            .expect("a target")
            .parse()
            .expect("a number");
        assert_eq!(Some(target), s["target"].as_f64(), "{name}");
    }
    assert!(
        cards
            .as_array()
            .expect("cards")
            .iter()
            .any(|c| c[0] == "health"),
        "a health card: {cards}"
    );

    // The experiment: its arms' requests as counted, its interval drawn.
    let arms = browser
        .run("return [...document.querySelectorAll('#experiment-arms tr.arm')].map(tr => Number(tr.children[2].dataset.value))")
        .await;
    assert_eq!(arms, serde_json::json!([300, 320]), "{arms}");
    let title = browser
        .run("return document.getElementById('experiment-title').textContent")
        .await;
    assert!(
        title
            .as_str()
            .is_some_and(|t| t.starts_with("Experiment 1: answer_ttl_s = 300 (A) against 900 (B)")),
        "{title}"
    );
    let drawn = browser
        .run("return Number(document.querySelector('#chart-experiment svg').dataset.points)")
        .await;
    assert!(drawn.as_u64() >= Some(2), "{drawn}");

    // The route named like markup is text, and no element came of it.
    let hostile = browser
        .run(&format!(
            "return [[...document.querySelectorAll('#routes td')].some(td => td.textContent === {}), document.querySelectorAll('img').length]",
            serde_json::to_string(HOSTILE).expect("JSON string")
        ))
        .await;
    assert_eq!(hostile, serde_json::json!([true, 0]), "{hostile}");

    // Worst first, then sorted by a column, both ways (/ask: 600 requests
    // and the experiment arms' 620: a route's arms are part of it).
    let routes = "return [...document.querySelectorAll('#routes tr.route')].map(tr => tr.children[0].textContent)";
    let first = browser.run(routes).await;
    assert_eq!(first[0], "/slow", "the failing route first: {first}");
    let requests = "return [...document.querySelectorAll('#routes tr.route')].map(tr => Number(tr.children[1].dataset.value))";
    browser
        .run("document.querySelector('#routes th[data-key=requests]').click(); return null")
        .await;
    assert_eq!(
        browser.run(requests).await,
        serde_json::json!([7, 50, 1220])
    );
    browser
        .run("document.querySelector('#routes th[data-key=requests]').click(); return null")
        .await;
    assert_eq!(
        browser.run(requests).await,
        serde_json::json!([1220, 50, 7])
    );

    // On a phone's width nothing runs off the side of the page.
    browser.resize(390, 844).await;
    let fits = browser
        .run("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    let (scroll, inner) = (fits[0].as_u64().expect("px"), fits[1].as_u64().expect("px"));
    assert!(
        scroll <= inner,
        "the page is {scroll}px wide in a {inner}px window"
    );
    browser.resize(1280, 2400).await;

    let png = browser.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let dir = workspace_root().join("target").join("lumen-e2e");
    std::fs::create_dir_all(&dir).expect("artefact dir");
    std::fs::write(dir.join("status-page.png"), &png).expect("screenshot written");
}
