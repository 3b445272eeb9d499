//! Alert emails: what they say (pure functions, tested for exact text) and how
//! they leave (lettre over SMTP: plain, STARTTLS or implicit TLS).
//!
//! The subject answers "what, where, how much" in one line
//! (`[FIRING] LCP p75 2.1 s → 2.8 s (+34 %) /checkout mobile`); the body gives
//! baseline and current values with their sample counts and windows, the
//! estimated start, the rule, and a link to the dashboard view of the alert
//! (the series view pinned to its time range, or the flow's run list). A
//! resolved email threads under the firing one and says how long it lasted.

use std::fmt::Write;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use vitalsign_core::format::metric_value;
use vitalsign_core::metric::Metric;

use super::detector::{HOUR_MS, Numbers};
use super::rules::RuleKind;
use super::state::AlertRecord;
use crate::config::{SmtpConfig, SmtpTls};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Firing,
    Resolved,
    Reminder,
}

impl NoticeKind {
    pub fn tag(self) -> &'static str {
        match self {
            NoticeKind::Firing => "FIRING",
            NoticeKind::Resolved => "RESOLVED",
            NoticeKind::Reminder => "REMINDER",
        }
    }
}

/// A rendered email, as the outbox stores it: retries resend these exact bytes' source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub message_id: String,
    pub kind: NoticeKind,
    pub created_ms: i64,
    pub route: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Ids of the alerts this email is about.
    pub alerts: Vec<String>,
}

/// `+34 %`, `-5 %`.
pub fn percent(change: f64) -> String {
    format!("{:+.0} %", change * 100.0)
}

/// `3 h 10 min`, `25 min`, `2 d 4 h`.
pub fn lasted(ms: i64) -> String {
    let minutes = (ms.max(0) + 30_000) / 60_000;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h, m) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// `45 s`, `4 min 10 s`, `2.5 s`: to the second below an hour (a stale flow's
/// silence and its interval are seconds to minutes), as [`lasted`] above.
pub fn span(ms: i64) -> String {
    let ms = ms.max(0);
    let tenths = (ms + 50) / 100;
    if tenths < 100 && tenths % 10 != 0 {
        return format!("{}.{} s", tenths / 10, tenths % 10);
    }
    let s = (ms + 500) / 1000;
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) if m < 60 => format!("{m} min"),
        (m, s) if m < 60 => format!("{m} min {s} s"),
        _ => lasted(ms),
    }
}

/// `2026-11-24 09:00 UTC`.
pub fn utc(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        // Beyond chrono's ±262,000 years: no stored time is; say so rather than panic.
        None => format!("{ms} ms since 1970 (UTC)"),
    }
}

/// Everything but RFC 3986's unreserved characters, so a page group or step
/// name is one query value (`/a b` → `%2Fa%20b`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The one-line summary of an alert used in subjects and as headings.
pub fn headline(kind: NoticeKind, r: &AlertRecord) -> String {
    match (r.kind, &r.series) {
        (RuleKind::FlowStale, _) => {
            let fired = r.fired_numbers.as_ref().unwrap_or(&r.numbers);
            match kind {
                NoticeKind::Resolved => format!(
                    "flow {} at {} delivering again (silent for {})",
                    r.flow,
                    r.location,
                    span(silence(r))
                ),
                _ => format!(
                    "flow {} at {}: no result for {} (usually every {})",
                    r.flow,
                    r.location,
                    span(fired.silent_ms.unwrap_or(0)),
                    fired.interval_ms.map_or("?".into(), span)
                ),
            }
        }
        (RuleKind::FlowFailure, _) | (_, None) => match kind {
            NoticeKind::Resolved => format!("flow {} passing again at {}", r.flow, r.location),
            _ => format!(
                "flow {} failing at {} ({} failed runs in a row)",
                r.flow,
                r.location,
                r.fired_numbers
                    .as_ref()
                    .map_or(r.numbers.failures, |n| n.failures)
                    .max(r.numbers.failures)
            ),
        },
        (rule_kind, Some(series)) => {
            let m = series.metric;
            let fired = r.fired_numbers.as_ref().unwrap_or(&r.numbers);
            let now = &r.numbers;
            match (rule_kind, kind) {
                (RuleKind::Regression, NoticeKind::Resolved) => format!(
                    "{m} p75 {} → {} {}",
                    opt(m, fired.current),
                    opt(m, now.current),
                    series.place()
                ),
                (RuleKind::Regression, _) => {
                    let n = if kind == NoticeKind::Reminder {
                        now
                    } else {
                        fired
                    };
                    format!(
                        "{m} p75 {} → {} ({}) {}",
                        opt(m, n.baseline),
                        opt(m, n.current),
                        n.change.map_or("?".into(), percent),
                        series.place()
                    )
                }
                (_, NoticeKind::Resolved) => format!(
                    "{m} p75 {} back under the {} budget {}",
                    opt(m, now.current),
                    opt(m, now.bound),
                    series.place()
                ),
                _ => {
                    let n = if kind == NoticeKind::Reminder {
                        now
                    } else {
                        fired
                    };
                    format!(
                        "{m} p75 {} over the {} budget {}",
                        opt(m, n.current),
                        opt(m, n.bound),
                        series.place()
                    )
                }
            }
        }
    }
}

