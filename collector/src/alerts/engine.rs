//! The evaluation: a pure function of (rules, stored data, previous states,
//! silences, now) → changed states, transitions and rendered emails. No clock,
//! no I/O, so a test replays 30 days of hours in milliseconds, and the caller
//! writes the result in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use vitalsign_core::wire::run::Outcome;

use super::detector::{self, HOUR_MS, Observation};
use super::email::{self, NoticeKind, OutboxMessage};
use super::rules::{Dims, RuleKind, RuleSet, SeriesKey};
use super::silences::{self, Silence};
use super::state::{AlertRecord, State, Transition};
use super::windows::HourHist;

/// One probe run as flow rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub started_ms: i64,
    pub run_id: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

/// What the store holds that rules read: hourly histograms per series, and
/// probe runs per (flow, location) in start order.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub series: BTreeMap<SeriesKey, BTreeMap<i64, HourHist>>,
    pub runs: BTreeMap<(String, String), Vec<RunRecord>>,
}

/// Everything outside the data that the evaluation depends on.
pub struct Context<'a> {
    pub rules: &'a RuleSet,
    pub silences: &'a [Silence],
    /// Queue emails at all (SMTP configured).
    pub deliver: bool,
    /// Right-hand side of generated Message-IDs.
    pub mail_domain: &'a str,
}

#[derive(Debug, Default)]
pub struct Evaluation {
    /// Records that are new or changed.
    pub records: Vec<AlertRecord>,
    pub transitions: Vec<Transition>,
    pub outbox: Vec<OutboxMessage>,
    /// Series and flows looked at (for the duration metric's context).
    pub evaluated: usize,
}

/// Short stable id of an alert key (what the API and emails show).
pub fn alert_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

fn series_alert_key(kind: RuleKind, rule: &str, s: &SeriesKey) -> String {
    format!(
        "{}|{rule}|{}|{}|{}|{}|{}|{}|{}|{}",
        kind.as_str(),
        s.source,
        s.site,
        s.page_group,
        s.metric,
        s.device,
        s.flow,
        s.step,
        s.location
    )
}

fn flow_dims<'a>(flow: &'a str, location: &'a str) -> Dims<'a> {
    Dims {
        site: "",
        page_group: "",
        metric: None,
        device: "",
        source: "synthetic",
        flow,
        location,
    }
}

fn record_dims(r: &AlertRecord) -> Dims<'_> {
    match &r.series {
        Some(s) => s.into(),
        None => flow_dims(&r.flow, &r.location),
    }
}

/// Is email for this alert held back right now?
pub fn silenced(ctx: &Context, r: &AlertRecord, now_ms: i64) -> bool {
    let dims = record_dims(r);
    ctx.silences
        .iter()
        .any(|s| s.active(now_ms) && s.matchers.matches(&r.rule, &dims))
        || ctx
            .rules
            .config()
            .maintenance
            .iter()
            .any(|w| silences::window_open(w, now_ms) && silences::window_matches(w, &dims))
}

