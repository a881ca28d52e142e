//! A minimal JSON POST client over the harness's HTTP stack, for driving
//! the example API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Posts JSON bodies; cheap to clone.
#[derive(Clone)]
pub struct JsonClient(Hyper<HttpConnector, Full<Bytes>>);

impl Default for JsonClient {
    fn default() -> Self {
        Self(Hyper::builder(TokioExecutor::new()).build(HttpConnector::new()))
    }
}

impl JsonClient {
    /// POSTs `body` to `url` and expects a success (2xx); returns the answer's body.
    pub async fn post_json(&self, url: &str, body: &str) -> String {
        let (status, text) = self.post(url, body.as_bytes().to_vec()).await;
        assert!((200..300).contains(&status), "{url}: {status} {text}");
        text
    }

    /// POSTs `body` (JSON) to `url`: the answer's status and body, whatever
    /// they are.
    pub async fn post(&self, url: &str, body: Vec<u8>) -> (u16, String) {
        let request = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let response = self.0.request(request).await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}