/// How long a stale flow went without results: from the last arrival before
/// it fired to the first one after (or to the latest numbers seen).
fn silence(r: &AlertRecord) -> i64 {
    let before = r
        .fired_numbers
        .as_ref()
        .and_then(|n| n.last_received_ms)
        .or(r.numbers.last_received_ms)
        .unwrap_or(0);
    match r.numbers.last_received_ms {
        Some(after) if after > before => after - before,
        _ => r.numbers.silent_ms.unwrap_or(0),
    }
}

fn opt(m: Metric, v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| metric_value(m, v))
}

/// Subject of an email about one or more alerts of one site and route.
pub fn subject(kind: NoticeKind, site: &str, items: &[&AlertRecord], now_ms: i64) -> String {
    let first = headline(kind, items[0]);
    // A stale flow's resolution says how long it was silent instead.
    let last =
        if kind == NoticeKind::Resolved && items.len() == 1 && items[0].kind != RuleKind::FlowStale
        {
            let fired = items[0].fired_ms.unwrap_or(now_ms);
            format!(" (lasted {})", lasted(now_ms - fired))
        } else {
            String::new()
        };
    if items.len() == 1 {
        format!("[{}] {first}{last}", kind.tag())
    } else {
        format!(
            "[{}] {} alerts on {site}: {first}, and {} more",
            kind.tag(),
            items.len(),
            items.len() - 1
        )
    }
}

