//! Operations endpoints and static assets: health, readiness, metrics, the web
//! snippet (embedded at build time, so the served bytes are exactly the
//! artefact the snippet's tests exercised).

use std::io::Write;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;

/// The built snippet, byte for byte.
pub const SNIPPET: &[u8] = include_bytes!("../../../web-snippet/dist/vitalsign.min.js");

/// A static file in every encoding we serve, compressed once at startup, with
/// its ETag: the snippet and the dashboard's assets.
pub struct Compressed {
    identity: &'static [u8],
    gzip: Vec<u8>,
    brotli: Vec<u8>,
    pub etag: String,
}

impl Compressed {
    pub fn new(identity: &'static [u8]) -> Compressed {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(identity).expect("gzip into memory");
        let gzip = gz.finish().expect("gzip into memory");
        let mut brotli = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut brotli, 4096, 11, 22);
            w.write_all(identity).expect("brotli into memory");
        }
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(identity)[..12]));
        Compressed {
            identity,
            gzip,
            brotli,
            etag,
        }
    }

    /// 304 for a matching `If-None-Match`, else the best encoding the client
    /// accepts; always with the ETag, `Vary` and the given cache lifetime.
    pub fn respond(
        &self,
        headers: &HeaderMap,
        content_type: &'static str,
        cache_control: &'static str,
    ) -> Response {
        let mut response = if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == self.etag))
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let accepts = headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let has = |enc: &str| {
                accepts
                    .split(',')
                    .any(|e| e.trim().split(';').next() == Some(enc))
            };
            let (body, encoding) = if has("br") {
                (self.brotli.clone(), Some("br"))
            } else if has("gzip") {
                (self.gzip.clone(), Some("gzip"))
            } else {
                (self.identity.to_vec(), None)
            };
            let mut r = body.into_response();
            if let Some(enc) = encoding {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
            }
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        };
        let h = response.headers_mut();
        h.insert(header::ETAG, HeaderValue::from_str(&self.etag).unwrap());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        response
    }
}

/// The built snippet, byte for byte, in every encoding.
pub struct SnippetAsset(Compressed);

impl SnippetAsset {
    pub fn new() -> SnippetAsset {
        SnippetAsset(Compressed::new(SNIPPET))
    }
}

impl Default for SnippetAsset {
    fn default() -> Self {
        Self::new()
    }
}

/// The web snippet (`<script src=".../v1/snippet.js" data-site="KEY">`).
#[utoipa::path(
    get, path = "/v1/snippet.js", tag = "ingest",
    responses(
        (status = 200, description = "The minified snippet (gzip or br when accepted)", body = String, content_type = "text/javascript"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
    ),
)]
pub async fn snippet(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // The URL is not versioned: a day fresh, then a week of stale-while-revalidate
    // so a new snippet reaches every page within a day without slowing any.
    let mut response = state.snippet.0.respond(
        &headers,
        "text/javascript; charset=utf-8",
        "public, max-age=86400, stale-while-revalidate=604800",
    );
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// The JSON Schema of flow files, byte for byte the shipped
/// `deploy/flow.schema.json` (a probes test keeps it equal to what the
/// parser's types generate); embedded so the collector needs no probes crate.
pub const FLOW_SCHEMA: &str = include_str!("../../../deploy/flow.schema.json");

/// The flow-file schema, for editors: `#:schema https://COLLECTOR/v1/flow.schema.json`.
pub async fn flow_schema() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/schema+json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        FLOW_SCHEMA,
    )
        .into_response()
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the writer runs and a read connection answers.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready, with the reason: the writer stopped, writes are failing (a full disk), free disk is below min_free_disk_mb, or the database does not answer", body = String, content_type = "text/plain"),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let min_free = state.config.min_free_disk_mb.saturating_mul(1024 * 1024);
    if let Err(reason) = state.store.readiness(min_free) {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response();
    }
    match state.store.ping().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response(),
    }
}

/// OpenMetrics text: requests, ingest, rejections, storage, alerts.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text exposition", body = String, content_type = "application/openmetrics-text")),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(&state.store),
    )
        .into_response()
}
