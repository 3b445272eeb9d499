//! `/api/v1/…`: JSON queries over stored samples and runs. Every parameter
//! error names the parameter and what would be valid (see `docs/api.md`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use vitalsign_core::metric::Metric;

use super::{AppError, AppState, authorize};
use crate::store::attribution::{AttributionKind, attribution_kinds_for};
use crate::store::query::Filter;

const FILTERS: [&str; 7] = [
    "site",
    "page_group",
    "device",
    "source",
    "flow",
    "step",
    "location",
];
const MAX_RANGE_MS: i64 = 400 * 86_400_000;
/// 9999-12-31T23:59:59.999Z.
pub const MAX_MS: i64 = 253_402_300_799_999;

struct Params(HashMap<String, String>);

impl Params {
    /// Reject parameters this endpoint does not know: a typo must not silently widen a query.
    fn new(raw: HashMap<String, String>, allowed: &[&str]) -> Result<Params, AppError> {
        if let Some(unknown) = raw.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(AppError::BadRequest(format!(
                "unknown query parameter `{unknown}`; this endpoint takes {}",
                allowed.join(", ")
            )));
        }
        Ok(Params(raw))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn metric(&self) -> Result<Metric, AppError> {
        let raw = self.get("metric").ok_or_else(|| {
            AppError::BadRequest(
                "parameter `metric` is required (LCP, CLS, INP, FCP, TTFB or TBT)".into(),
            )
        })?;
        Metric::parse(raw).ok_or_else(|| {
            AppError::BadRequest(format!(
                "parameter `metric`: {raw:?} is not one of LCP, CLS, INP, FCP, TTFB, TBT"
            ))
        })
    }

    /// Unix ms from 0 to the end of year 9999: outside that no sample can
    /// exist, and the range arithmetic (and SQLite's hour numbers) would overflow.
    fn millis(&self, name: &str) -> Result<Option<i64>, AppError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|ms| (0..=MAX_MS).contains(ms))
                    .ok_or_else(|| {
                        AppError::BadRequest(format!(
                            "parameter `{name}`: {v:?} is not Unix time in milliseconds (0 to {MAX_MS})"
                        ))
                    })
            })
            .transpose()
    }

    fn duration(&self, name: &str) -> Result<Option<i64>, AppError> {
        self.get(name)
            .map(|v| {
                humantime::parse_duration(v)
                    .ok()
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
                    .ok_or_else(|| {
                        AppError::BadRequest(format!(
                            "parameter `{name}`: {v:?} is not a duration like 1h, 7d, 30d"
                        ))
                    })
            })
            .transpose()
    }

    /// `from`/`to` in Unix ms, or `range` back from now (default 24h).
    fn time_range(&self, now_ms: i64) -> Result<(i64, i64), AppError> {
        let to = self.millis("to")?.unwrap_or(now_ms);
        let from = match (self.millis("from")?, self.duration("range")?) {
            (Some(_), Some(_)) => {
                return Err(AppError::BadRequest(
                    "give either `from` or `range`, not both".into(),
                ));
            }
            (Some(from), None) => from,
            (None, range) => to.saturating_sub(range.unwrap_or(86_400_000)),
        };
        if from >= to {
            return Err(AppError::BadRequest(
                "parameter `from` must be before `to`".into(),
            ));
        }
        if to - from > MAX_RANGE_MS {
            return Err(AppError::BadRequest(
                "the time range may span at most 400 days".into(),
            ));
        }
        Ok((from, to))
    }

    fn filter(&self) -> Result<Filter, AppError> {
        let get = |k: &str| self.get(k).map(str::to_string);
        let filter = Filter {
            site: get("site"),
            page_group: get("page_group"),
            device: get("device"),
            source: get("source"),
            flow: get("flow"),
            step: get("step"),
            location: get("location"),
        };
        if let Some(source) = &filter.source
            && vitalsign_core::metric::Source::parse(source).is_none()
        {
            return Err(AppError::BadRequest(format!(
                "parameter `source`: {source:?} is not rum or synthetic"
            )));
        }
        Ok(filter)
    }

    fn limit(&self, default: usize) -> Result<usize, AppError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "parameter `limit`: {v:?} is not a number from 1 to 1000"
                    ))
                }),
        }
    }
}