/// Rows of the detail table of one alert: (label, value).
fn rows(
    kind: NoticeKind,
    r: &AlertRecord,
    id: &str,
    public_url: &str,
    now_ms: i64,
) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let n: &Numbers = match kind {
        NoticeKind::Firing => r.fired_numbers.as_ref().unwrap_or(&r.numbers),
        _ => &r.numbers,
    };
    match &r.series {
        Some(s) => {
            let m = s.metric;
            let place = if s.source == vitalsign_core::metric::Source::Synthetic {
                format!(
                    "flow {} step {} at {} ({}, synthetic)",
                    s.flow, s.step, s.location, s.device
                )
            } else {
                format!(
                    "site {} page group {} ({}, rum)",
                    s.site, s.page_group, s.device
                )
            };
            rows.push(("where".into(), place));
            if r.kind == RuleKind::Regression {
                rows.push((
                    "baseline".into(),
                    format!(
                        "{} p75 of {} samples, {} to {}",
                        opt(m, n.baseline),
                        n.baseline_count,
                        utc(n.baseline_from_ms),
                        utc(n.baseline_to_ms)
                    ),
                ));
            } else {
                rows.push(("budget".into(), format!("{} p75", opt(m, n.bound))));
            }
            rows.push((
                "current".into(),
                format!(
                    "{} p75 of {} samples, {} to {}",
                    opt(m, n.current),
                    n.current_count,
                    utc(n.window_from_ms),
                    utc(n.window_to_ms)
                ),
            ));
            if r.kind == RuleKind::Regression {
                if let (Some(b), Some(c), Some(ch)) = (n.baseline, n.current, n.change) {
                    let diff = c - b;
                    let abs = if m.is_time() {
                        format!("{diff:+.0} ms")
                    } else {
                        format!("{diff:+.3}")
                    };
                    rows.push((
                        "change".into(),
                        format!(
                            "{} ({abs}); Mann-Whitney U p = {}; threshold {}",
                            percent(ch),
                            n.p_value.map_or("?".into(), |p| format!("{p:.2e}")),
                            n.threshold.map_or("?".into(), percent)
                        ),
                    ));
                }
            } else if let Some(ch) = n.change {
                rows.push(("over budget".into(), percent(ch)));
            }
        }
        None if r.kind == RuleKind::FlowStale => {
            rows.push(("where".into(), format!("flow {} at {}", r.flow, r.location)));
            let fired = r.fired_numbers.as_ref().unwrap_or(&r.numbers);
            let arrived = |n: &Numbers| {
                format!(
                    "run {} arrived {}",
                    n.last_run_id.as_deref().unwrap_or("?"),
                    utc(n.last_received_ms.unwrap_or(0))
                )
            };
            if kind == NoticeKind::Resolved {
                rows.push((
                    "new result".into(),
                    format!(
                        "{}, after {} without results",
                        arrived(&r.numbers),
                        span(silence(r))
                    ),
                ));
            } else {
                rows.push(("last result".into(), arrived(fired)));
                rows.push((
                    "silence".into(),
                    format!(
                        "no result for {}; usually one every {} (median gap between the starts of its last {} runs), stale after {} times that",
                        span(fired.silent_ms.unwrap_or(0)),
                        fired.interval_ms.map_or("?".into(), span),
                        crate::store::flows::RECENT_RUNS,
                        crate::store::flows::STALE_FACTOR
                    ),
                ));
                rows.push((
                    "check".into(),
                    format!(
                        "is the agent at {} running, and can it reach the collector?",
                        r.location
                    ),
                ));
            }
        }
        None => {
            rows.push(("where".into(), format!("flow {} at {}", r.flow, r.location)));
            rows.push((
                "runs".into(),
                format!(
                    "{} failed, {} passed in a row; last run {}",
                    n.failures,
                    n.passes,
                    n.last_run_id.as_deref().unwrap_or("?")
                ),
            ));
            if let Some(reason) = &n.reason {
                rows.push(("failure".into(), reason.clone()));
            }
        }
    }
    if let Some(start) = r.started_ms {
        rows.push(("started".into(), format!("about {}", utc(start))));
    }
    rows.push(("rule".into(), format!("{} ({})", r.rule, r.kind.as_str())));
    match kind {
        NoticeKind::Resolved => rows.push((
            "lasted".into(),
            format!(
                "{} (firing {} to {})",
                // A stale flow's firing is seconds to minutes long.
                if r.kind == RuleKind::FlowStale {
                    span(now_ms - r.fired_ms.unwrap_or(now_ms))
                } else {
                    lasted(now_ms - r.fired_ms.unwrap_or(now_ms))
                },
                utc(r.fired_ms.unwrap_or(now_ms)),
                utc(now_ms)
            ),
        )),
        _ => rows.push((
            "state".into(),
            format!("firing since {}", utc(r.fired_ms.unwrap_or(now_ms))),
        )),
    }
    rows.push(("open".into(), link(kind, r, id, public_url, now_ms)));
    rows
}

/// The dashboard view of this alert (a page a mail client can open, after
/// sign-in): for a series, the series view pinned from a day before the
/// alert started to now — to an hour after it resolved, in a resolved email —
/// with the alert `id`'s period drawn; for a flow, its run list.
pub fn link(kind: NoticeKind, r: &AlertRecord, id: &str, public_url: &str, now_ms: i64) -> String {
    let base = public_url.trim_end_matches('/');
    match &r.series {
        Some(s) => {
            let from = r.started_ms.unwrap_or(now_ms) - 24 * HOUR_MS;
            let to = match kind {
                NoticeKind::Resolved => r.resolved_ms.unwrap_or(now_ms) + HOUR_MS,
                NoticeKind::Firing | NoticeKind::Reminder => now_ms,
            };
            let mut url = format!("{base}/series?metric={}&source={}", s.metric, s.source);
            for (k, v) in [
                ("site", &s.site),
                ("page_group", &s.page_group),
                ("device", &s.device),
                ("flow", &s.flow),
                ("step", &s.step),
                ("location", &s.location),
            ] {
                if !v.is_empty() {
                    let _ = write!(url, "&{k}={}", url_encode(v));
                }
            }
            let _ = write!(url, "&from={from}&to={to}&alert={}", url_encode(id));
            url
        }
        None => format!(
            "{base}/flows/runs?flow={}&location={}",
            url_encode(&r.flow),
            url_encode(&r.location)
        ),
    }
}

