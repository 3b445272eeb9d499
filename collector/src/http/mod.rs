//! The HTTP surface: routes, shared state, and the one error type that turns
//! every failure into a clear status and message for the client.
//!
//! - [`ingest`]: `POST /v1/rum`, `POST /v1/runs`, artifact upload/download.
//! - [`api`]: the token-protected query API under `/api/v1/`.
//! - [`ops`]: health, readiness, metrics, the snippet, the demo site.
//! - [`alerts`]: alert states, transitions, acknowledgements, silences, dead letters.
//! - [`openapi`]: the OpenAPI 3.1 description served at `/api/v1/openapi.json`.

pub mod alerts;
pub mod api;
pub mod ingest;
pub mod openapi;
pub mod ops;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::config::CollectorConfig;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<CollectorConfig>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RateLimiter>,
    pub snippet: Arc<ops::SnippetAsset>,
    pub sessions: Arc<crate::dashboard::session::Sessions>,
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/v1/rum", post(ingest::rum).options(ingest::rum_preflight))
        .route("/v1/runs", post(ingest::runs))
        .route(
            "/v1/runs/{run_id}/artifacts/{name}",
            put(ingest::put_artifact).get(ingest::get_artifact),
        )
        .route("/v1/snippet.js", get(ops::snippet))
        .route("/v1/flow.schema.json", get(ops::flow_schema))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/series", get(api::series))
        .route("/api/v1/top-pages", get(api::top_pages))
        .route("/api/v1/attribution", get(api::attribution))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/transitions", get(alerts::transitions))
        .route("/api/v1/alerts/dead-letters", get(alerts::dead_letters))
        .route("/api/v1/alerts/{id}/ack", post(alerts::acknowledge))
        .route(
            "/api/v1/silences",
            get(alerts::list_silences).post(alerts::create_silence),
        )
        .route("/api/v1/silences/{id}", delete(alerts::delete_silence))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    if let Some(dir) = &state.config.demo_site_dir {
        router = router.nest_service("/demo", tower_http::services::ServeDir::new(dir));
    }
    router
        .merge(crate::dashboard::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        // Bodies are read by the handlers with their own limits and messages,
        // within the body timeout; rejections keep the connection usable.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::server::body_hygiene,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A clone of the matched path shares its string: no allocation.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    state.metrics.request(route, response.status().as_u16());
    response
}

/// Every error a client can get, with a message that says what to fix.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(usize),
    UnsupportedMediaType(String),
    TooManyRequests(Duration),
    /// The body did not arrive within `connections.body_read_timeout_secs`.
    RequestTimeout,
    /// Storage cannot serve now (I/O, a full disk, the writer stopped): 503.
    Unavailable(String),
    /// Stored data is unreadable or the store broke an invariant: 500. The
    /// detail goes to the operator's log, not to the client.
    Internal(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or unknown bearer token (send `Authorization: Bearer TOKEN`)".to_string(),
            ),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            AppError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than the {limit} bytes allowed"),
            ),
            AppError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m.clone()),
            AppError::TooManyRequests(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit exceeded; retry in {} s", wait.as_secs().max(1)),
            ),
            AppError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time".to_string(),
            ),
            // Internals are logged, not shown: the client learns it may retry.
            AppError::Unavailable(m) => {
                crate::store::health::error_limited("request failed", m);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable; retry later".to_string(),
                )
            }
            AppError::Internal(m) => {
                crate::store::health::error_limited("stored data is unreadable", m);
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "stored data could not be read; the collector's log says which".to_string(),
                )
            }
        };
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        if let AppError::TooManyRequests(wait) = self {
            let secs = wait.as_secs().max(1).to_string();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_str(&secs).unwrap());
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AppError::NotFound(m),
            StoreError::Invalid(m) => AppError::BadRequest(m),
            StoreError::Conflict(m) => AppError::Conflict(m),
            StoreError::Corrupt(m) | StoreError::Internal(m) => AppError::Internal(m),
            other => AppError::Unavailable(other.to_string()),
        }
    }
}

/// Check `Authorization: Bearer …` against a token list.
pub fn authorize(
    headers: &HeaderMap,
    tokens: &[vitalsign_core::secret::Secret],
) -> Result<(), AppError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AppError::Unauthorized)?;
    if tokens.iter().any(|t| !t.is_empty() && t.matches(presented)) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

/// Read a request body up to `limit` bytes.
pub async fn read_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, AppError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(AppError::PayloadTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::server::is_body_timeout(&e) {
            AppError::RequestTimeout
        } else {
            AppError::PayloadTooLarge(limit)
        }
    })
}