pub fn evaluate(
    ctx: &Context,
    snapshot: &Snapshot,
    previous: &BTreeMap<String, AlertRecord>,
    now_ms: i64,
) -> Evaluation {
    let cfg = ctx.rules.config();
    let end = now_ms.div_euclid(HOUR_MS);
    let mut out = Evaluation::default();
    let mut touched: BTreeMap<String, AlertRecord> = BTreeMap::new();
    let transition = |r: &AlertRecord, change: Option<(State, State)>, out: &mut Evaluation| {
        if let Some((from, to)) = change {
            out.transitions.push(Transition {
                key: r.key.clone(),
                rule: r.rule.clone(),
                at_ms: now_ms,
                from,
                to,
                numbers: r.numbers.clone(),
            });
        }
    };

    for (series, hours) in &snapshot.series {
        let dims: Dims = series.into();
        for kind in [RuleKind::Regression, RuleKind::Budget] {
            let Some(rule) = ctx.rules.resolve(kind, &dims) else {
                continue;
            };
            out.evaluated += 1;
            let key = series_alert_key(kind, &rule.name, series);
            let mut r = previous.get(&key).cloned().unwrap_or_else(|| {
                let mut r = AlertRecord::new(
                    key.clone(),
                    rule.name.clone(),
                    kind,
                    rule.route.clone(),
                    now_ms,
                );
                r.site = series.site.clone();
                r.series = Some(series.clone());
                r
            });
            // Decide once per completed hour: re-reading the same hour must not
            // count as a second confirming evaluation.
            if end - 1 <= r.last_bucket {
                continue;
            }
            r.last_bucket = end - 1;
            r.route = rule.route.clone();
            let (obs, confirm, resolve_after) = match kind {
                RuleKind::Regression => (
                    detector::regression(
                        &cfg.regression,
                        &rule,
                        hours,
                        end,
                        r.frozen_end,
                        r.fired_threshold,
                    ),
                    cfg.regression.confirm,
                    cfg.regression.resolve_after,
                ),
                _ => (
                    detector::budget(&cfg.regression, &cfg.budget, &rule, hours, end),
                    cfg.budget.confirm,
                    cfg.budget.resolve_after,
                ),
            };
            let frozen = match &obs {
                Observation::Measured { numbers, .. } if kind == RuleKind::Regression => {
                    Some(numbers.baseline_to_ms / HOUR_MS)
                }
                _ => None,
            };
            let change = r.observe(obs, confirm, resolve_after, frozen, now_ms);
            transition(&r, change, &mut out);
            touched.insert(key, r);
        }
    }

    for ((flow, location), runs) in &snapshot.runs {
        let Some(rule) = ctx
            .rules
            .resolve(RuleKind::FlowFailure, &flow_dims(flow, location))
        else {
            continue;
        };
        out.evaluated += 1;
        let key = format!("flow_failure|{}|{flow}|{location}", rule.name);
        let mut r = previous.get(&key).cloned().unwrap_or_else(|| {
            let mut r = AlertRecord::new(
                key.clone(),
                rule.name.clone(),
                RuleKind::FlowFailure,
                rule.route.clone(),
                now_ms,
            );
            r.flow = flow.clone();
            r.location = location.clone();
            r
        });
        r.route = rule.route.clone();
        let mut changed = false;
        for run in runs {
            if (run.started_ms, run.run_id.as_str()) <= (r.last_bucket, r.last_run_id.as_str()) {
                continue;
            }
            r.last_bucket = run.started_ms;
            r.last_run_id = run.run_id.clone();
            changed = true;
            let change = r.observe_run(
                &cfg.flow,
                run.outcome,
                &run.run_id,
                run.reason.as_deref(),
                run.started_ms,
                now_ms,
            );
            transition(&r, change, &mut out);
        }
        if changed {
            touched.insert(key, r);
        }
    }

    // Emails: what fired and has not been announced (new, or its silence
    // ended), what resolved after being announced, and reminders.
    let resolved_now: BTreeSet<&str> = out
        .transitions
        .iter()
        .filter(|t| t.from == State::Firing && t.to == State::Resolved)
        .map(|t| t.key.as_str())
        .collect();
    let keys: BTreeSet<String> = previous.keys().chain(touched.keys()).cloned().collect();
    let current = |k: &String| {
        touched
            .get(k)
            .or_else(|| previous.get(k))
            .expect("key from one of the maps")
    };
    // Per site and route: is anything pending (about to fire), and the latest
    // announcement of a still-firing alert (its Message-ID and time).
    let mut pending_sites: BTreeSet<(String, String)> = BTreeSet::new();
    let mut announced: BTreeMap<(String, String, RuleKind), (i64, String)> = BTreeMap::new();
    for key in &keys {
        let r = current(key);
        let place = (r.site.clone(), r.route.clone());
        // Only hourly decisions are worth waiting for; a flow's pending state
        // lasts until its next run and must not hold anything back.
        if r.state == State::Pending && r.kind != RuleKind::FlowFailure {
            pending_sites.insert(place.clone());
        }
        let incident = (place.0, place.1, r.kind);
        if r.state == State::Firing
            && r.notified
            && let (Some(id), Some(at)) = (&r.message_id, r.last_notified_ms)
            && announced.get(&incident).is_none_or(|(t, _)| at > *t)
        {
            announced.insert(incident, (at, id.clone()));
        }
    }
    let group_wait = cfg.group_wait_hours as i64 * HOUR_MS;
    let group_window = cfg.group_window_hours as i64 * HOUR_MS;
    let mut groups: BTreeMap<(NoticeKind, String, String), Vec<String>> = BTreeMap::new();
    let mut joined: Vec<(String, String)> = Vec::new();
    for key in keys.iter().cloned() {
        let r = current(&key);
        let notice = match r.state {
            State::Firing if !r.notified => Some(NoticeKind::Firing),
            State::Firing
                if cfg.reminder_hours > 0
                    && r.acked_ms.is_none()
                    && now_ms - r.last_notified_ms.unwrap_or(now_ms)
                        >= cfg.reminder_hours as i64 * HOUR_MS =>
            {
                Some(NoticeKind::Reminder)
            }
            State::Resolved if resolved_now.contains(key.as_str()) && r.notified => {
                Some(NoticeKind::Resolved)
            }
            _ => None,
        };
        let Some(notice) = notice else { continue };
        if silenced(ctx, r, now_ms) {
            continue;
        }
        let place = (r.site.clone(), r.route.clone());
        // Joining an incident is for the many-series case (a deploy slowing
        // many pages); a failing flow is a hard failure and always gets its own email.
        if notice == NoticeKind::Firing
            && r.kind != RuleKind::FlowFailure
            && let Some((at, id)) = announced.get(&(place.0.clone(), place.1.clone(), r.kind))
            && now_ms - at < group_window
        {
            joined.push((key, id.clone()));
            continue;
        }
        groups
            .entry((notice, place.0, place.1))
            .or_default()
            .push(key);
    }
    let joined: Vec<(AlertRecord, String)> = joined
        .into_iter()
        .map(|(key, id)| (current(&key).clone(), id))
        .collect();
    for (mut r, id) in joined {
        let key = r.key.clone();
        r.notified = true;
        r.message_id = Some(id);
        r.last_notified_ms = Some(now_ms);
        touched.insert(key, r);
    }
    // A firing email waits (at most `group_wait`) while siblings are pending;
    // one that includes a failing flow (a hard failure) goes out at once.
    groups.retain(|(notice, site, route), keys| {
        if *notice != NoticeKind::Firing || !pending_sites.contains(&(site.clone(), route.clone()))
        {
            return true;
        }
        let items: Vec<&AlertRecord> = keys
            .iter()
            .filter_map(|k| touched.get(k).or_else(|| previous.get(k)))
            .collect();
        if items.iter().any(|r| r.kind == RuleKind::FlowFailure) {
            return true;
        }
        let earliest = items
            .iter()
            .filter_map(|r| r.fired_ms)
            .min()
            .unwrap_or(now_ms);
        now_ms - earliest >= group_wait
    });

    for ((notice, site, route), keys) in groups {
        let recipients = cfg
            .routes
            .get(&route)
            .map(|r| r.to.clone())
            .unwrap_or_default();
        let mut items: Vec<AlertRecord> = keys
            .iter()
            .map(|k| {
                touched
                    .get(k)
                    .or_else(|| previous.get(k))
                    .cloned()
                    .expect("grouped key exists")
            })
            .collect();
        // Biggest change first: the subject names the worst one.
        items.sort_by(|a, b| {
            let change = |r: &AlertRecord| {
                r.fired_numbers
                    .as_ref()
                    .unwrap_or(&r.numbers)
                    .change
                    .unwrap_or(0.0)
            };
            change(b)
                .total_cmp(&change(a))
                .then_with(|| a.key.cmp(&b.key))
        });
        let deliverable = ctx.deliver && !recipients.is_empty();
        let message_id = deliverable.then(|| {
            let mut h = Sha256::new();
            h.update(format!("{notice:?}|{site}|{route}|{now_ms}"));
            for k in &keys {
                h.update(k.as_bytes());
            }
            format!("<{}@{}>", hex::encode(&h.finalize()[..12]), ctx.mail_domain)
        });
        if let Some(message_id) = &message_id {
            let refs: Vec<&AlertRecord> = items.iter().collect();
            let ids: Vec<String> = items.iter().map(|r| alert_id(&r.key)).collect();
            let site_label = if site.is_empty() {
                "synthetic"
            } else {
                site.as_str()
            };
            let subject = email::subject(notice, site_label, &refs, now_ms);
            let (text, html) = email::bodies(
                notice,
                site_label,
                &route,
                &refs,
                &ids,
                &cfg.public_url,
                now_ms,
            );
            let mut references: Vec<String> = Vec::new();
            if notice != NoticeKind::Firing {
                for r in &items {
                    if let Some(id) = &r.message_id
                        && !references.contains(id)
                    {
                        references.push(id.clone());
                    }
                }
            }
            out.outbox.push(OutboxMessage {
                message_id: message_id.clone(),
                kind: notice,
                created_ms: now_ms,
                route: route.clone(),
                recipients: recipients.clone(),
                subject,
                text,
                html,
                in_reply_to: references.first().cloned(),
                references,
                alerts: ids,
            });
        }
        for mut r in items {
            match notice {
                NoticeKind::Firing => {
                    r.notified = true;
                    r.message_id = message_id.clone();
                }
                NoticeKind::Resolved => {}
                NoticeKind::Reminder => {}
            }
            r.last_notified_ms = Some(now_ms);
            touched.insert(r.key.clone(), r);
        }
    }
    out.records = touched.into_values().collect();
    out
}
