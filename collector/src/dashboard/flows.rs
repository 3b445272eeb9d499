//! `/flows`: every flow × location with its last outcome, pass rate over the
//! range, when its last result arrived and whether it is stale;
//! `/flows/runs`: runs newest first, paginated on the server;
//! `/runs/{id}`: one run's steps, each beside the same step's median over the
//! previous runs of that flow at that location, with its screenshots;
//! `/runs/{id}/artifacts/{name}`: an artifact, behind the same sign-in.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Serialize;
use serde_json::json;
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::ProbeRun;
use vitalsign_core::wire::run::{Step, Vitals};

use super::export::{self, Table, num};
use super::layout::{self, FilterSet, Nav, ago, percent, rated, when};
use super::overview::{gap, params_path};
use super::params::{Format, ViewParams, link};
use super::{Viewer, error_page, html_response, store_failed};
use crate::http::AppState;
use crate::store::flows::{self, FlowHealth};
use crate::store::views::Dimensions;

/// Runs on one page of `/flows/runs`.
pub const RUNS_PAGE: usize = 50;
/// Previous runs a run's steps are compared with.
pub const MEDIAN_RUNS: usize = 20;
/// Most runs a CSV or JSON export of `/flows/runs` holds.
const EXPORT_MAX: usize = 10_000;
/// Artifact types a page may show inline. SVG is not among them: it can
/// carry script, so it is only ever served as a download.
const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "image/gif"];

fn page_error(v: &Viewer, e: super::params::ParamError) -> Response {
    error_page(StatusCode::BAD_REQUEST, v.session.is_some(), v.now_ms, &e.0)
}

/// `812 ms`, `2.1 s`, as metric values are written.
fn duration(ms: f64) -> String {
    vitalsign_core::format::duration_ms(ms)
}

/// `512 B`, `48.2 kB`, `1.3 MB`.
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

fn runs_href(flow: &str, location: &str) -> String {
    link(
        "/flows/runs",
        [("flow", flow), ("location", location)].into_iter(),
    )
}

fn run_href(run_id: &str) -> String {
    format!("/runs/{}", params_path(run_id))
}

fn artifact_href(run_id: &str, name: &str) -> String {
    format!(
        "/runs/{}/artifacts/{}",
        params_path(run_id),
        params_path(name)
    )
}

fn outcome(word: &str) -> Markup {
    html! { span class={"outcome " (word)} { (word) } }
}

// ------------------------------------------------------------------ /flows

#[derive(Serialize)]
struct FlowsData {
    from_ms: i64,
    to_ms: i64,
    flows: Vec<FlowHealth>,
}

pub async fn list(State(state): State<AppState>, v: Viewer) -> Response {
    let p = v.params.clone();
    let now = v.now_ms;
    let read = async {
        let store = &state.store;
        let dims = store.dimensions().await?;
        let mut health = store.flow_health(now, p.from_ms).await?;
        health.retain(|f| {
            p.flow.as_ref().is_none_or(|x| *x == f.flow)
                && p.location.as_ref().is_none_or(|x| *x == f.location)
        });
        Ok((dims, health))
    }
    .await;
    let (dims, health) = match read {
        Ok(x) => x,
        Err(e) => return store_failed(e, v.now_ms),
    };
    let data = FlowsData {
        from_ms: v.params.from_ms,
        to_ms: v.params.to_ms,
        flows: health,
    };
    match v.params.format {
        Format::Json => export::json(json!(data)),
        Format::Csv => export::csv("flows", &flows_table(&data.flows)),
        Format::Html => render_list(&v, &dims, &data),
    }
}

fn flows_table(flows: &[FlowHealth]) -> Table {
    Table {
        header: vec![
            "flow",
            "location",
            "last_outcome",
            "last_run_id",
            "last_started_ms",
            "last_received_ms",
            "runs",
            "passes",
            "pass_rate",
            "median_gap_ms",
            "stale",
        ],
        rows: flows
            .iter()
            .map(|f| {
                vec![
                    f.flow.clone(),
                    f.location.clone(),
                    f.last_outcome.clone(),
                    f.last_run_id.clone(),
                    f.last_started_ms.to_string(),
                    f.last_received_ms.to_string(),
                    f.runs.to_string(),
                    f.passes.to_string(),
                    num(f.pass_rate),
                    f.median_gap_ms.map_or(String::new(), |g| g.to_string()),
                    f.stale.to_string(),
                ]
            })
            .collect(),
    }
}

