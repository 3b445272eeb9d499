//! `/series`: one metric for one page group (field) and/or one flow step (lab)
//! over time: p75 with its p50–p90 band, the lab line on the same chart, the
//! distribution from the stored rollups with the CWV bounds, the device split,
//! alert periods, and the top attribution with counts.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Serialize;
use serde_json::json;
use vitalsign_core::metric::Metric;

use super::export::{self, Table, num};
use super::layout::{self, FilterSet, Nav, percent, rated, value, when};
use super::overview::{bucket_for, site_list};
use super::params::{Format, ViewParams};
use super::svg::{self, Period, Point};
use super::{Viewer, html_response, store_failed};
use crate::alerts::detector::Numbers;
use crate::grouping;
use crate::http::AppState;
use crate::store::Store;
use crate::store::attribution::{self, AttributionRank};
use crate::store::query::{Filter, SeriesPoint, Summary};
use crate::store::views::Dimensions;

const CHART_POINTS: i64 = 60;
const HISTOGRAM_BINS: usize = 40;
const DEVICES: [&str; 4] = ["mobile", "tablet", "desktop", "unknown"];

/// A flow step whose page is this page group: the lab side of the comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabStep {
    pub flow: String,
    pub step: String,
    pub location: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertMark {
    pub id: String,
    pub headline: String,
    pub state: String,
    pub numbers: Numbers,
    pub periods: Vec<(i64, i64, String)>,
}

#[derive(Serialize)]
struct SeriesData {
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    field: Option<(Summary, Vec<SeriesPoint>)>,
    lab: Option<(LabStep, Summary, Vec<SeriesPoint>)>,
    /// Other flow steps on this page group (links to their lab line).
    lab_steps: Vec<LabStep>,
    distribution: Vec<(f64, f64, u64)>,
    devices: Vec<(String, Summary)>,
    attribution: Vec<(String, Vec<AttributionRank>)>,
    alerts: Vec<AlertMark>,
}

