//! `/`: per site, the five field vitals' p75 with samples, rating shares, the
//! change against the previous period and a trend; firing alerts on top; every
//! flow × location with its last outcome, pass rate and freshness; and the lab
//! p75 of every flow step beside them.

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Serialize;
use serde_json::json;
use vitalsign_core::metric::Metric;

use super::export::{self, Table, num};
use super::layout::{self, FilterSet, Nav, ago, change, percent, rated};
use super::params::{DAY_MS, Format, HOUR_MS, ViewParams};
use super::{Viewer, html_response, store_failed, svg};
use crate::http::AppState;
use crate::store::Store;
use crate::store::flows::FlowHealth;
use crate::store::query::{self, Filter, Summary};
use crate::store::views::Dimensions;

/// The field metrics of the overview, in reading order.
pub const FIELD: [Metric; 5] = [
    Metric::Lcp,
    Metric::Inp,
    Metric::Cls,
    Metric::Fcp,
    Metric::Ttfb,
];
/// The lab metrics of a flow step.
const LAB: [Metric; 4] = [Metric::Lcp, Metric::Cls, Metric::Inp, Metric::Tbt];
const TREND_POINTS: i64 = 24;

#[derive(Debug, Clone, Serialize)]
pub struct MetricCell {
    pub metric: Metric,
    pub current: Summary,
    pub previous: Summary,
    pub trend: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteRow {
    pub site: String,
    pub metrics: Vec<MetricCell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabRow {
    pub flow: String,
    pub step: String,
    pub location: String,
    pub p75: Vec<(Metric, Option<f64>, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FiringAlert {
    pub id: String,
    pub state: String,
    pub headline: String,
    pub since_ms: i64,
}

#[derive(Serialize)]
struct Overview {
    from_ms: i64,
    to_ms: i64,
    sites: Vec<SiteRow>,
    flows: Vec<FlowHealth>,
    lab: Vec<LabRow>,
    alerts: Vec<FiringAlert>,
}

/// The bucket of a trend or chart over `span`: about `points` buckets, whole
/// hours past the raw range so the rollups answer it, and whole days from
/// half a day up so the daily rollups do (a 30-day chart merges 30 rows per
/// series, not 720).
pub fn bucket_for(span_ms: i64, points: i64) -> i64 {
    let raw = (span_ms / points).max(60_000);
    if span_ms <= query::RAW_RANGE_MS {
        raw
    } else if raw >= 12 * HOUR_MS {
        ((raw + DAY_MS - 1) / DAY_MS) * DAY_MS
    } else {
        ((raw + HOUR_MS - 1) / HOUR_MS).max(1) * HOUR_MS
    }
}

/// Summary, previous-period summary and trend of one metric for every site,
/// from one read of the metric's rows.
pub async fn metric_cells(
    store: &Store,
    p: &ViewParams,
    metric: Metric,
    filter: &Filter,
) -> Result<HashMap<String, MetricCell>, crate::store::StoreError> {
    let bucket = bucket_for(p.span_ms(), TREND_POINTS);
    // Buckets of whole days start at UTC midnight (see `query::breakdowns`).
    let origin = if bucket % DAY_MS == 0 {
        p.from_ms.div_euclid(DAY_MS) * DAY_MS
    } else {
        p.from_ms
    };
    let all = store
        .breakdowns(metric, p.from_ms, p.to_ms, bucket, true, filter, true)
        .await?;
    Ok(all
        .into_iter()
        .map(|(site, b)| {
            let mut trend = vec![None; ((p.to_ms - origin + bucket - 1) / bucket) as usize];
            for point in b.points {
                let i = ((point.start_ms - origin) / bucket) as usize;
                if let Some(slot) = trend.get_mut(i) {
                    *slot = point.summary.p75;
                }
            }
            let cell = MetricCell {
                metric,
                current: b.current,
                previous: b.previous.unwrap_or_default(),
                trend,
            };
            (site, cell)
        })
        .collect())
}

/// The sites to show: configured ones first, then any seen in the data.
pub fn site_list(state: &AppState, dims: &Dimensions) -> Vec<String> {
    let mut all: BTreeSet<String> = state.config.sites.keys().cloned().collect();
    all.extend(dims.sites.iter().cloned());
    all.into_iter().collect()
}

pub async fn view(State(state): State<AppState>, v: Viewer) -> Response {
    let p = v.params.clone();
    let now = v.now_ms;
    let read = async {
        let store = &state.store;
        let dims = store.dimensions().await?;
        let sites: Vec<String> = match &p.site {
            Some(s) => vec![s.clone()],
            None => site_list(&state, &dims),
        };
        let mut rows = Vec::new();
        if p.source.shows_field() {
            let mut filter = p.field_filter();
            filter.page_group = None;
            // The metrics' reads are independent: run them at once (each on a
            // reader connection of its own), so the page waits for the
            // slowest of them rather than for their sum.
            let [f0, f1, f2, f3, f4] = FIELD.map(|m| metric_cells(store, &p, m, &filter));
            let (c0, c1, c2, c3, c4) = tokio::try_join!(f0, f1, f2, f3, f4)?;
            let mut cells: Vec<HashMap<String, MetricCell>> = vec![c0, c1, c2, c3, c4];
            let empty = |m: Metric| MetricCell {
                metric: m,
                current: Summary::default(),
                previous: Summary::default(),
                trend: Vec::new(),
            };
            for site in &sites {
                let metrics = FIELD
                    .iter()
                    .zip(cells.iter_mut())
                    .map(|(m, by_site)| by_site.remove(site).unwrap_or_else(|| empty(*m)))
                    .collect();
                rows.push(SiteRow {
                    site: site.clone(),
                    metrics,
                });
            }
        }
        let mut flows_health = store.flow_health(now, p.from_ms).await?;
        flows_health.retain(|f| {
            p.flow.as_ref().is_none_or(|x| *x == f.flow)
                && p.location.as_ref().is_none_or(|x| *x == f.location)
        });
        let mut lab = Vec::new();
        if p.source.shows_lab() {
            for run in store.latest_runs(200).await? {
                if p.flow.as_ref().is_some_and(|x| *x != run.flow)
                    || p.location.as_ref().is_some_and(|x| *x != run.location)
                {
                    continue;
                }
                for step in run.steps.iter().filter(|s| !s.vitals.is_empty()) {
                    let filter = Filter {
                        source: Some("synthetic".into()),
                        flow: Some(run.flow.clone()),
                        step: Some(step.name.clone()),
                        location: Some(run.location.clone()),
                        device: p.device.clone(),
                        ..Filter::default()
                    };
                    let mut p75 = Vec::with_capacity(LAB.len());
                    for m in LAB {
                        let s = store.summary(m, p.from_ms, p.to_ms, &filter).await?;
                        p75.push((m, s.p75, s.count));
                    }
                    if p75.iter().any(|(_, _, n)| *n > 0) {
                        lab.push(LabRow {
                            flow: run.flow.clone(),
                            step: step.name.clone(),
                            location: run.location.clone(),
                            p75,
                        });
                    }
                }
            }
        }
        let alerts = store
            .alert_states(None)
            .await?
            .into_iter()
            .filter(|s| matches!(s.record.state.as_str(), "firing" | "pending"))
            .map(|s| FiringAlert {
                headline: crate::alerts::email::headline(
                    crate::alerts::email::NoticeKind::Firing,
                    &s.record,
                ),
                state: s.record.state.as_str().to_string(),
                since_ms: s.record.since_ms,
                id: s.id,
            })
            .collect();
        Ok((
            dims,
            Overview {
                from_ms: p.from_ms,
                to_ms: p.to_ms,
                sites: rows,
                flows: flows_health,
                lab,
                alerts,
            },
        ))
    }
    .await;
    let (dims, data) = match read {
        Ok(x) => x,
        Err(e) => return store_failed(e, v.now_ms),
    };
    match v.params.format {
        Format::Json => export::json(json!(data)),
        Format::Csv => export::csv("overview", &table(&data)),
        Format::Html => render(&state, &v, &dims, &data),
    }
}

fn table(data: &Overview) -> Table {
    let mut rows = Vec::new();
    for s in &data.sites {
        for m in &s.metrics {
            rows.push(vec![
                s.site.clone(),
                m.metric.as_str().to_string(),
                num(m.current.p75),
                m.current.count.to_string(),
                num(Some(m.current.good)),
                num(Some(m.current.needs_improvement)),
                num(Some(m.current.poor)),
                num(m.previous.p75),
            ]);
        }
    }
    Table {
        header: vec![
            "site",
            "metric",
            "p75",
            "samples",
            "good",
            "needs_improvement",
            "poor",
            "previous_p75",
        ],
        rows,
    }
}

fn render(state: &AppState, v: &Viewer, dims: &Dimensions, data: &Overview) -> Response {
    let p = &v.params;
    let sites = site_list(state, dims);
    let set = FilterSet {
        sites: &sites,
        flows: &dims.flows,
        locations: &dims.locations,
        device: true,
        source: true,
        flow: true,
        ..FilterSet::default()
    };
    let mut chrome = v.chrome("Overview", Nav::Overview);
    chrome.live = p.get("live") != Some("off");
    chrome.exports = Some((
        p.href("/", &[("format", "csv")]),
        p.href("/", &[("format", "json")]),
    ));
    let body = html! {
        @if !data.alerts.is_empty() {
            section aria-labelledby="alerts-h" .alerts-banner {
                h2 #alerts-h { "Alerts that need attention" }
                ul {
                    @for a in &data.alerts {
                        li {
                            span class={"state " (a.state)} { (a.state) }
                            " "
                            a href={"/alerts/" (a.id)} { (a.headline) }
                            " — since " (ago(a.since_ms, v.now_ms))
                        }
                    }
                }
            }
        }
        @if p.source.shows_field() {
            section aria-labelledby="field-h" {
                h2 #field-h { "Field (real users), p75" }
                @if data.sites.is_empty() {
                    (layout::empty("No sites yet.", "Add a site under [sites] in the config and paste the snippet into its pages."))
                }
                @for s in &data.sites { (site_table(p, s)) }
            }
        }
        section aria-labelledby="flows-h" {
            h2 #flows-h { "Flows (synthetic probes)" }
            @if data.flows.is_empty() {
                (layout::empty("No probe results yet.", "Start an agent with a flow file; its runs appear here."))
            } @else {
                (flow_table(p, &data.flows, v.now_ms))
            }
        }
        @if p.source.shows_lab() && !data.lab.is_empty() {
            section aria-labelledby="lab-h" {
                h2 #lab-h { "Lab vitals of each flow step, p75" }
                (lab_table(p, &data.lab))
            }
        }
    };
    html_response(layout::page(
        &chrome,
        Some(layout::filters("/", p, &set)),
        body,
    ))
}

fn site_table(p: &ViewParams, s: &SiteRow) -> Markup {
    let caption = format!("Site {}", s.site);
    html! {
        table.metrics {
            caption {
                (caption) " · "
                a href=(p.href("/pages", &[("site", &s.site)])) { "pages of " (s.site) }
            }
            thead { tr {
                th scope="col" { "Metric" }
                th scope="col" { "p75" }
                th scope="col" { "Samples" }
                th scope="col" { "Good / needs improvement / poor" }
                th scope="col" { "Change vs previous period" }
                th scope="col" { "Trend" }
            } }
            tbody {
                @for m in &s.metrics {
                    tr {
                        th scope="row" {
                            a href=(p.href("/series", &[("site", &s.site), ("metric", m.metric.as_str()), ("source", "")])) { (m.metric.as_str()) }
                        }
                        td { (rated(m.metric, m.current.p75)) }
                        td.num { (m.current.count) }
                        td { @if m.current.count > 0 { (svg::share_bar(m.current.good, m.current.needs_improvement, m.current.poor)) } }
                        td { (change(m.current.p75, m.previous.p75)) }
                        td { (svg::sparkline(&m.trend, &format!("{} p75 trend for {}", m.metric.as_str(), s.site))) }
                    }
                }
            }
        }
    }
}

fn flow_table(p: &ViewParams, flows: &[FlowHealth], now_ms: i64) -> Markup {
    html! {
        table.flows {
            caption { "Each flow at each location" }
            thead { tr {
                th scope="col" { "Flow" }
                th scope="col" { "Location" }
                th scope="col" { "Last outcome" }
                th scope="col" { "Pass rate (this range)" }
                th scope="col" { "Last result" }
                th scope="col" { "Usual interval" }
            } }
            tbody {
                @for f in flows {
                    tr class=[f.stale.then_some("stale")] {
                        th scope="row" { a href=(p.href_only("/flows/runs", &[], &[("flow", &f.flow), ("location", &f.location)])) { (f.flow) } }
                        td { (f.location) }
                        td { a href={"/runs/" (params_path(&f.last_run_id))} { span class={"outcome " (f.last_outcome)} { (f.last_outcome) } } }
                        td { @match f.pass_rate { Some(r) => { (percent(r)) " of " (f.runs) }, None => { "no runs" } } }
                        td {
                            (ago(f.last_received_ms, now_ms))
                            @if f.stale { " " strong.stale-mark { "stale" } }
                        }
                        td { @match f.median_gap_ms { Some(g) => { "every " (gap(g)) }, None => { "not known yet" } } }
                    }
                }
            }
        }
    }
}

pub fn gap(ms: i64) -> String {
    if ms < 90_000 {
        format!("{} s", (ms + 500) / 1000)
    } else {
        crate::alerts::email::lasted(ms)
    }
}

pub fn params_path(s: &str) -> String {
    super::params::encode(s).replace('/', "%2F")
}

fn lab_table(p: &ViewParams, lab: &[LabRow]) -> Markup {
    html! {
        table.lab {
            caption { "Lab p75 per step over this range" }
            thead { tr {
                th scope="col" { "Flow › step" }
                th scope="col" { "Location" }
                @for m in LAB { th scope="col" { (m.as_str()) } }
            } }
            tbody {
                @for row in lab {
                    tr {
                        th scope="row" { (row.flow) " › " (row.step) }
                        td { (row.location) }
                        @for (m, v, n) in &row.p75 {
                            td {
                                @if *n > 0 {
                                    a href=(p.href_only("/series", &["range", "from", "to", "device"], &[("metric", m.as_str()), ("source", "synthetic"), ("flow", &row.flow), ("step", &row.step), ("location", &row.location)])) { (rated(*m, *v)) }
                                } @else { span.none { "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}
