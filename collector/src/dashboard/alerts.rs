//! `/alerts`: alerts grouped by state, the silences and the dead letters;
//! `/alerts/{id}`: one alert's transitions with the numbers the detector saw,
//! the exact emails sent about it, and the acknowledge and silence forms;
//! the POST handlers behind those forms.
//!
//! Every POST needs a signed-in session, even on a public dashboard (reading
//! may be public, changing never is), and the session's CSRF token in a
//! hidden `csrf` field. The writes are the API's own ([`crate::http::alerts`]),
//! so both paths validate and store a silence the same way.

use std::collections::HashMap;

use axum::Form;
use axum::body::Body;
use axum::extract::{FromRequest, Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Serialize;
use serde_json::json;
use vitalsign_core::metric::Metric;

use super::export::{self, Table, num};
use super::layout::{self, Nav, ago, value, when};
use super::overview::params_path;
use super::params::{DAY_MS, HOUR_MS, ParamError, link};
use super::session::Session;
use super::{Viewer, error_page, html_response, store_failed};
use crate::alerts::detector::Numbers;
use crate::alerts::email::{self, NoticeKind};
use crate::alerts::engine::{self, Context};
use crate::alerts::rules::{Dims, RuleKind, RuleSet};
use crate::alerts::silences::{Matchers, Silence};
use crate::alerts::state::{AlertRecord, State as AlertState};
use crate::http::alerts::{NewSilence, end_silence, write_ack, write_silence};
use crate::http::{AppError, AppState, read_body};
use crate::store::alerts::{OutboxRow, StoredState, TransitionView};

/// The order of the list: what needs someone first.
pub const STATES: [AlertState; 6] = [
    AlertState::Firing,
    AlertState::Pending,
    AlertState::Error,
    AlertState::InsufficientData,
    AlertState::Resolved,
    AlertState::Ok,
];
/// Alerts of each state on the list without a state filter.
const GROUP_LIMIT: usize = 50;
/// Alerts per page of one state.
const STATE_PAGE: usize = 100;
const DEAD_LETTERS: i64 = 50;
const TRANSITIONS: i64 = 200;
const EMAILS: usize = 100;
/// Form bodies are a few hundred bytes; this is far above any real one.
const MAX_FORM: usize = 16 * 1024;
/// The silence form's choices.
const DURATIONS: [(&str, &str); 7] = [
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("2h", "2 hours"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("3d", "3 days"),
    ("7d", "7 days"),
];

fn state_label(s: &str) -> &'static str {
    match s {
        "firing" => "Firing",
        "pending" => "Pending",
        "error" => "Error (of our own: browser or agent)",
        "insufficient_data" => "Insufficient data",
        "resolved" => "Resolved",
        _ => "OK",
    }
}

fn state_word(s: &str) -> Markup {
    html! { span class={"state " (s)} { (s.replace('_', " ")) } }
}

/// What the alert is about, in one line: the email headline while it fires,
/// is pending or has resolved; otherwise the rule's subject without a claim.
pub fn describe(r: &AlertRecord) -> String {
    match r.state {
        AlertState::Firing | AlertState::Pending => email::headline(NoticeKind::Firing, r),
        AlertState::Resolved => email::headline(NoticeKind::Resolved, r),
        AlertState::Error => format!(
            "flow {} at {}: {} runs in a row ended in an error of our own (browser or agent)",
            r.flow, r.location, r.numbers.errors
        ),
        AlertState::Ok | AlertState::InsufficientData => match (&r.series, r.kind) {
            (Some(s), _) => format!("{} p75 {} ({})", s.metric, s.place(), r.kind.as_str()),
            (None, RuleKind::FlowStale) => {
                format!("flow {} at {} delivering results", r.flow, r.location)
            }
            (None, _) => format!("flow {} at {}", r.flow, r.location),
        },
    }
}

fn alert_href(id: &str) -> String {
    format!("/alerts/{}", params_path(id))
}

/// The dashboard view of the alert's data: the series view pinned from a day
/// before it started to now (an hour past its end once resolved), with its
/// periods drawn; or a flow's run list. The alert email links the same views.
pub fn data_link(r: &AlertRecord, id: &str, now_ms: i64) -> String {
    match &r.series {
        Some(s) => {
            let from = r.started_ms.or(r.fired_ms).unwrap_or(r.since_ms) - DAY_MS;
            let to = match (r.state, r.resolved_ms) {
                (AlertState::Resolved, Some(end)) => (end + HOUR_MS).min(now_ms),
                _ => now_ms,
            }
            .max(from + 60_000);
            let (from, to) = (from.to_string(), to.to_string());
            let metric = s.metric.as_str();
            let pairs = [
                ("metric", metric),
                ("site", s.site.as_str()),
                ("page_group", s.page_group.as_str()),
                ("device", s.device.as_str()),
                ("source", s.source.as_str()),
                ("flow", s.flow.as_str()),
                ("step", s.step.as_str()),
                ("location", s.location.as_str()),
                ("from", from.as_str()),
                ("to", to.as_str()),
                ("alert", id),
            ];
            link("/series", pairs.into_iter().filter(|(_, v)| !v.is_empty()))
        }
        None => link(
            "/flows/runs",
            [("flow", r.flow.as_str()), ("location", r.location.as_str())].into_iter(),
        ),
    }
}

fn dims(r: &AlertRecord) -> Dims<'_> {
    match &r.series {
        Some(s) => s.into(),
        None => Dims {
            site: "",
            page_group: "",
            metric: None,
            device: "",
            source: vitalsign_core::metric::Source::Synthetic,
            flow: &r.flow,
            location: &r.location,
        },
    }
}