/// Flow steps whose page (the step's URL, grouped as beacons are) is the
/// given page group of the given site, from each flow's latest run.
async fn steps_on_page(
    state: &AppState,
    site: &str,
    page_group: &str,
    metric: Metric,
) -> Result<Vec<LabStep>, crate::store::StoreError> {
    let origins = state
        .config
        .sites
        .get(site)
        .map(|s| s.origins.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for run in state.store.latest_runs(500).await? {
        for step in &run.steps {
            let Some(url) = &step.url else { continue };
            let origin_ok = origins
                .iter()
                .any(|o| o == "*" || url.starts_with(o.trim_end_matches('/')));
            if origin_ok
                && grouping::page_group(url, &state.config.page_groups) == page_group
                && step.vitals.get(metric).is_some()
            {
                let found = LabStep {
                    flow: run.flow.clone(),
                    step: step.name.clone(),
                    location: run.location.clone(),
                };
                if !out.contains(&found) {
                    out.push(found);
                }
            }
        }
    }
    Ok(out)
}

/// The stored log buckets regrouped into even bins from 0 to a little past
/// the poor bound (or p99, whichever is larger); the last bin holds the rest.
fn bins(metric: Metric, buckets: &[(f64, f64, u64)]) -> Vec<(f64, f64, u64)> {
    let total: u64 = buckets.iter().map(|b| b.2).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut seen = 0;
    let mut p99 = 0.0;
    for (lo, up, n) in buckets {
        seen += n;
        if seen as f64 >= total as f64 * 0.99 {
            p99 = (lo + up) / 2.0;
            break;
        }
    }
    let top = (metric.bounds().1 * 1.25).max(p99);
    let width = top / HISTOGRAM_BINS as f64;
    let mut out: Vec<(f64, f64, u64)> = (0..HISTOGRAM_BINS)
        .map(|i| (i as f64 * width, (i + 1) as f64 * width, 0))
        .collect();
    for (lo, up, n) in buckets {
        let mid = (lo + up) / 2.0;
        let i = ((mid / width) as usize).min(HISTOGRAM_BINS - 1);
        out[i].2 += n;
    }
    out
}

fn points(series: &[SeriesPoint]) -> Vec<Point> {
    series
        .iter()
        .map(|s| Point {
            start_ms: s.start_ms,
            p50: s.summary.p50,
            p75: s.summary.p75,
            p90: s.summary.p90,
            count: s.summary.count,
        })
        .collect()
}

pub async fn view(State(state): State<AppState>, v: Viewer) -> Response {
    let p = v.params.clone();
    let now = v.now_ms;
    let read = async {
        let store = &state.store;
        let dims = store.dimensions().await?;
        let metric = p.metric;
        let bucket = bucket_for(p.span_ms(), CHART_POINTS);
        let field_filter = p.field_filter();
        let wants_field = p.source.shows_field() && metric != Metric::Tbt;
        // Summary, chart, distribution and device split from one read.
        let field_read = if wants_field {
            Some(
                store
                    .breakdown(metric, p.from_ms, p.to_ms, bucket, false, &field_filter)
                    .await?,
            )
        } else {
            None
        };
        let lab_steps = match (&p.site, &p.page_group) {
            (Some(site), Some(group)) => steps_on_page(&state, site, group, metric).await?,
            _ => Vec::new(),
        };
        let chosen = match (&p.flow, &p.step) {
            (Some(flow), Some(step)) => Some(LabStep {
                flow: flow.clone(),
                step: step.clone(),
                location: p.location.clone().unwrap_or_default(),
            }),
            _ => lab_steps.first().cloned(),
        };
        let lab = match chosen {
            Some(step) if p.source.shows_lab() => {
                let filter = Filter {
                    source: Some("synthetic".into()),
                    flow: Some(step.flow.clone()),
                    step: Some(step.step.clone()),
                    location: (!step.location.is_empty()).then(|| step.location.clone()),
                    device: p.device.clone(),
                    ..Filter::default()
                };
                let read = store
                    .breakdown(metric, p.from_ms, p.to_ms, bucket, false, &filter)
                    .await?;
                Some((step, read))
            }
            _ => None,
        };
        // The distribution of the field side, or of the lab side alone.
        let distribution = bins(
            metric,
            match (&field_read, &lab) {
                (Some(f), _) => &f.distribution,
                (None, Some((_, l))) => &l.distribution,
                (None, None) => &[],
            },
        );
        let devices: Vec<(String, Summary)> = field_read
            .as_ref()
            .map(|f| {
                // Known classes in their usual order, then anything else.
                let mut d = f.devices.clone();
                d.sort_by_key(|(name, _)| {
                    DEVICES
                        .iter()
                        .position(|x| x == name)
                        .unwrap_or(DEVICES.len())
                });
                d
            })
            .unwrap_or_default();
        let lab = lab.map(|(step, read)| (step, read.current, read.points));
        let field = field_read.map(|f| (f.current, f.points));
        let mut attribution_lists = Vec::new();
        if field.is_some() {
            for kind in attribution::attribution_kinds_for(metric) {
                let items = store
                    .top_attribution(metric, *kind, p.from_ms, p.to_ms, &field_filter, 10)
                    .await?;
                attribution_lists.push((kind.as_str().to_string(), items));
            }
        }
        let alerts = alert_marks(store, &p, lab.as_ref().map(|l| &l.0), now).await?;
        Ok((
            dims,
            SeriesData {
                metric,
                from_ms: p.from_ms,
                to_ms: p.to_ms,
                bucket_ms: bucket,
                field,
                lab,
                lab_steps,
                distribution,
                devices,
                attribution: attribution_lists,
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
        Format::Csv => export::csv("series", &table(&data)),
        Format::Html => render(&state, &v, &dims, &data),
    }
}

/// Alerts on this series (its metric and place), plus the one the link names,
/// with their pending / firing / resolved periods from the transitions.
async fn alert_marks(
    store: &Store,
    p: &ViewParams,
    lab: Option<&LabStep>,
    now_ms: i64,
) -> Result<Vec<AlertMark>, crate::store::StoreError> {
    let pinned = p.get("alert");
    let mut marks = Vec::new();
    for s in store.alert_states(None).await? {
        let relevant = pinned == Some(s.id.as_str())
            || s.record.series.as_ref().is_some_and(|k| {
                k.metric == p.metric
                    && if k.source == vitalsign_core::metric::Source::Synthetic {
                        lab.is_some_and(|l| l.flow == k.flow && l.step == k.step)
                    } else {
                        p.site.as_deref() == Some(k.site.as_str())
                            && p.page_group.as_deref() == Some(k.page_group.as_str())
                            && p.device.as_deref().is_none_or(|d| d == k.device)
                    }
            });
        if !relevant {
            continue;
        }
        let mut transitions = store.transitions(Some(s.id.clone()), 0, 500).await?;
        transitions.reverse();
        let mut periods = Vec::new();
        let mut open: Option<(i64, String)> = None;
        for t in &transitions {
            if let Some((start, state)) = open.take() {
                periods.push((start, t.at_ms, state));
            }
            match t.to.as_str() {
                "pending" | "firing" => open = Some((t.at_ms, t.to.clone())),
                "resolved" => periods.push((t.at_ms, t.at_ms, "resolved".into())),
                _ => {}
            }
        }
        if let Some((start, state)) = open {
            periods.push((start, now_ms, state));
        }
        if periods
            .iter()
            .all(|(a, b, _)| *b < p.from_ms || *a > p.to_ms)
            && pinned != Some(s.id.as_str())
        {
            continue;
        }
        marks.push(AlertMark {
            headline: crate::alerts::email::headline(
                crate::alerts::email::NoticeKind::Firing,
                &s.record,
            ),
            state: s.record.state.as_str().to_string(),
            numbers: s
                .record
                .fired_numbers
                .clone()
                .unwrap_or_else(|| s.record.numbers.clone()),
            periods,
            id: s.id,
        });
    }
    // The pinned alert first: it is what the reader came for.
    marks.sort_by_key(|m| pinned != Some(m.id.as_str()));
    Ok(marks)
}

fn table(data: &SeriesData) -> Table {
    let mut rows = Vec::new();
    if let Some((_, points)) = &data.field {
        for pt in points {
            rows.push(row("field", pt));
        }
    }
    if let Some((_, _, points)) = &data.lab {
        for pt in points {
            rows.push(row("lab", pt));
        }
    }
    Table {
        header: vec![
            "source",
            "bucket_start_ms",
            "bucket_start",
            "p50",
            "p75",
            "p90",
            "samples",
        ],
        rows,
    }
}

fn row(source: &str, pt: &SeriesPoint) -> Vec<String> {
    vec![
        source.to_string(),
        pt.start_ms.to_string(),
        when(pt.start_ms),
        num(pt.summary.p50),
        num(pt.summary.p75),
        num(pt.summary.p90),
        pt.summary.count.to_string(),
    ]
}

fn title(p: &ViewParams, data: &SeriesData) -> String {
    let m = p.metric.as_str();
    match (&p.site, &p.page_group, &data.lab) {
        (Some(site), Some(group), _) => format!("{m} of {group} on {site}"),
        (Some(site), None, _) => format!("{m} of site {site}"),
        (None, _, Some((step, _, _))) => format!("{m} of {} › {}", step.flow, step.step),
        _ => format!("{m} of every page"),
    }
}

fn render(state: &AppState, v: &Viewer, dims: &Dimensions, data: &SeriesData) -> Response {
    let p = &v.params;
    let sites = site_list(state, dims);
    let set = FilterSet {
        sites: &sites,
        flows: &dims.flows,
        locations: &dims.locations,
        metric: true,
        page_group: true,
        device: true,
        source: true,
        flow: true,
        step: true,
        keep: &["alert"],
    };
    let title = title(p, data);
    let mut chrome = v.chrome(&title, Nav::Series);
    chrome.live = p.get("live") != Some("off") && p.preset.is_some();
    chrome.exports = Some((
        p.href("/series", &[("format", "csv")]),
        p.href("/series", &[("format", "json")]),
    ));
    let metric = data.metric;
    let periods: Vec<Period> = data
        .alerts
        .iter()
        .flat_map(|a| {
            a.periods.iter().map(move |(from, to, state)| Period {
                from_ms: *from,
                to_ms: *to,
                state: state.clone(),
                label: format!("{state}: {} ({} – {})", a.headline, when(*from), when(*to)),
            })
        })
        .collect();
    let field_points = data
        .field
        .as_ref()
        .map(|f| points(&f.1))
        .unwrap_or_default();
    let lab_points = data.lab.as_ref().map(|l| points(&l.2)).unwrap_or_default();
    let body = html! {
        @for a in &data.alerts { (alert_box(metric, a, v.now_ms)) }
        section aria-labelledby="now-h" {
            h2 #now-h { "p75 over this range" }
            dl.headline {
                @if let Some((s, _)) = &data.field {
                    div { dt { "Field (RUM) p75" } dd #field-p75 { (rated(metric, s.p75)) " · " span #field-samples { (s.count) } " samples" } }
                }
                @if let Some((step, s, _)) = &data.lab {
                    div { dt { "Lab p75 (" (step.flow) " › " (step.step) @if !step.location.is_empty() { " at " (step.location) } ")" } dd #lab-p75 { (rated(metric, s.p75)) " · " (s.count) " runs" } }
                }
            }
            @if data.field.is_none() && data.lab.is_none() {
                (layout::empty("Nothing to draw.", "Pick a site and page group for field data, or a flow and step for lab data."))
            }
            @if data.lab_steps.len() > 1 {
                p { "Other flow steps on this page: "
                    @for s in &data.lab_steps {
                        a href=(p.href("/series", &[("flow", &s.flow), ("step", &s.step), ("location", &s.location)])) { (s.flow) " › " (s.step) " (" (s.location) ")" } " "
                    }
                }
            }
        }
        @if data.field.is_some() || data.lab.is_some() {
            section aria-labelledby="chart-h" {
                h2 #chart-h { "Over time" }
                figure {
                    (svg::series_chart(metric, data.from_ms, data.to_ms, data.bucket_ms, &field_points, &lab_points, &periods))
                    figcaption {
                        span.key-field { "solid: field p75, shaded p50–p90" } " · "
                        span.key-lab { "dashed: lab p75" } " · "
                        "bars: samples per " (super::overview::gap(data.bucket_ms))
                        @if !periods.is_empty() { " · shaded columns: alert pending / firing" }
                    }
                }
                details {
                    summary { "The numbers behind the chart" }
                    (points_table(metric, data))
                }
            }
        }
        @if !data.distribution.is_empty() {
            section aria-labelledby="dist-h" {
                h2 #dist-h { "Distribution" }
                (svg::histogram(metric, &data.distribution))
            }
        }
        @if !data.devices.is_empty() {
            section aria-labelledby="dev-h" {
                h2 #dev-h { "By device" }
                table.devices {
                    caption { (metric.as_str()) " by device class" }
                    thead { tr { th scope="col" { "Device" } th scope="col" { "p75" } th scope="col" { "Samples" } th scope="col" { "Good / needs improvement / poor" } } }
                    tbody {
                        @for (d, s) in &data.devices {
                            tr {
                                th scope="row" { a href=(p.href("/series", &[("device", d)])) { (d) } }
                                td { (rated(metric, s.p75)) }
                                td.num { (s.count) }
                                td { (svg::share_bar(s.good, s.needs_improvement, s.poor)) }
                            }
                        }
                    }
                }
            }
        }
        @if !data.attribution.is_empty() {
            section aria-labelledby="attr-h" {
                h2 #attr-h { "What it comes from" }
                @for (kind, items) in &data.attribution {
                    (attribution_table(metric, kind, items))
                }
            }
        }
    };
    html_response(layout::page(
        &chrome,
        Some(layout::filters("/series", p, &set)),
        body,
    ))
}

fn alert_box(metric: Metric, a: &AlertMark, now_ms: i64) -> Markup {
    let n = &a.numbers;
    html! {
        section.alert-box aria-label={"Alert " (a.id)} {
            h2 { span class={"state " (a.state)} { (a.state) } " " a href={"/alerts/" (a.id)} { (a.headline) } }
            dl {
                @if n.baseline.is_some() { div { dt { "Baseline p75" } dd { (value(metric, n.baseline)) " (" (n.baseline_count) " samples)" } } }
                @if n.current.is_some() { div { dt { "Current p75" } dd { (value(metric, n.current)) " (" (n.current_count) " samples)" } } }
                @if let Some(ch) = n.change { div { dt { "Change" } dd { (format!("{:+.0} %", ch * 100.0)) } } }
                @if let Some(pv) = n.p_value { div { dt { "p-value" } dd { (format!("{pv:.4}")) } } }
                @if let Some(t) = n.threshold { div { dt { "Threshold" } dd { (format!("{:+.0} %", t * 100.0)) } } }
                @if n.bound.is_some() { div { dt { "Budget" } dd { (value(metric, n.bound)) } } }
                @for (from, to, state) in &a.periods {
                    div { dt { (state) } dd { (when(*from)) " – " @if *to >= now_ms { "now" } @else { (when(*to)) } } }
                }
            }
        }
    }
}

fn points_table(metric: Metric, data: &SeriesData) -> Markup {
    let rows = data
        .field
        .iter()
        .flat_map(|f| f.1.iter().map(|pt| ("field", pt)))
        .chain(
            data.lab
                .iter()
                .flat_map(|l| l.2.iter().map(|pt| ("lab", pt))),
        );
    html! {
        table.points {
            caption { "p50, p75 and p90 of each bucket" }
            thead { tr { th scope="col" { "Source" } th scope="col" { "From" } th scope="col" { "p50" } th scope="col" { "p75" } th scope="col" { "p90" } th scope="col" { "Samples" } } }
            tbody {
                @for (source, pt) in rows {
                    tr {
                        td { (source) }
                        td { (when(pt.start_ms)) }
                        td { (value(metric, pt.summary.p50)) }
                        td { (value(metric, pt.summary.p75)) }
                        td { (value(metric, pt.summary.p90)) }
                        td.num { (pt.summary.count) }
                    }
                }
            }
        }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "lcp_element" => "LCP element",
        "lcp_resource" => "LCP resource",
        "inp_target" => "INP target",
        "cls_source" => "Largest layout shift source",
        "navigation_type" => "Navigation type",
        _ => "Connection type",
    }
}

fn attribution_table(metric: Metric, kind: &str, items: &[AttributionRank]) -> Markup {
    let split = kind == "inp_target";
    html! {
        table.attribution data-kind=(kind) {
            caption { (kind_label(kind)) }
            thead { tr {
                th scope="col" { (kind_label(kind)) }
                th.num scope="col" { "Samples" }
                th.num scope="col" { "Share" }
                th scope="col" { "Mean " (metric.as_str()) }
                @if split {
                    th scope="col" { "Input delay" }
                    th scope="col" { "Processing" }
                    th scope="col" { "Presentation" }
                }
            } }
            tbody {
                @if items.is_empty() {
                    tr { td colspan=(if split { 7 } else { 4 }) { "No attribution in this range." } }
                }
                @for it in items {
                    tr {
                        th scope="row" { code { @if it.item.is_empty() { "(none)" } @else { (it.item) } } }
                        td.num { (it.count) }
                        td.num { (percent(it.share)) }
                        td { (value(metric, it.mean_value)) }
                        @if split {
                            td { (value(Metric::Inp, it.mean_input_delay)) }
                            td { (value(Metric::Inp, it.mean_processing)) }
                            td { (value(Metric::Inp, it.mean_presentation)) }
                        }
                    }
                }
            }
        }
    }
}