/// Text and HTML bodies.
pub fn bodies(
    kind: NoticeKind,
    site: &str,
    route: &str,
    items: &[&AlertRecord],
    ids: &[String],
    public_url: &str,
    now_ms: i64,
) -> (String, String) {
    let mut text = String::new();
    let mut html = String::new();
    let intro = format!(
        "{}: {} alert{} on {site} (route {route}), {}",
        kind.tag(),
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        utc(now_ms)
    );
    let _ = writeln!(text, "{intro}\n");
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n<p>{}</p>\n",
        html_escape(&intro)
    );
    for (r, id) in items.iter().zip(ids) {
        let head = headline(kind, r);
        let _ = writeln!(text, "{head}");
        let _ = writeln!(
            html,
            "<h3>{}</h3>\n<table cellpadding=\"3\">",
            html_escape(&head)
        );
        for (label, value) in rows(kind, r, id, public_url, now_ms) {
            let _ = writeln!(text, "  {label:<12}{value}");
            let cell = if label == "open" {
                format!("<a href=\"{0}\">{0}</a>", html_escape(&value))
            } else {
                html_escape(&value)
            };
            let _ = writeln!(
                html,
                "<tr><th align=\"left\">{}</th><td>{cell}</td></tr>",
                html_escape(&label)
            );
        }
        let _ = writeln!(text, "  {:<12}{id}\n", "alert id");
        let _ = writeln!(
            html,
            "<tr><th align=\"left\">alert id</th><td>{}</td></tr>\n</table>",
            html_escape(id)
        );
    }
    // Stale flows get no reminders, so an email of only those has nothing to stop.
    let reminds = items.iter().any(|r| r.kind != RuleKind::FlowStale);
    let footer = if kind == NoticeKind::Resolved || !reminds {
        "Sent by the vitalsign collector.".to_string()
    } else {
        format!(
            "Acknowledge to stop reminders: POST {}/api/v1/alerts/ALERT_ID/ack (query token). Sent by the vitalsign collector.",
            public_url.trim_end_matches('/')
        )
    };
    let _ = writeln!(text, "-- \n{footer}");
    let _ = write!(
        html,
        "<p style=\"color: #666\">{}</p>\n</body></html>\n",
        html_escape(&footer)
    );
    (text, html)
}

/// Errors from building or sending one email, sorted by what the worker does next.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// 5xx or an unusable message: retrying cannot help.
    #[error("permanent: {0}")]
    Permanent(String),
    /// 4xx, connection refused, timeout, TLS hiccup: retry with backoff.
    #[error("temporary: {0}")]
    Temporary(String),
}

/// A lettre transport for the configured server.
pub fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let port = smtp.effective_port();
    let params = || {
        TlsParameters::new(smtp.host.clone())
            .map_err(|e| format!("smtp.host {:?}: TLS setup failed: {e}", smtp.host))
    };
    let tls = match smtp.tls {
        SmtpTls::Plain => Tls::None,
        SmtpTls::Starttls => Tls::Required(params()?),
        SmtpTls::Tls => Tls::Wrapper(params()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// Build the MIME message (text + HTML alternative, threading headers).
pub fn message(from: &str, m: &OutboxMessage) -> Result<Message, SendError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| SendError::Permanent(format!("smtp.from {from:?}: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(m.subject.clone())
        .message_id(Some(m.message_id.clone()))
        .date(std::time::UNIX_EPOCH + Duration::from_millis(m.created_ms.max(0) as u64));
    for to in &m.recipients {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient {to:?}: {e}")))?;
        builder = builder.to(to);
    }
    if let Some(parent) = &m.in_reply_to {
        builder = builder.in_reply_to(parent.clone());
    }
    if !m.references.is_empty() {
        builder = builder.references(m.references.join(" "));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            m.html.clone(),
        ))
        .map_err(|e| SendError::Permanent(format!("building the message: {e}")))
}

/// Send one message; the error says whether a retry can help.
pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    m: &OutboxMessage,
) -> Result<(), SendError> {
    let email = message(from, m)?;
    match transport.send(email).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(describe(&e))),
        Err(e) => Err(SendError::Temporary(describe(&e))),
    }
}

