//! The status page in a real headless Chromium (through chromedriver):
//! it loads with no console error, every chart draws data, the cards say
//! what `/v1/slo` says, the route table sorts, a route named like markup
//! is shown as text, nothing overflows a phone's width, and a screenshot
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_draws_the_api_in_a_real_browser() {
    let sidecar = SidecarProc::start(free_port(), &[]).await;
    ship_load(&sidecar).await;
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

    // The route named like markup is text, and no element came of it.
    let hostile = browser
        .run(&format!(
            "return [[...document.querySelectorAll('#routes td')].some(td => td.textContent === {}), document.querySelectorAll('img').length]",
            serde_json::to_string(HOSTILE).expect("JSON string")
        ))
        .await;
    assert_eq!(hostile, serde_json::json!([true, 0]), "{hostile}");

    // Worst first, then sorted by a column, both ways.
    let routes = "return [...document.querySelectorAll('#routes tr.route')].map(tr => tr.children[0].textContent)";
    let first = browser.run(routes).await;
    assert_eq!(first[0], "/slow", "the failing route first: {first}");
    let requests = "return [...document.querySelectorAll('#routes tr.route')].map(tr => Number(tr.children[1].dataset.value))";
    browser
        .run("document.querySelector('#routes th[data-key=requests]').click(); return null")
        .await;
    assert_eq!(browser.run(requests).await, serde_json::json!([7, 50, 600]));
    browser
        .run("document.querySelector('#routes th[data-key=requests]').click(); return null")
        .await;
    assert_eq!(browser.run(requests).await, serde_json::json!([600, 50, 7]));

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