fn render_list(v: &Viewer, dims: &Dimensions, data: &FlowsData) -> Response {
    let p = &v.params;
    let set = FilterSet {
        flows: &dims.flows,
        locations: &dims.locations,
        flow: true,
        ..FilterSet::default()
    };
    let mut chrome = v.chrome("Flows", Nav::Flows);
    chrome.exports = Some((
        p.href("/flows", &[("format", "csv")]),
        p.href("/flows", &[("format", "json")]),
    ));
    let body = html! {
        @if data.flows.is_empty() {
            (layout::empty("No probe results here yet.", "Start an agent with a flow file; each flow at each location appears here with its runs."))
        } @else {
            table.flows {
                caption { "Each flow at each location; pass rate over the runs started in this range" }
                thead { tr {
                    th scope="col" { "Flow" }
                    th scope="col" { "Location" }
                    th scope="col" { "Last outcome" }
                    th scope="col" { "Pass rate (this range)" }
                    th scope="col" { "Last result" }
                    th scope="col" { "Usual interval" }
                    th scope="col" { "Runs" }
                } }
                tbody {
                    @for f in &data.flows {
                        tr class=[f.stale.then_some("stale")] {
                            th scope="row" { a href=(runs_href(&f.flow, &f.location)) { (f.flow) } }
                            td { (f.location) }
                            td { a href=(run_href(&f.last_run_id)) { (outcome(&f.last_outcome)) } }
                            td {
                                @match f.pass_rate {
                                    Some(r) => { (percent(r)) " of " (f.runs) " runs" },
                                    None => { span.none { "no runs in this range" } },
                                }
                            }
                            td {
                                time datetime=(f.last_received_ms) title=(when(f.last_received_ms)) { (ago(f.last_received_ms, v.now_ms)) }
                                @if f.stale {
                                    " " strong.stale-mark { "stale" }
                                    " (more than " (flows::STALE_FACTOR) " usual intervals without a result)"
                                }
                            }
                            td {
                                @match f.median_gap_ms {
                                    Some(g) => { "every " (gap(g)) },
                                    None => { span.none { "not known yet (fewer than 3 runs)" } },
                                }
                            }
                            td { a href=(runs_href(&f.flow, &f.location)) { "runs of " (f.flow) " at " (f.location) } }
                        }
                    }
                }
            }
        }
    };
    html_response(layout::page(
        &chrome,
        Some(layout::filters("/flows", p, &set)),
        body,
    ))
}

// ------------------------------------------------------------- /flows/runs

/// One run as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub flow: String,
    pub location: String,
    pub outcome: &'static str,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub attempt: u32,
    pub steps: usize,
    /// The step that failed, by name, when the run did not pass.
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
}

impl RunRow {
    fn of(run: &ProbeRun) -> RunRow {
        RunRow {
            run_id: run.run_id.clone(),
            flow: run.flow.clone(),
            location: run.location.clone(),
            outcome: run.outcome.as_str(),
            started_at_ms: run.started_at_ms,
            duration_ms: run.finished_at_ms.saturating_sub(run.started_at_ms),
            attempt: run.attempt,
            steps: run.steps.len(),
            failed_step: run
                .failure
                .as_ref()
                .and_then(|f| f.step)
                .and_then(|i| run.steps.get(i))
                .map(|s| s.name.clone()),
            failure_reason: run.failure.as_ref().map(|f| f.reason.clone()),
        }
    }
}

#[derive(Serialize)]
struct RunsData {
    flow: Option<String>,
    location: Option<String>,
    total: u64,
    page: usize,
    /// More runs after these (an export stops at its limit).
    more: bool,
    runs: Vec<RunRow>,
}