fn allowed(extra: &[&'static str]) -> Vec<&'static str> {
    let mut all = vec!["metric", "from", "to", "range"];
    all.extend(FILTERS);
    all.extend(extra);
    all
}

fn check_access(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    if state.config.public_queries {
        Ok(())
    } else {
        authorize(headers, &state.config.query_tokens)
    }
}

#[utoipa::path(
    get, path = "/api/v1/summary", tag = "queries",
    params(super::openapi::QueryParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::SummaryResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_access(&state, &headers)?;
    let p = Params::new(raw, &allowed(&[]))?;
    let (metric, (from, to), filter) = (
        p.metric()?,
        p.time_range(state.store.clock.now_ms())?,
        p.filter()?,
    );
    let summary = state.store.summary(metric, from, to, &filter).await?;
    Ok(Json(
        json!({ "metric": metric, "from": from, "to": to, "filter": filter, "summary": summary }),
    ))
}

#[utoipa::path(
    get, path = "/api/v1/series", tag = "queries",
    params(super::openapi::SeriesParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::SeriesResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn series(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_access(&state, &headers)?;
    let p = Params::new(raw, &allowed(&["bucket"]))?;
    let (metric, (from, to), filter) = (
        p.metric()?,
        p.time_range(state.store.clock.now_ms())?,
        p.filter()?,
    );
    let bucket = p.duration("bucket")?.unwrap_or(3_600_000);
    if bucket < 60_000 {
        return Err(AppError::BadRequest(
            "parameter `bucket` must be at least 1m".into(),
        ));
    }
    if (to - from) / bucket > 10_000 {
        return Err(AppError::BadRequest(
            "parameter `bucket` is too small for this range (more than 10000 buckets)".into(),
        ));
    }
    let points = state
        .store
        .series(metric, from, to, bucket, &filter)
        .await?;
    Ok(Json(
        json!({ "metric": metric, "from": from, "to": to, "bucket_ms": bucket, "filter": filter, "points": points }),
    ))
}

#[utoipa::path(
    get, path = "/api/v1/top-pages", tag = "queries",
    params(super::openapi::TopPagesParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::TopPagesResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn top_pages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_access(&state, &headers)?;
    let p = Params::new(raw, &allowed(&["limit"]))?;
    let (metric, (from, to), filter, limit) = (
        p.metric()?,
        p.time_range(state.store.clock.now_ms())?,
        p.filter()?,
        p.limit(20)?,
    );
    let pages = state
        .store
        .top_pages(metric, from, to, &filter, limit)
        .await?;
    Ok(Json(
        json!({ "metric": metric, "from": from, "to": to, "filter": filter, "pages": pages }),
    ))
}

/// What caused a metric's values over a range, ranked from the hourly
/// attribution counts: `kind` says which cause (`lcp_element`, `inp_target`, …).
#[utoipa::path(
    get, path = "/api/v1/attribution", tag = "queries",
    params(super::openapi::AttributionParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::AttributionResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn attribution(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_access(&state, &headers)?;
    // Attribution comes from beacons only: the synthetic dimensions would match nothing.
    let p = Params::new(
        raw,
        &[
            "metric",
            "kind",
            "from",
            "to",
            "range",
            "site",
            "page_group",
            "device",
            "limit",
        ],
    )?;
    let (metric, (from, to), filter, limit) = (
        p.metric()?,
        p.time_range(state.store.clock.now_ms())?,
        p.filter()?,
        p.limit(10)?,
    );
    let kinds = attribution_kinds_for(metric);
    let names = kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if kinds.is_empty() {
        return Err(AppError::BadRequest(format!(
            "parameter `metric`: {metric} is a lab metric and has no attribution; use LCP, INP, CLS, FCP or TTFB"
        )));
    }
    let kind = match p.get("kind") {
        None => {
            return Err(AppError::BadRequest(format!(
                "parameter `kind` is required; for {metric} it is one of {names}"
            )));
        }
        Some(raw) => AttributionKind::parse(raw)
            .filter(|k| kinds.contains(k))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "parameter `kind`: {raw:?} is not an attribution kind of {metric}; use one of {names}"
                ))
            })?,
    };
    let items = state
        .store
        .top_attribution(metric, kind, from, to, &filter, limit)
        .await?;
    Ok(Json(
        json!({ "metric": metric, "kind": kind, "from": from, "to": to, "filter": filter, "items": items }),
    ))
}

#[utoipa::path(
    get, path = "/api/v1/runs", tag = "queries",
    params(super::openapi::RunsParams),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The result", body = super::openapi::RunsResponse),
        (status = 400, description = "A parameter is unknown or invalid: which, and what would be valid", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or unknown query token", body = super::openapi::ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = super::openapi::ErrorBody),
    ),
)]
pub async fn runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    check_access(&state, &headers)?;
    let p = Params::new(raw, &["flow", "location", "outcome", "from", "limit"])?;
    let limit = p.limit(50)?;
    let since = p.millis("from")?;
    if let Some(o) = p.get("outcome")
        && !matches!(o, "pass" | "fail" | "error")
    {
        return Err(AppError::BadRequest(format!(
            "parameter `outcome`: {o:?} is not pass, fail or error"
        )));
    }
    let (flow, location, outcome) = (
        p.get("flow").map(str::to_string),
        p.get("location").map(str::to_string),
        p.get("outcome").map(str::to_string),
    );
    let runs = state
        .store
        .recent_runs(flow, location, outcome, since, limit)
        .await?;
    Ok(Json(json!({ "runs": runs })))
}