/// The matchers a silence of "alerts like this one" starts from.
fn matchers_for(r: &AlertRecord) -> Matchers {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match &r.series {
        Some(s) => Matchers {
            rule: some(&r.rule),
            site: some(&s.site),
            page_group: some(&s.page_group),
            metric: Some(s.metric.as_str().to_string()),
            flow: some(&s.flow),
            location: some(&s.location),
        },
        None => Matchers {
            rule: some(&r.rule),
            flow: some(&r.flow),
            location: some(&r.location),
            ..Matchers::default()
        },
    }
}

fn matchers_text(m: &Matchers) -> String {
    let parts: Vec<String> = [
        ("rule", &m.rule),
        ("site", &m.site),
        ("page group", &m.page_group),
        ("metric", &m.metric),
        ("flow", &m.flow),
        ("location", &m.location),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = {v}")))
    .collect();
    if parts.is_empty() {
        "every alert".into()
    } else {
        parts.join(", ")
    }
}

/// One alert as the list shows it (and the JSON export gives it).
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: String,
    pub state: String,
    pub rule: String,
    pub kind: String,
    pub headline: String,
    pub since_ms: i64,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    pub silenced: bool,
}

fn row(ctx: &Context, s: &StoredState, now_ms: i64) -> AlertRow {
    AlertRow {
        id: s.id.clone(),
        state: s.record.state.as_str().to_string(),
        rule: s.record.rule.clone(),
        kind: s.record.kind.as_str().to_string(),
        headline: describe(&s.record),
        since_ms: s.record.since_ms,
        acked_ms: s.acked_ms,
        acked_by: s.acked_by.clone(),
        silenced: engine::silenced(ctx, &s.record, now_ms),
    }
}

#[derive(Debug, Clone, Serialize)]
struct DeadLetter {
    seq: i64,
    message_id: String,
    subject: String,
    recipients: Vec<String>,
    alerts: Vec<String>,
    created_ms: i64,
    attempts: i64,
    error: Option<String>,
    dead_since_ms: Option<i64>,
}

impl DeadLetter {
    fn of(r: &OutboxRow) -> DeadLetter {
        DeadLetter {
            seq: r.seq,
            message_id: r.message.message_id.clone(),
            subject: r.message.subject.clone(),
            recipients: r.message.recipients.clone(),
            alerts: r.message.alerts.clone(),
            created_ms: r.message.created_ms,
            attempts: r.attempts,
            error: r.last_error.clone(),
            dead_since_ms: r.done_ms,
        }
    }
}

#[derive(Serialize)]
struct Group {
    state: String,
    total: u64,
    alerts: Vec<AlertRow>,
}

#[derive(Serialize)]
struct ListData {
    state: Option<String>,
    page: usize,
    groups: Vec<Group>,
    silences: Vec<Silence>,
    dead_letters: Vec<DeadLetter>,
}

fn bad_param(v: &Viewer, e: ParamError) -> Response {
    error_page(StatusCode::BAD_REQUEST, v.session.is_some(), v.now_ms, &e.0)
}

pub async fn list(State(state): State<AppState>, v: Viewer) -> Response {
    let chosen = match v.params.get("state") {
        None => None,
        Some(s) => match AlertState::parse(s) {
            Some(st) => Some(st),
            None => {
                return bad_param(
                    &v,
                    ParamError(format!(
                        "parameter `state`: {s:?} is not one of firing, pending, error, insufficient_data, resolved, ok"
                    )),
                );
            }
        },
    };
    let page = match v.params.page() {
        Ok(p) => p,
        Err(e) => return bad_param(&v, e),
    };
    let exporting = v.params.format != super::params::Format::Html;
    let now = v.now_ms;
    let read = async {
        let store = &state.store;
        let counts: HashMap<String, u64> = store.alert_counts().await?.into_iter().collect();
        let silences = store.silences(now).await?;
        let rules = RuleSet::new(&state.config.alerts);
        let ctx = Context {
            rules: &rules,
            silences: &silences,
            deliver: false,
            mail_domain: "",
        };
        let mut groups = Vec::new();
        for s in STATES {
            if chosen.is_some_and(|c| c != s) {
                continue;
            }
            let total = counts.get(s.as_str()).copied().unwrap_or(0);
            let (offset, limit) = match (chosen, exporting) {
                (_, true) => (0, usize::MAX >> 1),
                (Some(_), false) => ((page - 1) * STATE_PAGE, STATE_PAGE),
                (None, false) => (0, GROUP_LIMIT),
            };
            let alerts = if total == 0 {
                Vec::new()
            } else {
                store
                    .alerts_in_state(s.as_str(), offset, limit)
                    .await?
                    .iter()
                    .map(|a| row(&ctx, a, now))
                    .collect()
            };
            groups.push(Group {
                state: s.as_str().to_string(),
                total,
                alerts,
            });
        }
        let dead_letters = store
            .dead_letters(DEAD_LETTERS)
            .await?
            .iter()
            .map(DeadLetter::of)
            .collect();
        Ok(ListData {
            state: chosen.map(|s| s.as_str().to_string()),
            page,
            groups,
            silences,
            dead_letters,
        })
    }
    .await;
    let data = match read {
        Ok(d) => d,
        Err(e) => return store_failed(e, v.now_ms),
    };
    match v.params.format {
        super::params::Format::Json => export::json(json!(data)),
        super::params::Format::Csv => export::csv("alerts", &alerts_table(&data)),
        super::params::Format::Html => render_list(&state, &v, &data),
    }
}

