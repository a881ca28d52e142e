//! The mentoring API: routes, handlers, and a running instance with its
//! Lumen shipper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lumen_middleware::{LumenConfig, LumenLayer, ShipperGone, ShipperHandle, ShutdownReport};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::answer_cache::{AnswerCache, L1Cache, key_hash, normalise};
use crate::backend::{Simulate, ask_backend};
use crate::settings::ApiSettings;
use lumen_middleware::tuning::{CacheTuning, TunedParam};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    cache: Arc<AnswerCache>,
    settings: Arc<ApiSettings>,
    /// The answers' TTL and L1 capacity as Lumen's feedback loop sets them.
    tuning: &'static CacheTuning,
    /// The answers' TTL under an A/B experiment (or as one fixed it), seconds.
    ttl_param: &'static TunedParam,
}

/// The parameter an experiment may vary: the answers' TTL, in seconds.
pub const TTL_PARAM: &str = "answer_ttl_s";

/// The route whose lookups the answer cache serves: its name on the tuning channel.
pub const ASK_ROUTE: &str = "/api/v1/mentor/ask";

/// `POST /api/v1/mentor/ask` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskRequest {
    /// The question.
    pub question: String,
}

/// `POST /api/v1/mentor/ask` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskResponse {
    /// The answer.
    pub answer: String,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// The mentors this demo knows.
pub const MENTORS: [&str; 3] = [
    "Ada (reliability)",
    "Grace (performance)",
    "Linus (operations)",
];

/// The routes, recorded by `layer` with route labels.
pub fn router(state: ApiState, layer: LumenLayer) -> Router {
    Router::new()
        .route(ASK_ROUTE, post(ask))
        .route("/api/v1/mentors", get(mentors))
        .route("/api/v1/cache", get(cache_state))
        .route("/health", get(health))
        .layer(layer.with_matched_path())
        .with_state(state)
}

async fn ask(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(request): Json<AskRequest>,
) -> Response {
    let key = normalise(&request.question);
    if key.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "question: must not be empty" })),
        )
            .into_response();
    }
    // An experiment on the TTL puts the question in an arm (by its hash: a
    // question keeps its arm, so the arms' caches do not share entries)
    // before any cache report; else the loop's TTL once it set one, else
    // the configured one. Atomic loads only.
    let ttl = match state.ttl_param.assign(Some(key_hash(&key))).value() {
        Some(s) => Duration::from_secs(s.max(1)),
        None => state.tuning.ttl_or(state.settings.cache_ttl),
    };
    if let Some(answer) = state.cache.get(&key, ttl).await {
        return Json(AskResponse {
            answer,
            cached: true,
        })
        .into_response();
    }
    let simulate = Simulate::from_header(headers.get("x-simulate").and_then(|v| v.to_str().ok()));
    let started = std::time::Instant::now();
    let answered = ask_backend(&request.question, &state.settings.backend, simulate).await;
    lumen_middleware::cache::record_tier(lumen_middleware::cache::Tier::Origin, started.elapsed());
    match answered {
        Ok(answer) => {
            state.cache.put(&key, &answer, ttl).await;
            Json(AskResponse {
                answer,
                cached: false,
            })
            .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// `GET /api/v1/cache`: the answer cache's parameters in force, as the
/// tuning channel set them (or the configured ones).
async fn cache_state(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({
        "ttl_s": state.tuning.ttl_or(state.settings.cache_ttl).as_secs(),
        "l1_capacity": state.cache.l1().map(|l1| l1.capacity_in_force()),
        "tuning_version": lumen_middleware::tuning().version(),
        "experiment": state.ttl_param.experiment(),
        "ttl_param_fixed_s": state.ttl_param.value(),
    }))
}

async fn mentors() -> Json<serde_json::Value> {
    Json(json!({ "mentors": MENTORS }))
}

async fn health() -> &'static str {
    "ok\n"
}

/// Connects the cache the settings ask for: Redis with `REDIS_URL`, else in
/// process (logged, so nobody believes Redis is in use when it is not).
pub async fn connect_cache(settings: &ApiSettings) -> Result<AnswerCache, redis::RedisError> {
    match &settings.redis_url {
        Some(url) => {
            let cache = AnswerCache::redis(url).await?;
            tracing::info!(%url, "answers cached in Redis");
            Ok(cache)
        }
        None => {
            tracing::info!("REDIS_URL is not set: answers cached in process");
            Ok(AnswerCache::in_process())
        }
    }
}

/// A running API with its shipper.
#[derive(Debug)]
pub struct RunningApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its Lumen shipper.
    pub shipper: ShipperHandle,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApi {
    /// Serves the API on `listener`, recording with Lumen per `lumen`.
    pub fn start(
        listener: TcpListener,
        settings: ApiSettings,
        cache: AnswerCache,
        lumen: LumenConfig,
    ) -> Result<Self, lumen_middleware::ConfigError> {
        let (layer, shipper) = lumen_middleware::pair(lumen)?;
        let shipper = shipper.spawn();
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let tuning = lumen_middleware::tuning().cache(ASK_ROUTE);
        let cache = match settings.l1_capacity {
            0 => cache,
            n => cache.with_l1(L1Cache::new(n, tuning)),
        };
        let state = ApiState {
            cache: Arc::new(cache),
            settings: Arc::new(settings),
            tuning,
            ttl_param: lumen_middleware::tuning().param(TTL_PARAM),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, router(state, layer))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            shipper,
            stop,
            server,
        })
    }

    /// Stops taking requests, finishes those in flight, then ships what is
    /// left within `grace`.
    pub async fn stop(mut self, grace: Duration) -> Result<ShutdownReport, ShipperGone> {
        let _ = self.stop.send(());
        match tokio::time::timeout(grace, self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("requests still in flight at the grace deadline"),
        }
        self.shipper.shutdown(grace).await
    }
}
