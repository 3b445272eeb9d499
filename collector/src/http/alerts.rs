//! `/api/v1/alerts…` and `/api/v1/silences…`: alert states and their
//! transitions, acknowledgements, silences, and the outbox's dead letters.
//! Reads follow `public_queries`; writes always need a query token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AppError, AppState, authorize, read_body};
use crate::alerts::engine::{self, Context};
use crate::alerts::rules::RuleSet;
use crate::alerts::silences::{Matchers, Silence};

const MAX_SILENCE_MS: i64 = 90 * 86_400_000;
const MAX_BODY: usize = 16 * 1024;

fn check_read(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    if state.config.public_queries {
        Ok(())
    } else {
        authorize(headers, &state.config.query_tokens)
    }
}

fn only(raw: &HashMap<String, String>, allowed: &[&str]) -> Result<(), AppError> {
    if let Some(unknown) = raw.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AppError::BadRequest(format!(
            "unknown query parameter `{unknown}`; this endpoint takes {}",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    Ok(())
}

fn number(
    raw: &HashMap<String, String>,
    name: &str,
    default: i64,
    max: i64,
) -> Result<i64, AppError> {
    match raw.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "parameter `{name}`: {v:?} is not a number from 0 to {max}"
                ))
            }),
    }
}

/// `GET /api/v1/alerts?state=firing`: every alert with its state and latest numbers.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "alerts",
    params(super::openapi::AlertsParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::AlertsResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_read(&state, &headers)?;
    only(&raw, &["state"])?;
    let filter = raw.get("state").cloned();
    if let Some(s) = &filter
        && crate::alerts::state::State::parse(s).is_none()
    {
        return Err(AppError::BadRequest(format!(
            "parameter `state`: {s:?} is not one of ok, pending, firing, resolved, insufficient_data, error"
        )));
    }
    let now = state.store.clock.now_ms();
    let rows = state.store.alert_states(filter).await?;
    let silences = state.store.silences(now).await?;
    let rules = RuleSet::new(&state.config.alerts);
    let ctx = Context {
        rules: &rules,
        silences: &silences,
        deliver: false,
        mail_domain: "",
    };
    let alerts: Vec<Value> = rows
        .into_iter()
        .map(|s| {
            let (id, acked_ms, acked_by, record) = (s.id, s.acked_ms, s.acked_by, s.record);
            json!({
                "id": id,
                "rule": record.rule,
                "kind": record.kind,
                "state": record.state,
                "since_ms": record.since_ms,
                "site": record.site,
                "series": record.series,
                "flow": record.flow,
                "location": record.location,
                "started_ms": record.started_ms,
                "fired_ms": record.fired_ms,
                "resolved_ms": record.resolved_ms,
                "numbers": record.numbers,
                "fired_numbers": record.fired_numbers,
                "notified": record.notified,
                "message_id": record.message_id,
                "acked_ms": acked_ms,
                "acked_by": acked_by,
                "silenced": engine::silenced(&ctx, &record, now),
            })
        })
        .collect();
    Ok(Json(json!({ "alerts": alerts })))
}

/// `GET /api/v1/alerts/transitions?alert=ID&since=MS&limit=N`: newest first.
#[utoipa::path(
    get, path = "/api/v1/alerts/transitions", tag = "alerts",
    params(super::openapi::TransitionsParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::TransitionsResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn transitions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_read(&state, &headers)?;
    only(&raw, &["alert", "since", "limit"])?;
    let alert = raw.get("alert").cloned();
    let since = number(&raw, "since", 0, i64::MAX)?;
    let limit = number(&raw, "limit", 100, 1000)?;
    let rows = state.store.transitions(alert, since, limit).await?;
    Ok(Json(json!({ "transitions": rows })))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct AckBody {
    /// Who acknowledges (shown in the alert list).
    by: String,
}

/// `POST /api/v1/alerts/{id}/ack`: stops reminders for a firing alert until it resolves.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/ack", tag = "alerts",
    params(("id" = String, Path, description = "The alert's id")),
    request_body(content = Option<super::openapi::AckRequest>, content_type = "application/json"),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "Acknowledged", body = super::openapi::AckResponse),
        (status = 400, description = "The body is not `{\"by\": \"name\"}`", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such alert", body = super::openapi::ErrorBody),
        (status = 409, description = "The alert is not firing", body = super::openapi::ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    authorize(&headers, &state.config.query_tokens)?;
    let bytes = read_body(body, &headers, MAX_BODY).await?;
    let ack: AckBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            AppError::BadRequest(format!("body: {e} (expected {{\"by\": \"name\"}})"))
        })?
    };
    let now = state.store.clock.now_ms();
    let by = if ack.by.is_empty() {
        "unknown".to_string()
    } else {
        ack.by
    };
    write_ack(&state, &id, &by, now).await?;
    Ok(Json(json!({ "id": id, "acked_ms": now })).into_response())
}

/// Acknowledge a firing alert (the API's and the dashboard's one path):
/// unknown ids are 404, an alert that is not firing is 409.
pub async fn write_ack(state: &AppState, id: &str, by: &str, now_ms: i64) -> Result<(), AppError> {
    state.store.acknowledge(id, by, now_ms).await?;
    Ok(())
}

