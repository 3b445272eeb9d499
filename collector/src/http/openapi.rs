//! The OpenAPI 3.1 description of the collector's HTTP API, served at
//! `GET /api/v1/openapi.json` without a token (it describes the API, it holds
//! no data; the operations it lists still need theirs).
//!
//! Generated with utoipa: the wire types (`Beacon`, `ProbeRun`, …) derive their
//! schemas in `vitalsign-core` (feature `openapi`), the query and alert
//! handlers carry `#[utoipa::path]` annotations where they are defined, and the
//! JSON bodies those handlers build with `json!` are described here by the
//! `*Response` types. `tests/tests/openapi.rs` runs schemathesis against a live
//! collector with this description, so a handler that answers something else
//! than described fails the suite. The ingest operations are annotated on
//! stubs below (their handlers in `ingest.rs` read the raw body themselves).

#![allow(dead_code)] // The stubs and schema types exist for the derive macros only.

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_core::wire::beacon::{
    Attribution, Beacon, DeviceClass, EffectiveType, InteractionType, NavigationType, Report,
};
use vitalsign_core::wire::run::{Artifact, Failure, Outcome, PageView, ProbeRun, Step, Vitals};

use super::{alerts, api, ops};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vitalsign collector",
        description = "Ingest of RUM beacons and probe runs, queries over stored vitals and runs, alerts and silences, health. Prose and curl examples: docs/api.md and docs/alerts.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        rum, rum_preflight, runs, put_artifact, get_artifact,
        api::summary, api::series, api::top_pages, api::attribution, api::runs,
        alerts::list, alerts::transitions, alerts::acknowledge, alerts::dead_letters,
        alerts::list_silences, alerts::create_silence, alerts::delete_silence,
        ops::healthz, ops::readyz, ops::metrics, ops::snippet, openapi_json,
    ),
    components(schemas(
        Beacon, Report, Attribution, NavigationType, DeviceClass, EffectiveType, InteractionType,
        ProbeRun, Outcome, Failure, Step, PageView, Vitals, Artifact, Metric, Rating,
        ErrorBody, RunAccepted, FilterEcho, Summary, SeriesPoint, PageRank, AttributionKind,
        AttributionRank, SummaryResponse, SeriesResponse, TopPagesResponse, AttributionResponse,
        RunsResponse, Alert, AlertsResponse, Transition, TransitionsResponse, AckRequest,
        AckResponse, Matchers, NewSilence, Silence, SilencesResponse, DeadLetter,
        DeadLettersResponse,
    )),
    modifiers(&BearerTokens),
    tags(
        (name = "ingest", description = "Beacons from browsers, runs and artifacts from agents"),
        (name = "queries", description = "Stored vitals and runs (query token unless `public_queries`)"),
        (name = "alerts", description = "Alert states, transitions, acknowledgements, silences, dead letters"),
        (name = "operations", description = "Health, readiness, metrics, the snippet, this description"),
    ),
)]
pub struct ApiDoc;

/// The description as served: OpenAPI 3.1 JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("agent_token", "one of `agent_tokens`: what agents send"),
            (
                "query_token",
                "one of `query_tokens`: for queries and alert changes",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(format!("`Authorization: Bearer TOKEN` with {what}"));
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        // utoipa names an operation after its function, and `runs` is both
        // the ingest and the query handler: name each by method and path.
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    let words: Vec<&str> = path
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .collect();
                    operation.operation_id = Some(format!("{method}_{}", words.join("_")));
                }
            }
        }
    }
}

// --- Bodies the handlers build with `json!` -----------------------------------

/// Every error: what was wrong and how to fix it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Stored,
    AlreadyStored,
}

/// `201` for a new run, `200` for one stored before (a retried delivery).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunAccepted {
    pub run_id: String,
    #[schema(inline)]
    pub status: RunStatus,
}

/// The filter the query applied (`null`: not filtered on).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterEcho {
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    pub source: Option<String>,
    pub flow: Option<String>,
    pub step: Option<String>,
    pub location: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Raw,
    Rollup,
}