pub async fn runs(State(state): State<AppState>, v: Viewer) -> Response {
    let page = match v.params.page() {
        Ok(n) => n,
        Err(e) => return page_error(&v, e),
    };
    // An export is the whole list (up to its limit), not the page on screen.
    let (offset, limit) = if v.params.format == Format::Html {
        ((page - 1) * RUNS_PAGE, RUNS_PAGE)
    } else {
        (0, EXPORT_MAX)
    };
    let p = v.params.clone();
    let read = async {
        let store = &state.store;
        let (flow, location) = (p.flow.clone(), p.location.clone());
        let (runs, more) = store
            .runs_page(flow.clone(), location.clone(), offset, limit)
            .await?;
        Ok((
            store.dimensions().await?,
            store.count_runs(flow, location).await?,
            runs,
            more,
        ))
    }
    .await;
    let (dims, total, runs, more) = match read {
        Ok(x) => x,
        Err(e) => return store_failed(e, v.now_ms),
    };
    let data = RunsData {
        flow: v.params.flow.clone(),
        location: v.params.location.clone(),
        total,
        page,
        more,
        runs: runs.iter().map(RunRow::of).collect(),
    };
    match v.params.format {
        Format::Json => export::json(json!(data)),
        Format::Csv => export::csv("runs", &runs_table(&data.runs)),
        Format::Html => render_runs(&v, &dims, &data),
    }
}