/// A silence as asked for, over the API (JSON) or from the dashboard's form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    #[serde(default)]
    pub matchers: Matchers,
    /// Unix ms; default now.
    pub starts_ms: Option<i64>,
    /// Unix ms; or give `duration`.
    pub ends_ms: Option<i64>,
    /// Like `2h`, `30m`, `1d`.
    pub duration: Option<String>,
    pub comment: String,
    #[serde(default)]
    pub created_by: String,
}

static SILENCE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl NewSilence {
    /// Check the request and make the silence: every error names the field
    /// and says what would be valid.
    pub fn into_silence(self, now_ms: i64) -> Result<Silence, AppError> {
        self.matchers.check().map_err(|(field, reason)| {
            AppError::BadRequest(format!("matchers.{field}: {reason}"))
        })?;
        if self.comment.trim().is_empty() {
            return Err(AppError::BadRequest(
                "`comment` is required: say why, so whoever sees the silence knows".into(),
            ));
        }
        let starts_ms = self.starts_ms.unwrap_or(now_ms);
        let ends_ms = match (self.ends_ms, &self.duration) {
            (Some(_), Some(_)) => {
                return Err(AppError::BadRequest(
                    "give either `ends_ms` or `duration`, not both".into(),
                ));
            }
            (Some(end), None) => end,
            (None, Some(d)) => {
                let d = humantime::parse_duration(d).map_err(|_| {
                    AppError::BadRequest(format!("`duration`: {d:?} is not like 30m, 2h, 1d"))
                })?;
                starts_ms + d.as_millis() as i64
            }
            (None, None) => {
                return Err(AppError::BadRequest(
                    "`ends_ms` or `duration` is required: a silence must expire".into(),
                ));
            }
        };
        if ends_ms <= starts_ms.max(now_ms) {
            return Err(AppError::BadRequest(
                "the silence must end in the future and after it starts".into(),
            ));
        }
        if ends_ms - starts_ms > MAX_SILENCE_MS {
            return Err(AppError::BadRequest(
                "a silence may last at most 90 days".into(),
            ));
        }
        let mut h = Sha256::new();
        h.update(format!(
            "{now_ms}|{}|{}|{}",
            SILENCE_COUNTER.fetch_add(1, Ordering::Relaxed),
            std::process::id(),
            self.comment
        ));
        Ok(Silence {
            id: hex::encode(&h.finalize()[..8]),
            created_ms: now_ms,
            starts_ms,
            ends_ms,
            matchers: self.matchers,
            comment: self.comment,
            created_by: self.created_by,
        })
    }
}

/// Store a checked silence.
pub async fn write_silence(state: &AppState, silence: &Silence) -> Result<(), AppError> {
    state.store.add_silence(silence.clone()).await?;
    Ok(())
}

/// End a silence now; an unknown id is 404.
pub async fn end_silence(state: &AppState, id: &str) -> Result<(), AppError> {
    state.store.end_silence(id).await?;
    Ok(())
}

/// `POST /api/v1/silences`: hold back emails of matching alerts until `ends_ms`.
#[utoipa::path(
    post, path = "/api/v1/silences", tag = "alerts",
    request_body(content = super::openapi::NewSilence, content_type = "application/json"),
    security(("query_token" = [])),
    responses(
        (status = 201, description = "Created", body = super::openapi::Silence),
        (status = 400, description = "Not a valid silence: the field and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn create_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    authorize(&headers, &state.config.query_tokens)?;
    let bytes = read_body(body, &headers, MAX_BODY).await?;
    let new: NewSilence = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::BadRequest(format!(
            "body: {e} (expected {{\"matchers\": {{…}}, \"duration\": \"2h\" or \"ends_ms\": …, \"comment\": \"…\"}})"
        ))
    })?;
    let silence = new.into_silence(state.store.clock.now_ms())?;
    write_silence(&state, &silence).await?;
    Ok((StatusCode::CREATED, Json(json!(silence))).into_response())
}

/// `GET /api/v1/silences`: silences that have not ended.
#[utoipa::path(
    get, path = "/api/v1/silences", tag = "alerts",
    security(("query_token" = [])),
    responses(
        (status = 200, description = "Silences that have not ended", body = super::openapi::SilencesResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn list_silences(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_read(&state, &headers)?;
    only(&raw, &[])?;
    let now = state.store.clock.now_ms();
    let silences = state.store.silences(now).await?;
    Ok(Json(json!({ "silences": silences })))
}

/// `DELETE /api/v1/silences/{id}`: end a silence now.
#[utoipa::path(
    delete, path = "/api/v1/silences/{id}", tag = "alerts",
    params(("id" = String, Path, description = "The silence's id")),
    security(("query_token" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 404, description = "No such silence", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, AppError> {
    authorize(&headers, &state.config.query_tokens)?;
    end_silence(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/alerts/dead-letters?limit=N`: emails the SMTP server refused for good.
#[utoipa::path(
    get, path = "/api/v1/alerts/dead-letters", tag = "alerts",
    params(super::openapi::DeadLettersParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::DeadLettersResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_read(&state, &headers)?;
    only(&raw, &["limit"])?;
    let limit = number(&raw, "limit", 100, 1000)?;
    let rows = state.store.dead_letters(limit).await?;
    let letters: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "message_id": r.message.message_id,
                "subject": r.message.subject,
                "recipients": r.message.recipients,
                "created_ms": r.message.created_ms,
                "attempts": r.attempts,
                "error": r.last_error,
                "dead_since_ms": r.done_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": letters })))
}