fn alerts_table(data: &ListData) -> Table {
    Table {
        header: vec![
            "id", "state", "rule", "kind", "headline", "since_ms", "acked_ms", "acked_by",
            "silenced",
        ],
        rows: data
            .groups
            .iter()
            .flat_map(|g| &g.alerts)
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.state.clone(),
                    a.rule.clone(),
                    a.kind.clone(),
                    a.headline.clone(),
                    a.since_ms.to_string(),
                    a.acked_ms.map_or(String::new(), |t| t.to_string()),
                    a.acked_by.clone().unwrap_or_default(),
                    a.silenced.to_string(),
                ]
            })
            .collect(),
    }
}

fn state_filter(current: Option<&str>) -> Markup {
    html! {
        form.filters method="get" action="/alerts" role="search" aria-label="Filters" {
            label {
                "State"
                select name="state" {
                    option value="" selected[current.is_none()] { "All states" }
                    @for s in STATES {
                        option value=(s.as_str()) selected[current == Some(s.as_str())] { (state_label(s.as_str())) }
                    }
                }
            }
            button type="submit" { "Apply" }
        }
    }
}

/// The session's forms carry its CSRF token; a public viewer gets a sign-in link instead.
struct Forms {
    csrf: Option<String>,
    next: String,
}

impl Forms {
    fn new(state: &AppState, session: Option<&Session>, next: String) -> Forms {
        Forms {
            csrf: session.map(|s| state.sessions.csrf(s)),
            next,
        }
    }

    fn sign_in(&self, what: &str) -> Markup {
        html! {
            p.hint {
                a href=(link("/signin", [("next", self.next.as_str())].into_iter())) { "Sign in" }
                " to " (what) "."
            }
        }
    }
}