/// lettre's message plus a hint for the usual mistake (lldap does the same).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    if e.is_tls() {
        s.push_str(" (check smtp.tls: port 465 usually wants \"tls\", 587 \"starttls\", 25 on a relay \"plain\")");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_values_durations_and_dates() {
        assert_eq!(percent(0.344), "+34 %");
        assert_eq!(percent(-0.05), "-5 %");
        assert_eq!(lasted(25 * 60_000), "25 min");
        assert_eq!(lasted(3 * 3_600_000 + 10 * 60_000), "3 h 10 min");
        assert_eq!(lasted(52 * 3_600_000), "2 d 4 h");
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_500_000_000), "2026-11-24 06:00 UTC");
        assert_eq!(utc(951_782_400_000 + 59 * 60_000), "2000-02-29 00:59 UTC");
        assert_eq!(utc(-60_000), "1969-12-31 23:59 UTC");
        assert_eq!(url_encode("/a b/ü"), "%2Fa%20b%2F%C3%BC");
        assert_eq!(url_encode("a-b_c.d~e&f=g"), "a-b_c.d~e%26f%3Dg");
        assert_eq!(span(2_450), "2.5 s");
        assert_eq!(span(2_003), "2 s");
        assert_eq!(span(9_990), "10 s");
        assert_eq!(span(20_000), "20 s");
        assert_eq!(span(45_400), "45 s");
        assert_eq!(span(60_200), "1 min");
        assert_eq!(span(250_000), "4 min 10 s");
        assert_eq!(span(2 * 3_600_000 + 5 * 60_000 + 7_000), "2 h 5 min");
    }

    #[test]
    fn links_open_the_dashboard_views_not_the_json_api() {
        use super::super::rules::SeriesKey;
        let hour = HOUR_MS;
        let t = 1_795_500_000_000; // 2026-11-24 06:00 UTC
        let mut r = AlertRecord::new(
            "budget|default-budget|synthetic||||desktop|checkout|pay|eu-west".into(),
            "default-budget".into(),
            RuleKind::Budget,
            "default".into(),
            t,
        );
        r.series = Some(SeriesKey {
            source: vitalsign_core::metric::Source::Synthetic,
            site: String::new(),
            page_group: String::new(),
            metric: Metric::Inp,
            device: "desktop".into(),
            flow: "checkout".into(),
            step: "pay now".into(),
            location: "eu-west".into(),
        });
        r.started_ms = Some(t - 3 * hour);
        r.resolved_ms = Some(t + 2 * hour);
        let base = "https://vitals.example/";
        let series = "https://vitals.example/series?metric=INP&source=synthetic&device=desktop&flow=checkout&step=pay%20now&location=eu-west";
        let from = t - 27 * hour;
        assert_eq!(
            link(NoticeKind::Firing, &r, "a1b2", base, t + 60_000),
            format!("{series}&from={from}&to={}&alert=a1b2", t + 60_000)
        );
        assert_eq!(
            link(NoticeKind::Reminder, &r, "a1b2", base, t + 5 * hour),
            format!("{series}&from={from}&to={}&alert=a1b2", t + 5 * hour)
        );
        // Resolved: to an hour after the resolution, whenever the email is rendered.
        assert_eq!(
            link(
                NoticeKind::Resolved,
                &r,
                "a1b2",
                base,
                t + 2 * hour + 60_000
            ),
            format!("{series}&from={from}&to={}&alert=a1b2", t + 3 * hour)
        );
        for kind in [RuleKind::FlowFailure, RuleKind::FlowStale] {
            let mut f = AlertRecord::new("k".into(), "r".into(), kind, "default".into(), t);
            f.flow = "check out".into();
            f.location = "eu-west".into();
            assert_eq!(
                link(NoticeKind::Firing, &f, "a1b2", base, t),
                "https://vitals.example/flows/runs?flow=check%20out&location=eu-west"
            );
        }
    }

    /// lettre's pooled transport belongs to a Tokio runtime (as in the collector).
    #[tokio::test]
    async fn every_tls_mode_builds_a_transport() {
        for tls in [SmtpTls::Plain, SmtpTls::Starttls, SmtpTls::Tls] {
            let smtp = SmtpConfig {
                host: "127.0.0.1".into(),
                tls,
                username: "u".into(),
                password: vitalsign_core::secret::Secret::new("p"),
                ..SmtpConfig::default()
            };
            assert!(transport(&smtp).is_ok(), "{tls:?}");
        }
    }
}