/// Percentiles (`null` without samples) and rating shares (0..1).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub count: u64,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub good: f64,
    pub needs_improvement: f64,
    pub poor: f64,
    /// `raw` (exact) or `rollup` (hourly histograms, ±1 %).
    #[schema(inline)]
    pub resolution: Resolution,
}

/// One bucket of a series: its start and the summary of its samples. Written
/// out rather than `#[serde(flatten)]`: a flattened `allOf` with the closed
/// `Summary` schema would refuse `start_ms` (schemathesis found that).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesPoint {
    /// Start of the bucket, Unix ms. Buckets of whole days start at UTC
    /// midnight, so the first may start before `from` (it then holds only
    /// the range's part of that day); other buckets start at `from`.
    pub start_ms: i64,
    pub count: u64,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub good: f64,
    pub needs_improvement: f64,
    pub poor: f64,
    #[schema(inline)]
    pub resolution: Resolution,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRank {
    pub site: String,
    pub page_group: String,
    pub count: u64,
    pub p75: Option<f64>,
    pub good: f64,
    pub poor: f64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttributionKind {
    LcpElement,
    LcpResource,
    InpTarget,
    ClsSource,
    NavigationType,
    Connection,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionRank {
    /// The selector, URL or label; `""` for samples without it, `"(other)"` past the dictionary.
    pub item: String,
    pub count: u64,
    pub share: f64,
    pub mean_value: Option<f64>,
    pub mean_input_delay: Option<f64>,
    pub mean_processing: Option<f64>,
    pub mean_presentation: Option<f64>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryResponse {
    pub metric: Metric,
    pub from: i64,
    pub to: i64,
    pub filter: FilterEcho,
    pub summary: Summary,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesResponse {
    pub metric: Metric,
    pub from: i64,
    pub to: i64,
    pub bucket_ms: i64,
    pub filter: FilterEcho,
    pub points: Vec<SeriesPoint>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopPagesResponse {
    pub metric: Metric,
    pub from: i64,
    pub to: i64,
    pub filter: FilterEcho,
    pub pages: Vec<PageRank>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionResponse {
    pub metric: Metric,
    pub kind: AttributionKind,
    pub from: i64,
    pub to: i64,
    pub filter: FilterEcho,
    pub items: Vec<AttributionRank>,
}

/// Newest first, as the agents delivered them.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsResponse {
    pub runs: Vec<ProbeRun>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Ok,
    Pending,
    Firing,
    Resolved,
    InsufficientData,
    Error,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Regression,
    Budget,
    FlowFailure,
    FlowStale,
}

/// One alert: a rule applied to a series or to a flow at a location.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub id: String,
    pub rule: String,
    #[schema(inline)]
    pub kind: RuleKind,
    #[schema(inline)]
    pub state: AlertState,
    pub since_ms: i64,
    pub site: String,
    /// Regression and budget alerts: the series (metric, site, page group, device, source…).
    #[schema(value_type = Option<Object>)]
    pub series: Option<serde_json::Value>,
    pub flow: String,
    pub location: String,
    pub started_ms: Option<i64>,
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    /// The latest observation (the detector's numbers).
    #[schema(value_type = Object)]
    pub numbers: serde_json::Value,
    /// The observation that made it fire.
    #[schema(value_type = Option<Object>)]
    pub fired_numbers: Option<serde_json::Value>,
    pub notified: bool,
    pub message_id: Option<String>,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    pub silenced: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsResponse {
    pub alerts: Vec<Alert>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub seq: i64,
    pub alert_id: String,
    pub rule: String,
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    #[schema(value_type = Object)]
    pub numbers: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionsResponse {
    pub transitions: Vec<Transition>,
}

/// Optional body of an acknowledgement (an empty body is `by: "unknown"`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who acknowledges (shown in the alert list).
    #[serde(default)]
    pub by: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckResponse {
    pub id: String,
    pub acked_ms: i64,
}

/// Which alerts a silence covers; unset fields match everything.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Matchers {
    pub rule: Option<String>,
    pub site: Option<String>,
    /// Glob over page groups.
    pub page_group: Option<String>,
    pub metric: Option<String>,
    pub flow: Option<String>,
    pub location: Option<String>,
}

/// A silence to create: `comment` and one of `ends_ms` or `duration` are required.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    #[serde(default)]
    pub matchers: Option<Matchers>,
    /// Unix ms; default now.
    pub starts_ms: Option<i64>,
    /// Unix ms; or give `duration`.
    pub ends_ms: Option<i64>,
    /// Like `2h`, `30m`, `1d` (at most 90 days).
    pub duration: Option<String>,
    pub comment: String,
    #[serde(default)]
    pub created_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    pub id: String,
    pub created_ms: i64,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub matchers: Matchers,
    pub comment: String,
    pub created_by: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilencesResponse {
    pub silences: Vec<Silence>,
}

/// An email the SMTP server refused for good.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub seq: i64,
    pub message_id: String,
    pub subject: String,
    pub recipients: Vec<String>,
    pub created_ms: i64,
    pub attempts: i64,
    pub error: Option<String>,
    pub dead_since_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersResponse {
    pub dead_letters: Vec<DeadLetter>,
}

// --- Query parameters -----------------------------------------------------------

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Rum,
    Synthetic,
}

/// `/api/v1/summary`: time range (`from`/`to` in Unix ms, or `range` back from
/// `to`, default 24h, at most 400 days) and filters. Unknown parameters are 400.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueryParams {
    /// LCP, CLS, INP, FCP, TTFB or TBT.
    #[param(required = true, inline)]
    pub metric: Metric,
    /// Unix ms; exclusive with `range`.
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub from: Option<i64>,
    /// Unix ms; default now.
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub to: Option<i64>,
    /// A duration like `1h`, `7d`, `30d`; exclusive with `from`.
    pub range: Option<String>,
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    #[param(inline)]
    pub source: Option<Source>,
    pub flow: Option<String>,
    pub step: Option<String>,
    pub location: Option<String>,
}

/// `/api/v1/series`: as summary, plus the bucket width.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    #[param(required = true, inline)]
    pub metric: Metric,
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub from: Option<i64>,
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub to: Option<i64>,
    pub range: Option<String>,
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    #[param(inline)]
    pub source: Option<Source>,
    pub flow: Option<String>,
    pub step: Option<String>,
    pub location: Option<String>,
    /// Bucket width, at least `1m`, at most 10000 buckets; default `1h`.
    /// Whole days (`1d`, `7d`) start at UTC midnight.
    pub bucket: Option<String>,
}

/// `/api/v1/top-pages`: as summary, plus how many pages.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopPagesParams {
    #[param(required = true, inline)]
    pub metric: Metric,
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub from: Option<i64>,
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub to: Option<i64>,
    pub range: Option<String>,
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    #[param(inline)]
    pub source: Option<Source>,
    pub flow: Option<String>,
    pub step: Option<String>,
    pub location: Option<String>,
    /// 1 to 1000; default 20.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `/api/v1/attribution`: RUM only, so only the RUM filters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttributionParams {
    /// LCP, INP, CLS, FCP or TTFB (TBT is lab-only and has none).
    #[param(required = true, inline)]
    pub metric: Metric,
    /// Which cause to rank; must belong to the metric (`lcp_element` and
    /// `lcp_resource` for LCP, `inp_target` for INP, `cls_source` for CLS;
    /// `navigation_type` and `connection` for all five).
    #[param(required = true, inline)]
    pub kind: AttributionKind,
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub from: Option<i64>,
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub to: Option<i64>,
    pub range: Option<String>,
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    /// 1 to 1000; default 10.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    Pass,
    Fail,
    Error,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    pub flow: Option<String>,
    pub location: Option<String>,
    #[param(inline)]
    pub outcome: Option<RunOutcome>,
    /// Only runs started at or after this Unix ms.
    #[param(minimum = 0, maximum = 253402300799999_i64)]
    pub from: Option<i64>,
    /// 1 to 1000; default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsParams {
    #[param(inline)]
    pub state: Option<AlertState>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransitionsParams {
    /// Only this alert's transitions.
    pub alert: Option<String>,
    /// Unix ms; default 0.
    #[param(minimum = 0)]
    pub since: Option<i64>,
    /// 0 to 1000; default 100.
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersParams {
    /// 0 to 1000; default 100.
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
}

// --- Ingest and this description, annotated on stubs ----------------------------

/// Accept a beacon from the snippet (`navigator.sendBeacon`, so browsers send
/// it as `text/plain`; `application/json` is accepted too). No token: the
/// site must be configured and the page's `Origin` in its `origins`.
#[utoipa::path(
    post, path = "/v1/rum", tag = "ingest",
    request_body(content = Beacon, content_type = "application/json"),
    responses(
        (status = 204, description = "Stored (the write has committed)"),
        (status = 400, description = "Not a valid beacon: the field and what is wrong", body = ErrorBody),
        (status = 403, description = "Unknown site, or an origin the site does not allow", body = ErrorBody),
        (status = 413, description = "Larger than `max_beacon_bytes`", body = ErrorBody),
        (status = 415, description = "Not text/plain or application/json, not UTF-8, or compressed", body = ErrorBody),
        (status = 429, description = "Rate limit of this client address", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
    ),
)]
fn rum() {}

/// CORS preflight for `/v1/rum`.
#[utoipa::path(
    options, path = "/v1/rum", tag = "ingest",
    responses((status = 204, description = "Allowed methods and headers; `Access-Control-Allow-Origin` for a configured origin")),
)]
fn rum_preflight() {}

