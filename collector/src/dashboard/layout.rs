//! The page shell every view shares (landmarks, navigation, the filter form,
//! export links, live updates) and the small pieces views compose: values
//! with units, ratings written as words, changes against the previous period.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use vitalsign_core::metric::{Metric, Rating};

use super::assets;
use super::params::{RANGES, ViewParams, datetime_local};

/// Which view a page is, for the navigation's `aria-current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Pages,
    Series,
    Flows,
    Alerts,
    None,
}

/// Who is looking, as the shell needs it.
pub struct Chrome<'a> {
    pub title: &'a str,
    pub nav: Nav,
    /// Signed in (shows the sign-out button); public viewers are not.
    pub signed_in: bool,
    /// Refresh the `#live` region on an interval.
    pub live: bool,
    /// CSV / JSON export links of this view's query.
    pub exports: Option<(String, String)>,
    pub now_ms: i64,
}

pub fn page(chrome: &Chrome, filters: Option<Markup>, body: Markup) -> Markup {
    let item = |nav: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(chrome.nav == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (chrome.title) " · vitalsign" }
                // No favicon request (and no 404 in every page's console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::href("style.css"));
                script src=(assets::href("live.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/" { "vitalsign" }
                        ul {
                            (item(Nav::Overview, "/", "Overview"))
                            (item(Nav::Pages, "/pages", "Pages"))
                            (item(Nav::Series, "/series", "Series"))
                            (item(Nav::Flows, "/flows", "Flows"))
                            (item(Nav::Alerts, "/alerts", "Alerts"))
                        }
                    }
                    @if chrome.signed_in {
                        form method="post" action="/signout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (chrome.title) }
                    @if let Some(f) = filters { (f) }
                    div #live data-live=[chrome.live.then_some("30")] aria-live="off" {
                        (body)
                        p.updated { "As of " time datetime=(chrome.now_ms) { (when(chrome.now_ms)) } }
                    }
                    @if chrome.live {
                        p.live-control {
                            button #live-toggle type="button" aria-pressed="false" { "Pause live updates" }
                            " Updates every 30 s."
                        }
                    }
                    @if let Some((csv, json)) = &chrome.exports {
                        p.exports { "Export this view: " a href=(csv) { "CSV" } " · " a href=(json) { "JSON" } }
                    }
                }
            }
        }
    }
}

/// Which filter controls a view offers.
#[derive(Default)]
pub struct FilterSet<'a> {
    pub sites: &'a [String],
    pub flows: &'a [String],
    pub locations: &'a [String],
    pub metric: bool,
    pub page_group: bool,
    pub device: bool,
    pub source: bool,
    pub flow: bool,
    pub step: bool,
    /// Hidden fields the form must carry along (sort order, alert id).
    pub keep: &'a [&'a str],
}

/// The GET form of a view: submitting it is following a link.
pub fn filters(action: &str, p: &ViewParams, set: &FilterSet) -> Markup {
    let custom = p.preset.is_none();
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
        form.filters method="get" action=(action) role="search" aria-label="Filters" {
            label {
                "Time range"
                select name="range" {
                    @for (name, _) in RANGES {
                        option value=(name) selected[p.preset == Some(name)] { (range_label(name)) }
                    }
                    option value="" selected[custom] { "Custom (from / to)" }
                }
            }
            label { "From (UTC)" input type="datetime-local" name="from" value=[custom.then(|| datetime_local(p.from_ms))]; }
            label { "To (UTC)" input type="datetime-local" name="to" value=[custom.then(|| datetime_local(p.to_ms))]; }
            @if !set.sites.is_empty() { (select("site", "Site", p.site.as_deref(), set.sites, "All sites")) }
            @if set.page_group {
                label { "Page group" input type="text" name="page_group" value=[p.page_group.as_deref()] placeholder="/checkout"; }
            }
            @if set.device {
                (select("device", "Device", p.device.as_deref(), &["mobile".into(), "tablet".into(), "desktop".into(), "unknown".into()], "All devices"))
            }
            @if set.source {
                label {
                    "Source"
                    select name="source" {
                        @for (v, l) in [("both", "Field and lab"), ("rum", "Field (RUM)"), ("synthetic", "Lab (synthetic)")] {
                            option value=(v) selected[p.source.as_str() == v] { (l) }
                        }
                    }
                }
            }
            @if set.flow {
                (select("flow", "Flow", p.flow.as_deref(), set.flows, "All flows"))
                (select("location", "Location", p.location.as_deref(), set.locations, "All locations"))
            }
            @if set.step {
                label { "Step" input type="text" name="step" value=[p.step.as_deref()]; }
            }
            @if set.metric {
                label {
                    "Metric"
                    select name="metric" {
                        @for m in Metric::ALL {
                            option value=(m.as_str()) selected[p.metric == m] { (m.as_str()) }
                        }
                    }
                }
            }
            @for k in set.keep {
                @if let Some(v) = p.get(k) { input type="hidden" name=(k) value=(v); }
            }
            button type="submit" { "Apply" }
        }
    }
}

