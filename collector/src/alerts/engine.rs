//! The evaluation: a pure function of (rules, stored data, previous states,
//! silences, now) → changed states, transitions and rendered emails. No clock,
//! no I/O, so a test replays 30 days of hours in milliseconds, and the caller
//! writes the result in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use vitalsign_core::wire::run::Outcome;

use super::detector::{self, HOUR_MS, Numbers, Observation};
use super::email::{self, NoticeKind, OutboxMessage};
use super::rules::{Dims, RuleKind, RuleSet, SeriesKey};
use super::silences::{self, Silence};
use super::state::{AlertRecord, State, Transition};
use super::windows::HourHist;
use crate::store::flows::Freshness;

/// One probe run as flow rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub started_ms: i64,
    pub run_id: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

/// What the store holds that rules read: hourly histograms per series,
/// probe runs per (flow, location) in start order, and when each flow at each
/// location last delivered.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub series: BTreeMap<SeriesKey, BTreeMap<i64, HourHist>>,
    pub runs: BTreeMap<(String, String), Vec<RunRecord>>,
    /// Last arrival and recent start times of every flow × location.
    pub freshness: BTreeMap<(String, String), Freshness>,
    /// Since when this collector has been receiving: a flow's silence counts
    /// from then at the earliest, so a collector restarted after downtime
    /// does not call every flow stale before its agent could deliver.
    pub listening_since_ms: i64,
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
        source: vitalsign_core::metric::Source::Synthetic,
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

    // Stale flows: decided on every tick from arrival times alone, so an
    // agent that died (and sends nothing that could be evaluated) is noticed.
    let min_silence_ms = i64::try_from(cfg.flow.stale_min_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    for ((flow, location), fresh) in &snapshot.freshness {
        let Some(rule) = ctx
            .rules
            .resolve(RuleKind::FlowStale, &flow_dims(flow, location))
        else {
            continue;
        };
        out.evaluated += 1;
        let key = format!("flow_stale|{}|{flow}|{location}", rule.name);
        let known = previous.get(&key);
        let mut r = known.cloned().unwrap_or_else(|| {
            let mut r = AlertRecord::new(
                key.clone(),
                rule.name.clone(),
                RuleKind::FlowStale,
                rule.route.clone(),
                now_ms,
            );
            r.flow = flow.clone();
            r.location = location.clone();
            r
        });
        let rerouted = r.route != rule.route;
        r.route = rule.route.clone();
        let silent = now_ms - fresh.last_received_ms.max(snapshot.listening_since_ms);
        let stale = fresh
            .stale_at(now_ms, snapshot.listening_since_ms)
            .map(|stale| stale && silent >= min_silence_ms);
        let numbers = Numbers {
            last_run_id: Some(fresh.last_run_id.clone()),
            last_received_ms: Some(fresh.last_received_ms),
            silent_ms: Some(now_ms - fresh.last_received_ms),
            interval_ms: fresh.interval_ms(),
            ..Numbers::default()
        };
        let change = r.observe_freshness(stale, numbers, now_ms);
        transition(&r, change, &mut out);
        // Written when new or changed only: an unchanged silence re-read on
        // every tick must not cost a write per flow per tick.
        if known.is_none() || change.is_some() || rerouted {
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
        if r.state == State::Pending && !r.kind.is_flow() {
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
            // A stale flow is announced once per firing: its agent is gone,
            // and repeating that helps nobody.
            State::Firing
                if cfg.reminder_hours > 0
                    && r.kind != RuleKind::FlowStale
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
        // many pages); a failing or stale flow is a hard failure and always
        // gets its own email.
        if notice == NoticeKind::Firing
            && !r.kind.is_flow()
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
    // one that includes a failing or stale flow (a hard failure) goes out at once.
    groups.retain(|(notice, site, route), keys| {
        if *notice != NoticeKind::Firing || !pending_sites.contains(&(site.clone(), route.clone()))
        {
            return true;
        }
        let items: Vec<&AlertRecord> = keys
            .iter()
            .filter_map(|k| touched.get(k).or_else(|| previous.get(k)))
            .collect();
        if items.iter().any(|r| r.kind.is_flow()) {
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
                vitalsign_core::metric::Source::Synthetic.as_str()
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

#[cfg(test)]
mod tests {
    //! Stale flows through the pure engine, with `now` as an input: hours of
    //! five-second ticks run in milliseconds.

    use super::*;
    use crate::config::{AlertRoute, AlertRule, AlertsConfig};

    /// 2026-11-24 06:00 UTC.
    const T: i64 = 1_795_500_000_000;
    const EVERY: i64 = 20_000;
    const TICK: i64 = 5_000;

    fn config(stale_min_secs: u64) -> AlertsConfig {
        let mut cfg = AlertsConfig {
            public_url: "https://vitals.example".into(),
            // Reminders on: a stale flow must still be mailed only once.
            reminder_hours: 1,
            ..AlertsConfig::default()
        };
        cfg.flow.stale_min_secs = stale_min_secs;
        cfg.routes.insert(
            "default".into(),
            AlertRoute {
                to: vec!["oncall@example.com".into()],
            },
        );
        cfg
    }

    /// `runs` runs started every 20 s, the newest at `last_start`, each
    /// received a second after it started.
    fn every_20s(runs: i64, last_start: i64) -> Freshness {
        Freshness {
            last_run_id: format!("run-{runs}"),
            last_outcome: "pass".into(),
            last_started_ms: last_start,
            last_received_ms: last_start + 1000,
            recent_starts_ms: (0..runs.min(21)).map(|i| last_start - i * EVERY).collect(),
        }
    }

    /// The same flow after one more run started at `start`.
    fn one_more(f: &Freshness, start: i64) -> Freshness {
        let mut starts = vec![start];
        starts.extend(f.recent_starts_ms.iter().take(20));
        Freshness {
            last_run_id: "run-new".into(),
            last_started_ms: start,
            last_received_ms: start + 1000,
            recent_starts_ms: starts,
            ..f.clone()
        }
    }

    fn snapshot(flows: &[(&str, &str, &Freshness)]) -> Snapshot {
        Snapshot {
            freshness: flows
                .iter()
                .map(|(flow, loc, f)| ((flow.to_string(), loc.to_string()), (*f).clone()))
                .collect(),
            ..Snapshot::default()
        }
    }

    struct Sim {
        cfg: AlertsConfig,
        states: BTreeMap<String, AlertRecord>,
        outbox: Vec<OutboxMessage>,
        transitions: Vec<Transition>,
        /// Records written per tick: a quiet flow must not cost a write each tick.
        writes: usize,
    }

    impl Sim {
        fn new(cfg: AlertsConfig) -> Sim {
            Sim {
                cfg,
                states: BTreeMap::new(),
                outbox: Vec::new(),
                transitions: Vec::new(),
                writes: 0,
            }
        }

        fn tick(&mut self, snapshot: &Snapshot, now: i64) {
            let rules = RuleSet::new(&self.cfg);
            let ctx = Context {
                rules: &rules,
                silences: &[],
                deliver: true,
                mail_domain: "vitals.example",
            };
            let eval = evaluate(&ctx, snapshot, &self.states, now);
            self.writes += eval.records.len();
            for r in eval.records {
                self.states.insert(r.key.clone(), r);
            }
            self.transitions.extend(eval.transitions);
            self.outbox.extend(eval.outbox);
        }

        /// Tick every 5 s over `[from, to]`.
        fn ticks(&mut self, snapshot: &Snapshot, from: i64, to: i64) {
            let mut now = from;
            while now <= to {
                self.tick(snapshot, now);
                now += TICK;
            }
        }

        fn state(&self, flow: &str, location: &str) -> Option<State> {
            self.states
                .values()
                .find(|r| r.kind == RuleKind::FlowStale && r.flow == flow && r.location == location)
                .map(|r| r.state)
        }

        fn emails(&self, kind: NoticeKind) -> Vec<OutboxMessage> {
            self.outbox
                .iter()
                .filter(|m| m.kind == kind)
                .cloned()
                .collect()
        }
    }

    const FIRING_TEXT: &str = "FIRING: 1 alert on synthetic (route default), 2026-11-24 06:01 UTC

flow checkout at eu-west: no result for 1 min 5 s (usually every 20 s)
  where       flow checkout at eu-west
  last result run run-21 arrived 2026-11-24 06:00 UTC
  silence     no result for 1 min 5 s; usually one every 20 s (median gap between the starts of its last 21 runs), stale after 3 times that
  check       is the agent at eu-west running, and can it reach the collector?
  started     about 2026-11-24 06:00 UTC
  rule        default-flow-stale (flow_stale)
  state       firing since 2026-11-24 06:01 UTC
  open        https://vitals.example/flows/runs?flow=checkout&location=eu-west
  alert id    {ID}

-- 
Sent by the vitalsign collector.
";

    #[test]
    fn a_flow_that_stops_delivering_fires_once_and_resolves_when_a_result_arrives() {
        let mut sim = Sim::new(config(0));
        let before = every_20s(21, T);
        let arrived = before.last_received_ms;
        let quiet = snapshot(&[("checkout", "eu-west", &before)]);
        // Up to exactly three intervals of silence: fresh.
        sim.ticks(&quiet, arrived, arrived + 3 * EVERY);
        assert_eq!(sim.state("checkout", "eu-west"), Some(State::Ok));
        assert_eq!(
            sim.writes, 1,
            "only the new record is written while nothing changes"
        );
        // Then stale at the next tick, and for three hours nothing more is sent
        // (reminders are on for other kinds).
        sim.ticks(&quiet, arrived + 3 * EVERY + TICK, T + 3 * HOUR_MS);
        assert_eq!(sim.state("checkout", "eu-west"), Some(State::Firing));
        assert_eq!(sim.writes, 2);
        let firing = sim.emails(NoticeKind::Firing);
        assert_eq!(firing.len(), 1);
        assert!(sim.emails(NoticeKind::Reminder).is_empty());
        assert_eq!(
            firing[0].subject,
            "[FIRING] flow checkout at eu-west: no result for 1 min 5 s (usually every 20 s)"
        );
        let id = &firing[0].alerts[0];
        assert_eq!(
            id,
            &alert_id("flow_stale|default-flow-stale|checkout|eu-west")
        );
        assert_eq!(firing[0].text, FIRING_TEXT.replace("{ID}", id));
        let r = sim
            .states
            .values()
            .find(|r| r.kind == RuleKind::FlowStale)
            .unwrap();
        assert_eq!(
            r.started_ms,
            Some(arrived),
            "the problem started at the last arrival"
        );
        let fired = r.fired_numbers.as_ref().unwrap();
        assert_eq!(
            (fired.silent_ms, fired.interval_ms, fired.last_received_ms),
            (Some(65_000), Some(EVERY), Some(arrived))
        );

        // The agent is back: its first result resolves the alert, threaded under the firing email.
        let restart = T + 3 * HOUR_MS + 2_000;
        let back = snapshot(&[("checkout", "eu-west", &one_more(&before, restart))]);
        let arrived = restart + 1_000;
        sim.ticks(&back, arrived, arrived + 3 * EVERY);
        assert_eq!(sim.state("checkout", "eu-west"), Some(State::Resolved));
        let resolved = sim.emails(NoticeKind::Resolved);
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            resolved[0].subject,
            "[RESOLVED] flow checkout at eu-west delivering again (silent for 3 h)"
        );
        assert_eq!(
            resolved[0].in_reply_to.as_ref(),
            Some(&firing[0].message_id)
        );
        assert!(
            resolved[0]
                .text
                .contains("  new result  run run-new arrived 2026-11-24 09:00 UTC, after 3 h without results\n"),
            "{}",
            resolved[0].text
        );
        assert!(
            resolved[0].text.contains(
                "  lasted      2 h 59 min (firing 2026-11-24 06:01 UTC to 2026-11-24 09:00 UTC)\n"
            ),
            "{}",
            resolved[0].text
        );
        let moves: Vec<(State, State)> = sim.transitions.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(
            moves,
            [(State::Ok, State::Firing), (State::Firing, State::Resolved)]
        );
        assert_eq!(sim.outbox.len(), 2);

        // Silent again: a new firing, a new email.
        sim.ticks(&back, arrived + 3 * EVERY + TICK, arrived + 10 * 60_000);
        assert_eq!(sim.state("checkout", "eu-west"), Some(State::Firing));
        assert_eq!(sim.emails(NoticeKind::Firing).len(), 2);
    }

    #[test]
    fn too_few_runs_say_nothing_and_a_restarted_collector_waits_three_intervals() {
        let mut sim = Sim::new(config(0));
        let two = every_20s(2, T);
        sim.ticks(&snapshot(&[("checkout", "eu-west", &two)]), T, T + HOUR_MS);
        assert_eq!(
            sim.state("checkout", "eu-west"),
            Some(State::InsufficientData)
        );
        assert!(sim.outbox.is_empty());

        // The collector was down for a day and has just started listening: the
        // agent gets three intervals to deliver before the flow counts as stale.
        let old = every_20s(21, T - 24 * HOUR_MS);
        let mut snap = snapshot(&[("search", "eu-west", &old)]);
        snap.listening_since_ms = T;
        sim.ticks(&snap, T, T + 3 * EVERY);
        assert_eq!(sim.state("search", "eu-west"), Some(State::Ok));
        sim.tick(&snap, T + 3 * EVERY + 1);
        assert_eq!(sim.state("search", "eu-west"), Some(State::Firing));
        // The email tells the whole silence, not just the part since the restart.
        assert_eq!(
            sim.emails(NoticeKind::Firing)[0].subject,
            "[FIRING] flow search at eu-west: no result for 1 d (usually every 20 s)"
        );
    }

    #[test]
    fn stale_min_secs_holds_back_short_silences() {
        let mut sim = Sim::new(config(120));
        let f = every_20s(21, T);
        let snap = snapshot(&[("checkout", "eu-west", &f)]);
        sim.ticks(&snap, f.last_received_ms, f.last_received_ms + 115_000);
        assert_eq!(sim.state("checkout", "eu-west"), Some(State::Ok));
        sim.ticks(
            &snap,
            f.last_received_ms + 120_000,
            f.last_received_ms + 120_000,
        );
        assert_eq!(sim.state("checkout", "eu-west"), Some(State::Firing));
        assert_eq!(
            sim.emails(NoticeKind::Firing)[0].subject,
            "[FIRING] flow checkout at eu-west: no result for 2 min (usually every 20 s)"
        );
    }

    #[test]
    fn flows_stale_together_share_an_email_and_a_later_one_gets_its_own() {
        let mut sim = Sim::new(config(0));
        let a = every_20s(21, T);
        let later = every_20s(21, T + HOUR_MS);
        let snap = snapshot(&[
            ("checkout", "eu-west", &a),
            ("search", "eu-west", &a),
            ("login", "us-east", &later),
        ]);
        sim.ticks(&snap, T + 1_000, T + HOUR_MS + 5 * 60_000);
        let firing = sim.emails(NoticeKind::Firing);
        assert_eq!(
            firing.len(),
            2,
            "{:?}",
            firing.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        assert_eq!(
            firing[0].subject,
            "[FIRING] 2 alerts on synthetic: flow checkout at eu-west: no result for 1 min 5 s (usually every 20 s), and 1 more"
        );
        assert_eq!(firing[0].alerts.len(), 2);
        // Unlike regressions, a stale flow never silently joins an earlier incident.
        assert_eq!(
            firing[1].subject,
            "[FIRING] flow login at us-east: no result for 1 min 5 s (usually every 20 s)"
        );
        assert_eq!(firing[1].in_reply_to, None);
    }

    #[test]
    fn a_muting_rule_and_a_route_apply_to_stale_flows() {
        let mut cfg = config(0);
        cfg.routes.insert(
            "lab-team".into(),
            AlertRoute {
                to: vec!["lab@example.com".into()],
            },
        );
        cfg.rules.push(AlertRule {
            location: Some("lab".into()),
            enabled: Some(false),
            ..AlertRule::new("lab-agents-come-and-go", RuleKind::FlowStale)
        });
        cfg.rules.push(AlertRule {
            flow: Some("checkout".into()),
            route: Some("lab-team".into()),
            ..AlertRule::new("checkout-stale", RuleKind::FlowStale)
        });
        cfg.validate().unwrap();
        let mut sim = Sim::new(cfg);
        let f = every_20s(21, T);
        let snap = snapshot(&[("checkout", "eu-west", &f), ("checkout", "lab", &f)]);
        sim.ticks(&snap, T, T + 10 * 60_000);
        assert_eq!(sim.state("checkout", "lab"), None, "muted: no alert at all");
        let firing = sim.emails(NoticeKind::Firing);
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].recipients, ["lab@example.com"]);
        assert!(
            firing[0]
                .text
                .contains("  rule        checkout-stale (flow_stale)\n")
        );
    }
}