fn silences_table(silences: &[Silence], forms: &Forms, back: Option<&str>, now_ms: i64) -> Markup {
    html! {
        table.silences {
            caption { "Silences that have not ended (they stop emails, not evaluation)" }
            thead { tr {
                th scope="col" { "Matches" }
                th scope="col" { "From" }
                th scope="col" { "Until" }
                th scope="col" { "Why" }
                th scope="col" { "By" }
                th scope="col" { "Expire" }
            } }
            tbody {
                @for s in silences {
                    tr {
                        th scope="row" { (matchers_text(&s.matchers)) }
                        td {
                            (when(s.starts_ms))
                            @if !s.active(now_ms) { " " strong { "(not started yet)" } }
                        }
                        td { (when(s.ends_ms)) }
                        td { (s.comment) }
                        td { (if s.created_by.is_empty() { "unknown" } else { s.created_by.as_str() }) }
                        td {
                            @if let Some(csrf) = &forms.csrf {
                                form.inline method="post" action={"/silences/" (params_path(&s.id)) "/expire"} {
                                    input type="hidden" name="csrf" value=(csrf);
                                    @if let Some(id) = back { input type="hidden" name="alert" value=(id); }
                                    button type="submit" aria-label={"Expire the silence: " (matchers_text(&s.matchers))} { "Expire now" }
                                }
                            } @else {
                                span.none { "sign in to expire" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn dead_letters_table(letters: &[DeadLetter]) -> Markup {
    html! {
        table.dead-letters {
            caption { "Emails the mail server refused for good" }
            thead { tr {
                th scope="col" { "Subject" }
                th scope="col" { "To" }
                th scope="col" { "Written" }
                th scope="col" { "Attempts" }
                th scope="col" { "Error" }
                th scope="col" { "Alerts" }
            } }
            tbody {
                @for d in letters {
                    tr {
                        th scope="row" { (d.subject) }
                        td { (d.recipients.join(", ")) }
                        td { (when(d.created_ms)) }
                        td.num { (d.attempts) }
                        td { (d.error.as_deref().unwrap_or("")) }
                        td { @for (i, a) in d.alerts.iter().enumerate() { @if i > 0 { ", " } a href=(alert_href(a)) { code { (a) } } } }
                    }
                }
            }
        }
    }
}

fn render_list(state: &AppState, v: &Viewer, data: &ListData) -> Response {
    let mail = state.config.smtp.enabled();
    let p = &v.params;
    let mut chrome = v.chrome("Alerts", Nav::Alerts);
    chrome.exports = Some((
        p.href("/alerts", &[("format", "csv"), ("page", "")]),
        p.href("/alerts", &[("format", "json"), ("page", "")]),
    ));
    let forms = Forms::new(state, v.session.as_ref(), p.href("/alerts", &[]));
    let body = html! {
        @if data.groups.iter().all(|g| g.total == 0) {
            (layout::empty("No alerts yet.", "Alerts appear once the rules have evaluated some data: regressions and budgets on every series, failures and silences of every flow."))
        }
        @for g in &data.groups {
            @if g.total > 0 || data.state.is_some() {
                section aria-labelledby={"state-" (g.state)} {
                    h2 id={"state-" (g.state)} { (state_label(&g.state)) " (" (g.total) ")" }
                    @if g.alerts.is_empty() {
                        p.none { "None on this page." }
                    } @else {
                        table.alerts {
                            caption { (state_label(&g.state)) " alerts" }
                            thead { tr {
                                th scope="col" { "Alert" }
                                th scope="col" { "State" }
                                th scope="col" { "Rule" }
                                th scope="col" { "Since" }
                                th scope="col" { "Acknowledged" }
                                th scope="col" { "Emails" }
                            } }
                            tbody {
                                @for a in &g.alerts {
                                    tr {
                                        th scope="row" { a href=(alert_href(&a.id)) { (a.headline) } }
                                        td { (state_word(&a.state)) }
                                        td { (a.rule) " (" (a.kind.replace('_', " ")) ")" }
                                        td { time datetime=(a.since_ms) title=(when(a.since_ms)) { (ago(a.since_ms, v.now_ms)) } }
                                        td {
                                            @match (a.acked_ms, &a.acked_by) {
                                                (Some(t), by) => { "by " (by.as_deref().unwrap_or("unknown")) ", " (ago(t, v.now_ms)) },
                                                (None, _) => { span.none { "no" } },
                                            }
                                        }
                                        td { @if a.silenced { "silenced" } @else if !mail { "none (no SMTP server configured)" } @else { "sent as usual" } }
                                    }
                                }
                            }
                        }
                    }
                    @if data.state.is_none() && g.total as usize > g.alerts.len() {
                        p { a href=(link("/alerts", [("state", g.state.as_str())].into_iter())) { "All " (g.total) " " (g.state.replace('_', " ")) " alerts →" } }
                    }
                    @if data.state.is_some() {
                        @let pages = (g.total as usize).div_ceil(STATE_PAGE).max(1);
                        @if pages > 1 {
                            nav aria-label="Pagination" .pager {
                                @if data.page > 1 { a rel="prev" href=(p.href("/alerts", &[("page", &(data.page - 1).to_string())])) { "← Previous" } }
                                " Page " (data.page) " of " (pages) " "
                                @if data.page < pages { a rel="next" href=(p.href("/alerts", &[("page", &(data.page + 1).to_string())])) { "Next →" } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="silences-h" {
            h2 #silences-h { "Silences" }
            @if data.silences.is_empty() {
                p.none { "No silences. Silence an alert from its page." }
            } @else {
                (silences_table(&data.silences, &forms, None, v.now_ms))
            }
        }
        section aria-labelledby="dead-h" {
            h2 #dead-h { "Dead letters" }
            @if data.dead_letters.is_empty() {
                p.none { "No dead letters: every email was delivered or is still being tried." }
            } @else {
                (dead_letters_table(&data.dead_letters))
            }
        }
    };
    html_response(layout::page(
        &chrome,
        Some(state_filter(data.state.as_deref())),
        body,
    ))
}

// ------------------------------------------------------------ /alerts/{id}

/// A transition with its numbers read back.
#[derive(Serialize)]
struct TransitionRow {
    at_ms: i64,
    from: String,
    to: String,
    numbers: Numbers,
}

#[derive(Serialize)]
struct AlertJson {
    id: String,
    headline: String,
    acked_ms: Option<i64>,
    acked_by: Option<String>,
    silenced: bool,
    link: String,
    record: AlertRecord,
}

#[derive(Serialize)]
struct Email {
    seq: i64,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    done_ms: Option<i64>,
    message: email::OutboxMessage,
}

#[derive(Serialize)]
struct DetailData {
    alert: AlertJson,
    transitions: Vec<TransitionRow>,
    emails: Vec<Email>,
    /// Silences whose matchers cover this alert.
    silences: Vec<Silence>,
    dead_letters: Vec<DeadLetter>,
}

fn transition_row(t: TransitionView) -> TransitionRow {
    TransitionRow {
        at_ms: t.at_ms,
        from: t.from,
        to: t.to,
        // Numbers written by an older collector may lack fields: they default.
        numbers: serde_json::from_value(t.numbers).unwrap_or_default(),
    }
}

pub async fn detail(State(state): State<AppState>, Path(id): Path<String>, v: Viewer) -> Response {
    let now = v.now_ms;
    let alert_id = id.clone();
    let read = async {
        let store = &state.store;
        let Some(stored) = store.alert(&alert_id).await? else {
            return Ok(None);
        };
        let all_silences = store.silences(now).await?;
        let rules = RuleSet::new(&state.config.alerts);
        let ctx = Context {
            rules: &rules,
            silences: &all_silences,
            deliver: false,
            mail_domain: "",
        };
        let silenced = engine::silenced(&ctx, &stored.record, now);
        let d = dims(&stored.record);
        let silences: Vec<Silence> = all_silences
            .iter()
            .filter(|s| s.matchers.matches(&stored.record.rule, &d))
            .cloned()
            .collect();
        let transitions = store
            .transitions(Some(alert_id.clone()), 0, TRANSITIONS)
            .await?
            .into_iter()
            .map(transition_row)
            .collect();
        let rows = store.outbox_for_alert(&alert_id, EMAILS).await?;
        let dead_letters = rows
            .iter()
            .filter(|r| r.status == "dead")
            .map(DeadLetter::of)
            .collect();
        let emails = rows
            .into_iter()
            .map(|r| Email {
                seq: r.seq,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                done_ms: r.done_ms,
                message: r.message,
            })
            .collect();
        Ok(Some(DetailData {
            alert: AlertJson {
                headline: describe(&stored.record),
                link: data_link(&stored.record, &stored.id, now),
                id: stored.id,
                acked_ms: stored.acked_ms,
                acked_by: stored.acked_by,
                silenced,
                record: stored.record,
            },
            transitions,
            emails,
            silences,
            dead_letters,
        }))
    }
    .await;
    let missing = format!("There is no alert with id {id:?}. The list of alerts is at /alerts.");
    let data = match super::found(&v, read, &missing) {
        Ok(d) => d,
        Err(page) => return *page,
    };
    match v.params.format {
        super::params::Format::Json => export::json(json!(data)),
        super::params::Format::Csv => export::csv("alert", &transitions_table(&data)),
        super::params::Format::Html => render_detail(&state, &v, &data),
    }
}

fn transitions_table(data: &DetailData) -> Table {
    let opt = |v: Option<f64>| num(v);
    Table {
        header: vec![
            "at_ms",
            "from",
            "to",
            "baseline_p75",
            "current_p75",
            "baseline_samples",
            "current_samples",
            "p_value",
            "threshold",
            "change",
            "bound",
            "failures",
            "passes",
            "errors",
            "last_run_id",
            "reason",
            "silent_ms",
            "interval_ms",
        ],
        rows: data
            .transitions
            .iter()
            .map(|t| {
                let n = &t.numbers;
                vec![
                    t.at_ms.to_string(),
                    t.from.clone(),
                    t.to.clone(),
                    opt(n.baseline),
                    opt(n.current),
                    n.baseline_count.to_string(),
                    n.current_count.to_string(),
                    n.p_value.map_or(String::new(), |p| format!("{p:.3e}")),
                    opt(n.threshold),
                    opt(n.change),
                    opt(n.bound),
                    n.failures.to_string(),
                    n.passes.to_string(),
                    n.errors.to_string(),
                    n.last_run_id.clone().unwrap_or_default(),
                    n.reason.clone().unwrap_or_default(),
                    n.silent_ms.map_or(String::new(), |x| x.to_string()),
                    n.interval_ms.map_or(String::new(), |x| x.to_string()),
                ]
            })
            .collect(),
    }
}

fn opt_value(metric: Metric, v: Option<f64>) -> Markup {
    match v {
        Some(_) => html! { (value(metric, v)) },
        None => html! { span.none { "—" } },
    }
}

fn share(v: Option<f64>) -> Markup {
    match v {
        Some(x) => html! { (email::percent(x)) },
        None => html! { span.none { "—" } },
    }
}

/// The columns of a numbers table for this kind of alert.
fn numbers_head(r: &AlertRecord) -> Markup {
    html! {
        @match (&r.series, r.kind) {
            (Some(_), _) => {
                th scope="col" { "Baseline p75" }
                th scope="col" { "Current p75" }
                th scope="col" { "Baseline samples" }
                th scope="col" { "Current samples" }
                th scope="col" { "p-value (Mann-Whitney U)" }
                th scope="col" { "Threshold" }
                th scope="col" { "Change" }
                th scope="col" { "Budget bound" }
                th scope="col" { "Current window" }
            },
            (None, RuleKind::FlowStale) => {
                th scope="col" { "Last result arrived" }
                th scope="col" { "Silent for" }
                th scope="col" { "Usual interval" }
                th scope="col" { "Last run" }
            },
            (None, _) => {
                th scope="col" { "Failed in a row" }
                th scope="col" { "Passed in a row" }
                th scope="col" { "Errors in a row" }
                th scope="col" { "Last run" }
                th scope="col" { "Reason" }
            },
        }
        th scope="col" { "Note" }
    }
}

fn run_link(id: &Option<String>) -> Markup {
    match id {
        Some(id) => html! { a href={"/runs/" (params_path(id))} { code { (id) } } },
        None => html! { span.none { "—" } },
    }
}

fn numbers_cells(r: &AlertRecord, n: &Numbers) -> Markup {
    html! {
        @match (&r.series, r.kind) {
            (Some(s), _) => {
                td { (opt_value(s.metric, n.baseline)) }
                td { (opt_value(s.metric, n.current)) }
                td.num { (n.baseline_count) }
                td.num { (n.current_count) }
                td.num { @match n.p_value { Some(p) => { (format!("{p:.2e}")) }, None => { span.none { "—" } } } }
                td.num { (share(n.threshold)) }
                td.num { (share(n.change)) }
                td { (opt_value(s.metric, n.bound)) }
                td { @if n.window_to_ms > 0 { (when(n.window_from_ms)) " to " (when(n.window_to_ms)) } }
            },
            (None, RuleKind::FlowStale) => {
                td { @match n.last_received_ms { Some(t) => { (when(t)) }, None => { span.none { "—" } } } }
                td { @match n.silent_ms { Some(s) => { (email::span(s)) }, None => { span.none { "—" } } } }
                td { @match n.interval_ms { Some(s) => { (email::span(s)) }, None => { span.none { "not known" } } } }
                td { (run_link(&n.last_run_id)) }
            },
            (None, _) => {
                td.num { (n.failures) }
                td.num { (n.passes) }
                td.num { (n.errors) }
                td { (run_link(&n.last_run_id)) }
                td { (n.reason.as_deref().unwrap_or("")) }
            },
        }
        td { (n.note) }
    }
}

fn render_detail(state: &AppState, v: &Viewer, data: &DetailData) -> Response {
    let mail = state.config.smtp.enabled();
    let a = &data.alert;
    let r = &a.record;
    let mut chrome = v.chrome(&a.headline, Nav::Alerts);
    let base = alert_href(&a.id);
    chrome.exports = Some((
        link(&base, [("format", "csv")].into_iter()),
        link(&base, [("format", "json")].into_iter()),
    ));
    let forms = Forms::new(state, v.session.as_ref(), base.clone());
    let m = matchers_for(r);
    let field = |name: &str, label: &str, value: &Option<String>| {
        html! {
            label { (label) input type="text" name=(name) value=[value.as_deref()]; }
        }
    };
    let state_str = r.state.as_str();
    let body = html! {
        dl.headline {
            div { dt { "State" } dd { (state_word(state_str)) } }
            div { dt { "Since" } dd { time datetime=(r.since_ms) { (when(r.since_ms)) } " (" (ago(r.since_ms, v.now_ms)) ")" } }
            div { dt { "Rule" } dd { (r.rule) " (" (r.kind.as_str().replace('_', " ")) ")" } }
        }
        dl.meta {
            @if let Some(t) = r.started_ms { div { dt { "Started about" } dd { (when(t)) } } }
            @if let Some(t) = r.fired_ms { div { dt { "Fired" } dd { (when(t)) } } }
            @if let Some(t) = r.resolved_ms { div { dt { "Resolved" } dd { (when(t)) } } }
            div { dt { "Acknowledged" } dd {
                @match a.acked_ms { Some(t) => { "by " (a.acked_by.as_deref().unwrap_or("unknown")) " at " (when(t)) }, None => { "no" } }
            } }
            div { dt { "Emails" } dd { @if a.silenced { "silenced now" } @else if !mail { "none: no SMTP server is configured" } @else { "sent as usual" } } }
            div { dt { "Alert id" } dd { code { (a.id) } } }
        }
        p {
            a href=(a.link) {
                @if r.series.is_some() { "Open the series view of this alert, with its period drawn" }
                @else { "Open the runs of flow " (r.flow) " at " (r.location) }
            }
        }
        section aria-labelledby="numbers-h" {
            h2 #numbers-h { "What the detector saw" }
            table.numbers {
                caption { "The numbers behind this alert" }
                thead { tr { th scope="col" { "When" } (numbers_head(r)) } }
                tbody {
                    @if let Some(f) = &r.fired_numbers {
                        tr { th scope="row" { "When it fired" } (numbers_cells(r, f)) }
                    }
                    tr { th scope="row" { "Latest evaluation" } (numbers_cells(r, &r.numbers)) }
                }
            }
        }
        section aria-labelledby="transitions-h" {
            h2 #transitions-h { "Transitions" }
            @if data.transitions.is_empty() {
                p.none { "No transitions recorded." }
            } @else {
                table.transitions {
                    caption { "Every change of state, newest first, with the numbers the detector saw then" }
                    thead { tr { th scope="col" { "At" } th scope="col" { "Change" } (numbers_head(r)) } }
                    tbody {
                        @for t in &data.transitions {
                            tr {
                                th scope="row" { time datetime=(t.at_ms) { (when(t.at_ms)) } }
                                td { (state_word(&t.from)) " → " (state_word(&t.to)) }
                                (numbers_cells(r, &t.numbers))
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="ack-h" {
            h2 #ack-h { "Acknowledge" }
            @if let Some(t) = a.acked_ms {
                p { "Acknowledged by " (a.acked_by.as_deref().unwrap_or("unknown")) " at " (when(t)) "; no reminders until it resolves." }
            } @else if r.state != AlertState::Firing {
                p.none { "Only a firing alert can be acknowledged; this one is " (state_str.replace('_', " ")) "." }
            } @else if let Some(csrf) = &forms.csrf {
                form.inline method="post" action={(base) "/ack"} {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Acknowledge this alert" }
                    " Stops reminders until it resolves."
                }
            } @else {
                (forms.sign_in("acknowledge this alert"))
            }
        }
        section aria-labelledby="silence-h" {
            h2 #silence-h { "Silence" }
            @if let Some(csrf) = &forms.csrf {
                form.silence method="post" action="/silences" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="alert" value=(a.id);
                    fieldset {
                        legend { "Stop emails of alerts that match all of these (empty matches anything)" }
                        (field("rule", "Rule", &m.rule))
                        (field("site", "Site", &m.site))
                        (field("page_group", "Page group (glob)", &m.page_group))
                        (field("metric", "Metric", &m.metric))
                        (field("flow", "Flow", &m.flow))
                        (field("location", "Location", &m.location))
                    }
                    label {
                        "For"
                        select name="duration" {
                            @for (d, label) in DURATIONS {
                                option value=(d) selected[d == "2h"] { (label) }
                            }
                        }
                    }
                    label { "Why (shown to everyone who sees the silence)" input type="text" name="comment" required maxlength="500"; }
                    button type="submit" { "Silence" }
                }
                p.hint { "A silence stops emails, not evaluation: states and transitions are still recorded." }
            } @else {
                (forms.sign_in("silence this alert"))
            }
            @if data.silences.is_empty() {
                p.none { "No silence covers this alert." }
            } @else {
                (silences_table(&data.silences, &forms, Some(&a.id), v.now_ms))
            }
        }
        section aria-labelledby="emails-h" {
            h2 #emails-h { "Emails about this alert" }
            @if data.emails.is_empty() {
                p.none {
                    @if state.config.smtp.enabled() { "No email was written for this alert." }
                    @else { "No email was written: this collector has no SMTP server configured (key smtp.host)." }
                }
            }
            @for e in &data.emails {
                article.email aria-labelledby={"email-" (e.seq)} {
                    h3 id={"email-" (e.seq)} { (e.message.subject) }
                    dl.meta {
                        div { dt { "Kind" } dd { (e.message.kind.tag().to_lowercase()) } }
                        div { dt { "To" } dd { (e.message.recipients.join(", ")) } }
                        div { dt { "Written" } dd { (when(e.message.created_ms)) } }
                        div { dt { "Status" } dd {
                            (e.status)
                            @match (e.status.as_str(), e.done_ms) {
                                ("sent", Some(t)) => { " at " (when(t)) },
                                ("dead", Some(t)) => { " since " (when(t)) },
                                _ => {},
                            }
                            " · delivery attempts: " (e.attempts)
                        } }
                        @if let Some(err) = &e.last_error { div { dt { "Last error" } dd { (err) } } }
                        div { dt { "Message-ID" } dd { code { (e.message.message_id) } } }
                        @if let Some(parent) = &e.message.in_reply_to { div { dt { "In reply to" } dd { code { (parent) } } } }
                    }
                    pre aria-label={"Text of the email " (e.message.subject)} { (e.message.text) }
                }
            }
        }
        section aria-labelledby="dead-h" {
            h2 #dead-h { "Dead letters" }
            @if data.dead_letters.is_empty() {
                p.none { "No email about this alert was refused for good." }
            } @else {
                (dead_letters_table(&data.dead_letters))
            }
        }
    };
    html_response(layout::page(&chrome, None, body))
}

// ------------------------------------------------------------ the forms

/// A form post that may change something: a signed-in session (even on a
/// public dashboard) and its CSRF token, or a 403 page that says which is
/// missing. Returns the form's fields without the token.
async fn guarded(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    allowed: &[&str],
) -> Result<HashMap<String, String>, Response> {
    let now = state.store.clock.now_ms();
    let Some(session) = state.sessions.verify(headers, now) else {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            false,
            now,
            "Nothing was changed: you are not signed in, or your session has expired. Acknowledging and silencing need a signed-in session, even where the pages are public. Sign in, then submit the form again.",
        ));
    };
    let bytes = match read_body(body, headers, MAX_FORM).await {
        Ok(b) => b,
        Err(_) => {
            return Err(error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                true,
                now,
                &format!(
                    "Nothing was changed: the form is larger than the {MAX_FORM} bytes a dashboard form may be."
                ),
            ));
        }
    };
    // axum's form parser, fed the bytes read under our own limit.
    let request = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes))
        .expect("a request from static parts");
    let fields = match Form::<HashMap<String, String>>::from_request(request, &()).await {
        Ok(Form(f)) => f,
        Err(e) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                true,
                now,
                &format!("Nothing was changed: the form could not be read ({e})."),
            ));
        }
    };
    if !state
        .sessions
        .csrf_ok(&session, fields.get("csrf").map(String::as_str))
    {
        tracing::info!("dashboard form refused: missing or foreign CSRF token");
        return Err(error_page(
            StatusCode::FORBIDDEN,
            true,
            now,
            "Nothing was changed: this form's security token is missing or belongs to another session (an old tab, or a page from before you signed in again). Reload the page and submit the form again.",
        ));
    }
    if let Some(unknown) = fields
        .keys()
        .find(|k| *k != "csrf" && !allowed.contains(&k.as_str()))
    {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            true,
            now,
            &format!(
                "Nothing was changed: the form has an unknown field `{unknown}`; it takes {}.",
                allowed.join(", ")
            ),
        ));
    }
    let mut fields = fields;
    fields.remove("csrf");
    Ok(fields)
}

/// A refused write as a page that says why.
fn refused(e: AppError, now: i64) -> Response {
    let (status, message) = match e {
        AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
        AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        AppError::Conflict(m) => (StatusCode::CONFLICT, m),
        other => {
            // The API's error logs internals itself; the page only says to retry.
            let status = other.into_response().status();
            (
                status,
                "The change could not be stored just now; try again in a moment. The collector's log says why.".into(),
            )
        }
    };
    error_page(
        status,
        true,
        now,
        &format!("Nothing was changed: {message}"),
    )
}

/// Back to the alert the form was on (or the list).
fn back_to(alert: Option<&str>) -> Response {
    let to = match alert.filter(|a| !a.is_empty()) {
        Some(id) => alert_href(id),
        None => "/alerts".to_string(),
    };
    let mut r = Redirect::to(&to).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `POST /alerts/{id}/ack` (fields: `csrf`).
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = guarded(&state, &headers, body, &[]).await {
        return r;
    }
    match write_ack(&state, &id, "dashboard", state.store.clock.now_ms()).await {
        Ok(()) => {
            tracing::info!(alert = %id, "alert acknowledged from the dashboard");
            back_to(Some(&id))
        }
        Err(e) => refused(e, state.store.clock.now_ms()),
    }
}

const SILENCE_FIELDS: [&str; 9] = [
    "alert",
    "rule",
    "site",
    "page_group",
    "metric",
    "flow",
    "location",
    "duration",
    "comment",
];

/// `POST /silences` (fields: `csrf`, the matchers, `duration`, `comment`,
/// and `alert`, the page to return to).
pub async fn create_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut f = match guarded(&state, &headers, body, &SILENCE_FIELDS).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut take = |k: &str| {
        f.remove(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let alert = take("alert");
    let new = NewSilence {
        matchers: Matchers {
            rule: take("rule"),
            site: take("site"),
            page_group: take("page_group"),
            metric: take("metric"),
            flow: take("flow"),
            location: take("location"),
        },
        starts_ms: None,
        ends_ms: None,
        duration: take("duration"),
        comment: take("comment").unwrap_or_default(),
        created_by: "dashboard".into(),
    };
    let silence = match new.into_silence(state.store.clock.now_ms()) {
        Ok(s) => s,
        Err(e) => return refused(e, state.store.clock.now_ms()),
    };
    match write_silence(&state, &silence).await {
        Ok(()) => {
            tracing::info!(silence = %silence.id, "silence created from the dashboard");
            back_to(alert.as_deref())
        }
        Err(e) => refused(e, state.store.clock.now_ms()),
    }
}

/// `POST /silences/{id}/expire` (fields: `csrf`, and `alert` to return to).
pub async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let f = match guarded(&state, &headers, body, &["alert"]).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match end_silence(&state, &id).await {
        Ok(()) => {
            tracing::info!(silence = %id, "silence expired from the dashboard");
            back_to(f.get("alert").map(String::as_str))
        }
        Err(e) => refused(e, state.store.clock.now_ms()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::SeriesKey;

    fn record() -> AlertRecord {
        let mut r = AlertRecord::new(
            "k".into(),
            "lcp-regression".into(),
            RuleKind::Regression,
            "default".into(),
            0,
        );
        r.series = Some(SeriesKey {
            source: vitalsign_core::metric::Source::Rum,
            site: "shop".into(),
            page_group: "/checkout".into(),
            metric: Metric::Lcp,
            device: "mobile".into(),
            flow: String::new(),
            step: String::new(),
            location: String::new(),
        });
        r.started_ms = Some(1_800_000_000_000);
        r
    }

    #[test]
    fn the_data_link_pins_the_series_view_to_the_alert() {
        let r = record();
        assert_eq!(
            data_link(&r, "abc", 1_800_000_600_000),
            "/series?metric=LCP&site=shop&page_group=/checkout&device=mobile&source=rum&from=1799913600000&to=1800000600000&alert=abc"
        );
        let mut flow = AlertRecord::new(
            "f".into(),
            "flow".into(),
            RuleKind::FlowFailure,
            "default".into(),
            0,
        );
        flow.flow = "check out".into();
        flow.location = "eu-west".into();
        assert_eq!(
            data_link(&flow, "x", 0),
            "/flows/runs?flow=check%20out&location=eu-west"
        );
    }

    #[test]
    fn a_silence_starts_from_the_alerts_own_dimensions() {
        let m = matchers_for(&record());
        assert_eq!(
            matchers_text(&m),
            "rule = lcp-regression, site = shop, page group = /checkout, metric = LCP"
        );
        assert!(m.matches("lcp-regression", &dims(&record())));
        assert_eq!(matchers_text(&Matchers::default()), "every alert");
    }
}