fn range_label(name: &str) -> &'static str {
    match name {
        "1h" => "Last hour",
        "24h" => "Last 24 hours",
        "7d" => "Last 7 days",
        "30d" => "Last 30 days",
        _ => "Last 90 days",
    }
}

/// `850 ms`, `2.1 s`, `0.12` ([`vitalsign_core::format::metric_value`], as in
/// alert emails and the agent's tables); `—` for no value.
pub fn value(metric: Metric, v: Option<f64>) -> String {
    match v {
        Some(v) => vitalsign_core::format::metric_value(metric, v),
        None => "—".into(),
    }
}

pub fn rating_word(r: Rating) -> &'static str {
    match r {
        Rating::Good => "good",
        Rating::NeedsImprovement => "needs improvement",
        Rating::Poor => "poor",
    }
}

fn rating_class(r: Rating) -> &'static str {
    match r {
        Rating::Good => "good",
        Rating::NeedsImprovement => "ni",
        Rating::Poor => "poor",
    }
}

/// A value with its rating as a word beside it (never colour alone).
pub fn rated(metric: Metric, v: Option<f64>) -> Markup {
    match v {
        None => html! { span.none { "no data" } },
        Some(x) => {
            let r = metric.rate(x);
            html! {
                span.value { (value(metric, v)) }
                " "
                span class={"rating " (rating_class(r))} { (rating_word(r)) }
            }
        }
    }
}

/// `+12 % worse` / `−5 % better` against the previous period.
pub fn change(current: Option<f64>, previous: Option<f64>) -> Markup {
    match (current, previous) {
        (Some(c), Some(p)) if p > 0.0 => {
            let ch = (c - p) / p;
            let word = if ch.abs() < 0.005 {
                "no change"
            } else if ch > 0.0 {
                "worse"
            } else {
                "better"
            };
            html! { span class={"change " (word.replace(' ', "-"))} { (format!("{:+.0} %", ch * 100.0)) " " (word) } }
        }
        _ => html! { span.none { "no earlier data" } },
    }
}

pub fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// `2026-11-24 09:00 UTC`.
pub fn when(ms: i64) -> String {
    crate::alerts::email::utc(ms)
}

/// `4 min ago`, `3 h ago`.
pub fn ago(ms: i64, now_ms: i64) -> String {
    let s = (now_ms - ms).max(0) / 1000;
    if s < 90 {
        format!("{s} s ago")
    } else {
        format!("{} ago", crate::alerts::email::lasted(now_ms - ms))
    }
}

/// A message page (errors, empty states) inside the shell.
pub fn message(chrome: &Chrome, text: &str) -> Markup {
    page(chrome, None, html! { p.message role="alert" { (text) } })
}

/// Inline script-free markup that says "nothing here yet" with a hint.
pub fn empty(what: &str, hint: &str) -> Markup {
    html! { p.empty { strong { (what) } " " (hint) } }
}

pub fn raw(s: &str) -> PreEscaped<String> {
    PreEscaped(s.to_string())
}
