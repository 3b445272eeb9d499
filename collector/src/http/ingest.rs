//! Ingest: beacons from browsers (public, origin-checked, rate-limited) and
//! probe runs plus their artifacts from agents (bearer token, idempotent).
//! A 2xx is sent only after the write's batch has committed.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use vitalsign_core::wire;

use super::{AppError, AppState, authorize, read_body};
use crate::grouping::page_group;
use crate::store::{NewArtifact, NewPageView, NewRun, WriteOutcome};

fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    crate::client_ip::client_ip(peer.ip(), headers, &state.config.trusted_proxies)
}

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// Is `origin` allowed to send beacons for any site (preflight does not know the site)?
fn allowed_anywhere(state: &AppState, origin: &str) -> bool {
    state
        .config
        .sites
        .values()
        .any(|s| s.origins.iter().any(|o| o == "*" || o == origin))
}

fn with_cors(mut response: Response, state: &AppState, headers: &HeaderMap) -> Response {
    if let Some(o) = origin(headers)
        && allowed_anywhere(state, o)
        && let Ok(value) = HeaderValue::from_str(o)
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

pub async fn rum_preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    with_cors(response, &state, &headers)
}

pub async fn rum(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = accept_beacon(&state, peer, &headers, body).await;
    let response = match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err((reason, error)) => {
            state.metrics.rejection(reason);
            error.into_response()
        }
    };
    with_cors(response, &state, &headers)
}

async fn accept_beacon(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), (&'static str, AppError)> {
    state
        .limiter
        .check(client_ip(state, peer, headers), Instant::now())
        .map_err(|wait| ("rate_limited", AppError::TooManyRequests(wait)))?;
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(mime.as_str(), "text/plain" | "application/json" | "") {
            return Err((
                "content_type",
                AppError::UnsupportedMediaType(format!(
                    "content type \"{}\" is not accepted; send text/plain or application/json",
                    wire::excerpt(&mime)
                )),
            ));
        }
    }
    check_encoding(headers).map_err(|e| ("content_type", e))?;
    let bytes = read_body(body, headers, state.config.max_beacon_bytes)
        .await
        .map_err(|e| ("too_large", e))?;
    let beacon =
        wire::parse_beacon(&bytes).map_err(|e| ("invalid", AppError::BadRequest(e.to_string())))?;
    let Some(site) = state.config.sites.get(&beacon.site) else {
        return Err((
            "unknown_site",
            AppError::Forbidden(format!(
                "site {:?} is not configured on this collector",
                beacon.site
            )),
        ));
    };
    // Browsers always send Origin on a cross-origin POST; a request without one
    // is not from another site's page, which is what the allowlist guards against.
    if let Some(o) = origin(headers)
        && !site
            .origins
            .iter()
            .any(|allowed| allowed == "*" || allowed == o)
    {
        return Err((
            "origin_not_allowed",
            AppError::Forbidden(format!(
                "origin \"{}\" may not send beacons for site {:?}",
                wire::excerpt(o),
                beacon.site
            )),
        ));
    }
    let group = page_group(&beacon.url, &state.config.page_groups);
    state
        .store
        .append_page_views(vec![NewPageView {
            beacon,
            page_group: group,
            received_ms: state.store.clock.now_ms(),
        }])
        .await
        .map_err(|e| ("storage", AppError::from(e)))?;
    Ok(())
}

/// Bodies are parsed as UTF-8 JSON exactly as sent: a declared charset other
/// than UTF-8 or a content encoding (gzip, …) would be misread as malformed
/// JSON, so both are refused with 415 and a message saying what to send.
fn check_encoding(headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .map_err(|_| AppError::UnsupportedMediaType("Content-Type is not ASCII".to_string()))?;
        for param in ct.split(';').skip(1) {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("charset") {
                continue;
            }
            let value = value.trim().trim_matches('"');
            if !(value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")) {
                return Err(AppError::UnsupportedMediaType(format!(
                    "charset \"{}\" is not accepted; send UTF-8",
                    wire::excerpt(value)
                )));
            }
        }
    }
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let value = value.to_str().unwrap_or("?").trim();
        if !value.eq_ignore_ascii_case("identity") {
            return Err(AppError::UnsupportedMediaType(format!(
                "Content-Encoding \"{}\" is not decoded here; send the body uncompressed",
                wire::excerpt(value)
            )));
        }
    }
    Ok(())
}

pub async fn runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    authorize(&headers, &state.config.agent_tokens)?;
    check_encoding(&headers)?;
    let bytes = read_body(body, &headers, state.config.max_run_bytes).await?;
    let run = wire::parse_run(&bytes).map_err(|e| AppError::BadRequest(e.to_string()))?;
    run.check_clock(state.store.clock.now_ms().max(0) as u64)
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let run_id = run.run_id.clone();
    let page_view_groups = run
        .page_views
        .iter()
        .map(|view| {
            view.url
                .as_deref()
                .map(|url| page_group(url, &state.config.page_groups))
                .unwrap_or_default()
        })
        .collect();
    let outcome = state
        .store
        .record_run(NewRun {
            run,
            page_view_groups,
            received_ms: state.store.clock.now_ms(),
        })
        .await?;
    let (status, word) = match outcome {
        WriteOutcome::AlreadyStored => (StatusCode::OK, "already_stored"),
        _ => (StatusCode::CREATED, "stored"),
    };
    Ok((
        status,
        axum::Json(serde_json::json!({ "run_id": run_id, "status": word })),
    )
        .into_response())
}

pub async fn put_artifact(
    State(state): State<AppState>,
    Path((run_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    authorize(&headers, &state.config.agent_tokens)?;
    let bytes = read_body(body, &headers, state.config.max_artifact_bytes).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let outcome = state
        .store
        .record_artifact(NewArtifact {
            run_id,
            name,
            content_type,
            content: bytes.to_vec(),
            sha256,
        })
        .await?;
    Ok(match outcome {
        WriteOutcome::AlreadyStored => StatusCode::OK,
        _ => StatusCode::CREATED,
    }
    .into_response())
}

pub async fn get_artifact(
    State(state): State<AppState>,
    Path((run_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !state.config.public_queries {
        authorize(&headers, &state.config.query_tokens)?;
    }
    let found = state.store.artifact(&run_id, &name).await?;
    let (content_type, content) = found
        .ok_or_else(|| AppError::NotFound(format!("no artifact {name:?} for run {run_id}")))?;
    Ok(([(header::CONTENT_TYPE, content_type)], content).into_response())
}
