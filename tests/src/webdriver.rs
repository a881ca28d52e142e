//! A small W3C WebDriver client over HTTP, for driving a real headless
//! Chromium through `chromedriver` (Debian's `chromium-driver`).

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::{Proc, eventually, find_program, free_port};

/// A `chromedriver` and one headless Chromium session (both end when it
/// is dropped: the driver is killed, and the browser with it).
pub struct Browser {
    _driver: Proc,
    base: String,
    session: String,
}

async fn call(method: http::Method, url: &str, body: Option<Value>) -> Option<Value> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .ok()?;
    let response = client.request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session.
    pub async fn start() -> Self {
        let driver = find_program("chromedriver")
            .expect("chromedriver is installed (scripts/test.sh installs chromium-driver)");
        let port = free_port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"));
        let proc = Proc::spawn("chromedriver", cmd);
        let base = format!("http://127.0.0.1:{port}");
        eventually("chromedriver ready", Duration::from_secs(30), || {
            let url = format!("{base}/status");
            async move {
                let v = call(http::Method::GET, &url, None).await?;
                (v["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        let chromium = find_program("chromium").expect("chromium is installed");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2400"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let created = call(http::Method::POST, &format!("{base}/session"), Some(caps))
            .await
            .expect("a session answer");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            _driver: proc,
            base,
            session,
        }
    }

    async fn command(&self, method: http::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer = call(method, &url, body)
            .await
            .unwrap_or_else(|| panic!("no answer to {path}"));
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("{path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command(http::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn run(&self, script: &str) -> Value {
        self.command(
            http::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The browser console's entries since the last call (`level`, `message`).
    pub async fn console(&self) -> Vec<Value> {
        self.command(
            http::Method::POST,
            "/se/log",
            Some(json!({ "type": "browser" })),
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// Resizes the window to `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            http::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self.command(http::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 text"))
            .expect("base64")
    }
}