/// Deliver a probe run. Idempotent by `run_id`.
#[utoipa::path(
    post, path = "/v1/runs", tag = "ingest",
    request_body(content = ProbeRun, content_type = "application/json"),
    security(("agent_token" = [])),
    responses(
        (status = 201, description = "Stored", body = RunAccepted),
        (status = 200, description = "Stored before: a retried delivery", body = RunAccepted),
        (status = 400, description = "Not a valid run: the field and what is wrong", body = ErrorBody),
        (status = 401, description = "Missing or unknown agent token", body = ErrorBody),
        (status = 413, description = "Larger than `max_run_bytes`", body = ErrorBody),
    ),
)]
fn runs() {}

/// Upload an artifact (a screenshot) named in a run's `artifacts`.
#[utoipa::path(
    put, path = "/v1/runs/{run_id}/artifacts/{name}", tag = "ingest",
    params(("run_id" = String, Path), ("name" = String, Path)),
    request_body(content = String, content_type = "application/octet-stream",
        description = "The file's bytes; its Content-Type is stored and served back"),
    security(("agent_token" = [])),
    responses(
        (status = 201, description = "Stored"),
        (status = 200, description = "Stored before"),
        (status = 400, description = "The run does not name this artifact, or the bytes do not match its sha256", body = ErrorBody),
        (status = 401, description = "Missing or unknown agent token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 413, description = "Larger than `max_artifact_bytes`", body = ErrorBody),
    ),
)]
fn put_artifact() {}

/// Download an artifact, with the Content-Type it was uploaded with.
#[utoipa::path(
    get, path = "/v1/runs/{run_id}/artifacts/{name}", tag = "ingest",
    params(("run_id" = String, Path), ("name" = String, Path)),
    security(("query_token" = [])),
    responses(
        (status = 200, description = "The artifact's bytes", content_type = "application/octet-stream", body = String),
        (status = 401, description = "Missing or unknown query token", body = ErrorBody),
        (status = 404, description = "No such artifact", body = ErrorBody),
    ),
)]
fn get_artifact() {}

/// This description. No token needed: it holds no data.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)),
)]
fn openapi_json() {}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}