fn runs_table(runs: &[RunRow]) -> Table {
    Table {
        header: vec![
            "run_id",
            "flow",
            "location",
            "outcome",
            "started_at_ms",
            "duration_ms",
            "attempt",
            "failed_step",
            "failure_reason",
        ],
        rows: runs
            .iter()
            .map(|r| {
                vec![
                    r.run_id.clone(),
                    r.flow.clone(),
                    r.location.clone(),
                    r.outcome.to_string(),
                    r.started_at_ms.to_string(),
                    r.duration_ms.to_string(),
                    r.attempt.to_string(),
                    r.failed_step.clone().unwrap_or_default(),
                    r.failure_reason.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    }
}

/// The run list's own filter: which flow and location (its runs are the
/// latest ones whatever the time range, so it offers no range).
fn runs_filter(p: &ViewParams, dims: &Dimensions) -> Markup {
    let select = |name: &str, label: &str, current: Option<&str>, options: &[String], any: &str| {
        html! {
            label {
                (label)
                select name=(name) {
                    option value="" selected[current.is_none()] { (any) }
                    @for o in options {
                        option value=(o) selected[current == Some(o.as_str())] { (o) }
                    }
                }
            }
        }
    };
    html! {
        form.filters method="get" action="/flows/runs" role="search" aria-label="Filters" {
            (select("flow", "Flow", p.flow.as_deref(), &dims.flows, "All flows"))
            (select("location", "Location", p.location.as_deref(), &dims.locations, "All locations"))
            button type="submit" { "Apply" }
        }
    }
}

fn render_runs(v: &Viewer, dims: &Dimensions, data: &RunsData) -> Response {
    let p = &v.params;
    let title = match (&data.flow, &data.location) {
        (Some(f), Some(l)) => format!("Runs of {f} at {l}"),
        (Some(f), None) => format!("Runs of {f}"),
        (None, Some(l)) => format!("Runs at {l}"),
        (None, None) => "Runs".to_string(),
    };
    let mut chrome = v.chrome(&title, Nav::Flows);
    chrome.exports = Some((
        p.href("/flows/runs", &[("format", "csv"), ("page", "")]),
        p.href("/flows/runs", &[("format", "json"), ("page", "")]),
    ));
    let pages = (data.total as usize).div_ceil(RUNS_PAGE).max(1);
    let body = html! {
        p {
            (data.total) " runs, newest first. "
            a href=(p.href_only("/flows", &[], &[("flow", data.flow.as_deref().unwrap_or("")), ("location", data.location.as_deref().unwrap_or(""))])) { "Health of these flows" }
        }
        @if data.runs.is_empty() {
            (layout::empty("No runs here.", "Runs appear when an agent sends results for this flow and location."))
        } @else {
            table.runs {
                caption { (title) " — page " (data.page) " of " (pages) }
                thead { tr {
                    th scope="col" { "Started" }
                    th scope="col" { "Flow" }
                    th scope="col" { "Location" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Duration" }
                    th scope="col" { "Attempt" }
                    th scope="col" { "Failure" }
                } }
                tbody {
                    @for r in &data.runs {
                        tr {
                            th scope="row" {
                                a href=(run_href(&r.run_id)) {
                                    time datetime=(r.started_at_ms) { (when(r.started_at_ms as i64)) }
                                }
                            }
                            td { (r.flow) }
                            td { (r.location) }
                            td { (outcome(r.outcome)) }
                            td.num { (duration(r.duration_ms as f64)) }
                            td.num { (r.attempt) }
                            td {
                                @if let Some(reason) = &r.failure_reason {
                                    @if let Some(step) = &r.failed_step { "step " q { (step) } ": " }
                                    (reason)
                                }
                            }
                        }
                    }
                }
            }
            nav aria-label="Pagination" .pager {
                @if data.page > 1 { a rel="prev" href=(p.href("/flows/runs", &[("page", &(data.page - 1).to_string())])) { "← Newer" } }
                " Page " (data.page) " of " (pages) " "
                @if data.page < pages { a rel="next" href=(p.href("/flows/runs", &[("page", &(data.page + 1).to_string())])) { "Older →" } }
            }
        }
    };
    html_response(layout::page(&chrome, Some(runs_filter(p, dims)), body))
}

// ----------------------------------------------------------- /runs/{id}

/// The same step's median over the previous runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepMedian {
    /// Previous runs in which this step ran (not skipped).
    pub runs: usize,
    pub duration_ms: Option<f64>,
    pub vitals: Vitals,
}

/// A step's identity across runs: its name and which occurrence of that
/// name it is (a flow may click twice in steps both called "click").
fn step_keys(steps: &[Step]) -> Vec<(String, usize)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    steps
        .iter()
        .map(|s| {
            let n = seen.entry(s.name.as_str()).or_default();
            *n += 1;
            (s.name.clone(), *n - 1)
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    Some(if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    })
}

/// For each step of `run`, the median duration and vitals of the same step
/// in `previous` (skipped steps say nothing about how long a step takes).
pub fn step_medians(run: &ProbeRun, previous: &[ProbeRun]) -> Vec<StepMedian> {
    /// What the previous runs measured for one step: runs, durations, and
    /// the values of each metric in [`Metric::ALL`] order.
    #[derive(Default)]
    struct Samples {
        runs: usize,
        durations: Vec<f64>,
        vitals: [Vec<f64>; Metric::ALL.len()],
    }
    let mut samples: HashMap<(String, usize), Samples> = HashMap::new();
    for prev in previous {
        for (key, step) in step_keys(&prev.steps).into_iter().zip(&prev.steps) {
            if step.outcome == vitalsign_core::wire::run::Outcome::Skipped {
                continue;
            }
            let entry = samples.entry(key).or_default();
            entry.runs += 1;
            entry.durations.push(step.duration_ms);
            for (i, m) in Metric::ALL.iter().enumerate() {
                if let Some(x) = step.vitals.get(*m) {
                    entry.vitals[i].push(x);
                }
            }
        }
    }
    step_keys(&run.steps)
        .into_iter()
        .map(|key| match samples.remove(&key) {
            None => StepMedian::default(),
            Some(found) => {
                let mut v = Vitals::default();
                for (m, xs) in Metric::ALL.iter().zip(found.vitals) {
                    v.set(*m, median(xs));
                }
                StepMedian {
                    runs: found.runs,
                    duration_ms: median(found.durations),
                    vitals: v,
                }
            }
        })
        .collect()
}

/// An uploaded artifact of the run.
#[derive(Debug, Clone, Serialize)]
struct StoredArtifact {
    name: String,
    content_type: String,
    bytes: u64,
}

impl StoredArtifact {
    fn inline(&self) -> bool {
        inline_type(&self.content_type).is_some()
    }
}

/// The canonical image type when `content_type` may be shown inline.
fn inline_type(content_type: &str) -> Option<&'static str> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    INLINE_IMAGES.iter().copied().find(|t| *t == essence)
}

#[derive(Serialize)]
struct RunData {
    run: ProbeRun,
    received_ms: i64,
    /// How many previous runs the medians are over.
    compared_runs: usize,
    medians: Vec<StepMedian>,
    artifacts: Vec<StoredArtifact>,
}

pub async fn run(State(state): State<AppState>, Path(run_id): Path<String>, v: Viewer) -> Response {
    let id = run_id.clone();
    let read = async {
        let store = &state.store;
        let Some((run, received_ms)) = store.run(&id).await? else {
            return Ok(None);
        };
        let previous: Vec<ProbeRun> = store
            .runs_before(
                &run.flow,
                &run.location,
                run.started_at_ms as i64,
                MEDIAN_RUNS + 1,
            )
            .await?
            .into_iter()
            .filter(|r| r.run_id != run.run_id)
            .take(MEDIAN_RUNS)
            .collect();
        let artifacts = store
            .stored_artifacts(&id)
            .await?
            .into_iter()
            .map(|(name, content_type, bytes)| StoredArtifact {
                name,
                content_type,
                bytes,
            })
            .collect();
        Ok(Some(RunData {
            medians: step_medians(&run, &previous),
            compared_runs: previous.len(),
            run,
            received_ms,
            artifacts,
        }))
    }
    .await;
    let missing = format!(
        "There is no run with id {run_id:?}. It may have passed the retention window, or the link is mistyped."
    );
    let data = match super::found(&v, read, &missing) {
        Ok(d) => d,
        Err(page) => return *page,
    };
    match v.params.format {
        Format::Json => export::json(json!(data)),
        Format::Csv => export::csv("run", &steps_table(&data)),
        Format::Html => render_run(&v, &data),
    }
}

fn steps_table(data: &RunData) -> Table {
    let mut header = vec![
        "index",
        "step",
        "kind",
        "outcome",
        "duration_ms",
        "median_duration_ms",
    ];
    for m in Metric::ALL {
        header.push(m.as_str());
        header.push(match m {
            Metric::Lcp => "median_LCP",
            Metric::Inp => "median_INP",
            Metric::Cls => "median_CLS",
            Metric::Fcp => "median_FCP",
            Metric::Ttfb => "median_TTFB",
            Metric::Tbt => "median_TBT",
        });
    }
    header.extend([
        "requests",
        "transfer_bytes",
        "failed_requests",
        "console_errors",
        "status",
        "error",
    ]);
    let rows = data
        .run
        .steps
        .iter()
        .zip(&data.medians)
        .enumerate()
        .map(|(i, (s, med))| {
            let mut row = vec![
                i.to_string(),
                s.name.clone(),
                s.kind.clone(),
                s.outcome.as_str().to_string(),
                num(Some(s.duration_ms)),
                num(med.duration_ms),
            ];
            for m in Metric::ALL {
                row.push(num(s.vitals.get(m)));
                row.push(num(med.vitals.get(m)));
            }
            row.extend([
                s.requests.to_string(),
                s.transfer_bytes.to_string(),
                s.failed_requests.to_string(),
                s.console_errors.to_string(),
                s.status.map_or(String::new(), |c| c.to_string()),
                s.error.clone().unwrap_or_default(),
            ]);
            row
        })
        .collect();
    Table { header, rows }
}

fn render_run(v: &Viewer, data: &RunData) -> Response {
    let run = &data.run;
    let title = format!("Run of {} at {}", run.flow, run.location);
    let mut chrome = v.chrome(&title, Nav::Flows);
    let base = run_href(&run.run_id);
    chrome.exports = Some((
        link(&base, [("format", "csv")].into_iter()),
        link(&base, [("format", "json")].into_iter()),
    ));
    // Only the vitals some step has, in this run or its median, get a column.
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| {
            run.steps.iter().any(|s| s.vitals.get(*m).is_some())
                || data.medians.iter().any(|s| s.vitals.get(*m).is_some())
        })
        .collect();
    let failed_step = run.failure.as_ref().and_then(|f| f.step);
    let n = data.compared_runs;
    let stored = |name: &str| data.artifacts.iter().find(|a| a.name == name);
    // Artifacts listed by the run but by no step (a run that failed before its first step).
    let loose: Vec<&str> = run
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .filter(|name| {
            !run.steps
                .iter()
                .any(|s| s.artifacts.iter().any(|x| x == name))
        })
        .collect();
    let figure = |name: &str, caption: &str| {
        html! {
            @match stored(name) {
                Some(a) if a.inline() => {
                    figure {
                        img.screenshot src=(artifact_href(&run.run_id, name)) alt={"Screenshot " (caption)} loading="lazy";
                        figcaption { (caption) " · " (name) }
                    }
                }
                Some(a) => {
                    p { a href=(artifact_href(&run.run_id, name)) download=(name) { (name) } " (" (a.content_type) ", " (bytes(a.bytes)) ", download) — " (caption) }
                }
                None => {
                    p.none { (name) " — " (caption) ": listed by the run but not uploaded" }
                }
            }
        }
    };
    let body = html! {
        dl.headline {
            div { dt { "Outcome" } dd { (outcome(run.outcome.as_str())) } }
            div { dt { "Started" } dd { time datetime=(run.started_at_ms) { (when(run.started_at_ms as i64)) } } }
            div { dt { "Duration" } dd { (duration(run.finished_at_ms.saturating_sub(run.started_at_ms) as f64)) } }
            div { dt { "Flow" } dd { a href=(runs_href(&run.flow, &run.location)) { (run.flow) " at " (run.location) } } }
            div { dt { "Attempt" } dd { (run.attempt) } }
        }
        dl.meta {
            div { dt { "Run id" } dd { code { (run.run_id) } } }
            div { dt { "Received" } dd { (when(data.received_ms)) " (" (ago(data.received_ms, v.now_ms)) ")" } }
            div { dt { "Iterations" } dd { (run.iterations) } }
            @if let Some(profile) = &run.profile { div { dt { "Profile" } dd { (profile) } } }
            @if let Some(b) = &run.browser_version { div { dt { "Browser" } dd { (b) } } }
            div { dt { "Agent" } dd { (run.agent_version) } }
        }
        @if let Some(f) = &run.failure {
            section.alert-box aria-labelledby="failure-h" {
                h2 #failure-h { "Why it did not pass" }
                p {
                    @if let Some(step) = f.step.and_then(|i| run.steps.get(i)) {
                        "Step " (f.step.unwrap_or(0) + 1) " (" q { (step.name) } "): "
                    }
                    (f.reason)
                }
            }
        }
        section aria-labelledby="steps-h" {
            h2 #steps-h { "Steps" }
            @if run.steps.is_empty() {
                (layout::empty("This run has no steps.", "It ended before its first step; the reason above says why."))
            } @else {
                table.steps {
                    caption {
                        "Each step of this run; under each value, the same step's median over "
                        @if n == 0 { "the previous runs (there are none yet)" }
                        @else { "the previous " (n) " runs of " (run.flow) " at " (run.location) }
                    }
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { "Step" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "Duration" }
                        @for m in &metrics { th scope="col" { (m.as_str()) } }
                        th scope="col" { "Requests" }
                        th scope="col" { "Transfer" }
                        th scope="col" { "Failed" }
                        th scope="col" { "Console errors" }
                        th scope="col" { "Status" }
                    } }
                    tbody {
                        @for (i, (s, med)) in run.steps.iter().zip(&data.medians).enumerate() {
                            tr {
                                td.num { (i + 1) }
                                th scope="row" { (s.name) }
                                td { (s.kind) }
                                td { (outcome(s.outcome.as_str())) }
                                td.num {
                                    span.value { (duration(s.duration_ms)) }
                                    @if let Some(d) = med.duration_ms {
                                        br; span.median { "median " (duration(d)) }
                                    }
                                }
                                @for m in &metrics {
                                    td {
                                        @if s.vitals.get(*m).is_some() { (rated(*m, s.vitals.get(*m))) }
                                        @else { span.none { "—" } }
                                        @if let Some(x) = med.vitals.get(*m) {
                                            br; span.median { "median " (layout::value(*m, Some(x))) }
                                        }
                                    }
                                }
                                td.num { (s.requests) }
                                td.num data-bytes=(s.transfer_bytes) { (bytes(s.transfer_bytes)) }
                                td.num { (s.failed_requests) }
                                td.num { (s.console_errors) }
                                td.num { @if let Some(code) = s.status { (code) } @else { span.none { "—" } } }
                            }
                            // What went wrong gets a row of its own, the width of the table.
                            @let reason = if failed_step == Some(i) { run.failure.as_ref().map(|f| f.reason.as_str()) } else { None };
                            @let error = s.error.as_deref().filter(|e| reason.is_none_or(|r| !r.starts_with(e)));
                            @if error.is_some() || reason.is_some() {
                                tr.step-error {
                                    td {}
                                    td colspan=(9 + metrics.len()) {
                                        @if let Some(e) = error { (e) }
                                        @if error.is_some() && reason.is_some() { br; }
                                        @if let Some(r) = reason { (r) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !run.artifacts.is_empty() {
            section aria-labelledby="shots-h" {
                h2 #shots-h { "Screenshots and other evidence" }
                @for (i, s) in run.steps.iter().enumerate() {
                    @for name in &s.artifacts {
                        (figure(name, &format!("of step {} ({})", i + 1, s.name)))
                    }
                }
                @for name in &loose {
                    (figure(name, "of the run"))
                }
            }
        }
    };
    html_response(layout::page(&chrome, None, body))
}

// ------------------------------------------------ /runs/{id}/artifacts/{name}

/// An artifact, behind the same sign-in as the pages. Images of the listed
/// types are served as themselves (the run page shows them inline); anything
/// else is a download, so an uploaded HTML or SVG file never runs as a page
/// of this collector.
pub async fn artifact(
    State(state): State<AppState>,
    Path((run_id, name)): Path<(String, String)>,
    v: Viewer,
) -> Response {
    let found = match state.store.artifact(&run_id, &name).await {
        Ok(f) => f,
        Err(e) => return store_failed(e, v.now_ms),
    };
    let Some((content_type, content)) = found else {
        return error_page(
            StatusCode::NOT_FOUND,
            v.session.is_some(),
            v.now_ms,
            &format!("Run {run_id:?} has no uploaded artifact named {name:?}."),
        );
    };
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (ty, disposition) = match inline_type(&content_type) {
        Some(t) => (t, format!("inline; filename=\"{file}\"")),
        None => (
            "application/octet-stream",
            format!("attachment; filename=\"{file}\""),
        ),
    };
    let mut r = content.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    if let Ok(d) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    // An artifact never changes once stored (its sha256 is checked at upload).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(id: &str, steps: &[(&str, f64, Option<f64>)]) -> ProbeRun {
        let steps: Vec<serde_json::Value> = steps
            .iter()
            .map(|(name, d, lcp)| {
                let mut s =
                    json!({"name": name, "kind": "goto", "outcome": "pass", "duration_ms": d});
                if let Some(l) = lcp {
                    s["vitals"] = json!({"lcp": l});
                }
                s
            })
            .collect();
        serde_json::from_value(json!({
            "schema_version": 1, "run_id": id, "flow": "f", "location": "l",
            "agent_version": "0", "started_at_ms": 1_800_000_000_000u64,
            "finished_at_ms": 1_800_000_001_000u64, "outcome": "pass", "steps": steps,
        }))
        .unwrap()
    }

    #[test]
    fn medians_match_steps_by_name_and_occurrence() {
        let run = run_with(
            "r",
            &[
                ("open", 100.0, Some(1000.0)),
                ("click", 10.0, None),
                ("click", 20.0, None),
            ],
        );
        let previous = [
            run_with(
                "a",
                &[
                    ("open", 200.0, Some(1200.0)),
                    ("click", 30.0, None),
                    ("click", 300.0, None),
                ],
            ),
            run_with("b", &[("open", 400.0, Some(1600.0)), ("click", 50.0, None)]),
            run_with("c", &[("open", 300.0, None)]),
        ];
        let m = step_medians(&run, &previous);
        assert_eq!(
            (m[0].runs, m[0].duration_ms, m[0].vitals.lcp),
            (3, Some(300.0), Some(1400.0))
        );
        assert_eq!((m[1].runs, m[1].duration_ms), (2, Some(40.0)));
        assert_eq!(
            (m[2].runs, m[2].duration_ms, m[2].vitals.lcp),
            (1, Some(300.0), None)
        );
        assert_eq!(step_medians(&run, &[])[0].runs, 0);
    }

    #[test]
    fn only_raster_images_are_inline() {
        assert_eq!(inline_type("image/PNG; charset=binary"), Some("image/png"));
        assert_eq!(inline_type("image/svg+xml"), None);
        assert_eq!(inline_type("text/html"), None);
        assert_eq!(
            (bytes(999), bytes(48_200), bytes(1_300_000)),
            ("999 B".into(), "48.2 kB".into(), "1.3 MB".into())
        );
    }
}
