//! Long-running readers of Google's APIs outlive their tokens (an hour):
//! the query API client renews a token the metadata server issued when
//! Google answers 401, and reads a token file again at every call.

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use axum::response::IntoResponse;
use lumen_sidecar::fleet::QueryApi;
use lumen_sidecar::google::AccessTokens;
use lumen_tests::google_stand_in::{TokenAuthority, metadata_server};

/// A Prometheus query API that, like Google's, takes only live tokens.
async fn query_api(authority: TokenAuthority) -> String {
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |method: Method, headers: HeaderMap| {
            let authority = authority.clone();
            async move {
                if let Some((answer, violation)) =
                    authority.check(&method, "/api/v1/query", &headers)
                {
                    assert!(violation.is_none(), "{violation:?}");
                    return answer;
                }
                axum::Json(
                    serde_json::json!({"status": "success", "data": {"resultType": "vector",
                    "result": [{"metric": {}, "value": [1, "42"]}]}}),
                )
                .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_metadata_token_is_renewed_once_and_the_query_answered() {
    let authority = TokenAuthority::new();
    let url = query_api(authority.clone()).await;
    let metadata = metadata_server(authority.clone(), "p").await;
    let api = QueryApi::new(&url, Some(Arc::new(AccessTokens::metadata(&metadata))));
    let first = api.instant("up", 1_000).await.expect("answered");
    assert_eq!(first[0].value, 42.0);
    assert_eq!(authority.issued(), 1, "the token is cached while it lives");
    api.instant("up", 1_000).await.expect("answered");
    assert_eq!(authority.issued(), 1);
    // An hour later.
    authority.expire_all();
    let later = api
        .instant("up", 1_000)
        .await
        .expect("answered after renewal");
    assert_eq!(later[0].value, 42.0);
    assert_eq!(authority.expired_refusals(), 1);
    assert_eq!(authority.issued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_is_read_again_and_a_stale_one_is_refused_with_its_origin() {
    let authority = TokenAuthority::new();
    let url = query_api(authority.clone()).await;
    let dir = std::env::temp_dir().join(format!("lumen-google-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("token");
    std::fs::write(&file, authority.issue().0).expect("write");
    let api = QueryApi::new(&url, Some(Arc::new(AccessTokens::file(&file))));
    api.instant("up", 1_000).await.expect("answered");
    authority.expire_all();
    // Nobody refreshed the file: refused, and the error says where the
    // token came from (never the token itself).
    let err = api
        .instant("up", 1_000)
        .await
        .expect_err("expired")
        .to_string();
    assert!(
        err.contains("401") && err.contains("--access-token-file"),
        "{err}"
    );
    assert!(!err.contains("ya29"), "{err}");
    // `gcloud auth print-access-token > FILE` ran again: the next call uses it.
    std::fs::write(&file, authority.issue().0).expect("write");
    api.instant("up", 1_000)
        .await
        .expect("answered with the new token");
    std::fs::remove_dir_all(&dir).expect("clean");
}
