//! The state machine every rule shares: `ok → pending → firing → resolved`,
//! plus `insufficient_data` and `error`. One call advances one alert by one
//! observation (an hourly bucket, or one probe run) and says which transition,
//! if any, happened.

use serde::{Deserialize, Serialize};

use super::detector::{Numbers, Observation};
use super::rules::{RuleKind, SeriesKey};
use crate::config::FlowSettings;
use vitalsign_core::wire::run::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Pending,
    Firing,
    Resolved,
    InsufficientData,
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
            State::InsufficientData => "insufficient_data",
            State::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Ok,
            State::Pending,
            State::Firing,
            State::Resolved,
            State::InsufficientData,
            State::Error,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One alert: a rule applied to a series (or to a flow at a location), as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Stable id: kind, rule and series, so a restart finds the same alert.
    pub key: String,
    pub rule: String,
    pub kind: RuleKind,
    /// Site for grouping emails (empty for synthetic series and flows).
    pub site: String,
    pub route: String,
    /// Regression and budget alerts: the series.
    pub series: Option<SeriesKey>,
    /// Flow alerts: the flow and location.
    #[serde(default)]
    pub flow: String,
    #[serde(default)]
    pub location: String,
    pub state: State,
    pub since_ms: i64,
    /// Last hour decided (regression/budget) or start time of the last run seen (flows).
    pub last_bucket: i64,
    /// Last run id seen (flows), to break ties of equal start times.
    #[serde(default)]
    pub last_run_id: String,
    /// Observations in a row that support the next move (confirm / resolve).
    pub streak: u32,
    /// Baseline end hour, frozen while pending or firing.
    pub frozen_end: Option<i64>,
    /// Threshold the alert fired at; resolution uses half of it (hysteresis).
    pub fired_threshold: Option<f64>,
    /// Estimated start of the problem.
    pub started_ms: Option<i64>,
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    /// Latest observation.
    pub numbers: Numbers,
    /// The observation that made it fire (the "before → after" of emails).
    pub fired_numbers: Option<Numbers>,
    /// Message-ID of the email that announced the current firing.
    pub message_id: Option<String>,
    /// The current firing has been announced (false while silenced).
    pub notified: bool,
    pub last_notified_ms: Option<i64>,
    /// Acknowledged (kept in its own column, so the evaluator never overwrites it).
    #[serde(skip)]
    pub acked_ms: Option<i64>,
}

impl AlertRecord {
    pub fn new(key: String, rule: String, kind: RuleKind, route: String, now_ms: i64) -> Self {
        AlertRecord {
            key,
            rule,
            kind,
            site: String::new(),
            route,
            series: None,
            flow: String::new(),
            location: String::new(),
            state: State::Ok,
            since_ms: now_ms,
            last_bucket: i64::MIN,
            last_run_id: String::new(),
            streak: 0,
            frozen_end: None,
            fired_threshold: None,
            started_ms: None,
            fired_ms: None,
            resolved_ms: None,
            numbers: Numbers::default(),
            fired_numbers: None,
            message_id: None,
            notified: false,
            last_notified_ms: None,
            acked_ms: None,
        }
    }

    fn enter(&mut self, to: State, now_ms: i64) -> Option<(State, State)> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        self.since_ms = now_ms;
        match to {
            State::Firing => {
                self.fired_ms = Some(now_ms);
                self.resolved_ms = None;
                self.fired_numbers = Some(self.numbers.clone());
                self.notified = false;
                self.message_id = None;
                self.last_notified_ms = None;
            }
            State::Resolved => {
                self.resolved_ms = Some(now_ms);
                self.frozen_end = None;
            }
            State::Ok | State::InsufficientData => {
                self.frozen_end = None;
                self.fired_threshold = None;
                self.started_ms = None;
            }
            State::Pending | State::Error => {}
        }
        Some((from, to))
    }

    /// Advance a regression or budget alert by one hourly observation.
    /// `frozen_end` is the baseline end to pin if this observation starts a
    /// pending period. Returns the transition (from, to), if any.
    pub fn observe(
        &mut self,
        obs: Observation,
        confirm: u32,
        resolve_after: u32,
        frozen_end: Option<i64>,
        now_ms: i64,
    ) -> Option<(State, State)> {
        match obs {
            Observation::Insufficient(numbers) => {
                self.numbers = numbers;
                match self.state {
                    // Missing data is no evidence of recovery: a firing alert stays.
                    State::Firing => None,
                    _ => {
                        self.streak = 0;
                        self.enter(State::InsufficientData, now_ms)
                    }
                }
            }
            Observation::Measured {
                numbers,
                hit,
                recovered,
                start_ms,
            } => {
                self.numbers = numbers;
                match self.state {
                    State::Firing => {
                        if recovered {
                            self.streak += 1;
                            if self.streak >= resolve_after {
                                self.streak = 0;
                                return self.enter(State::Resolved, now_ms);
                            }
                        } else {
                            self.streak = 0;
                        }
                        None
                    }
                    State::Pending => {
                        if hit {
                            self.streak += 1;
                            if self.streak >= confirm {
                                self.streak = 0;
                                self.fired_threshold = self.numbers.threshold;
                                return self.enter(State::Firing, now_ms);
                            }
                            None
                        } else {
                            self.streak = 0;
                            self.enter(State::Ok, now_ms)
                        }
                    }
                    State::Ok | State::Resolved | State::InsufficientData | State::Error => {
                        if hit {
                            self.started_ms = start_ms.or(Some(self.numbers.window_from_ms));
                            self.frozen_end = frozen_end;
                            self.streak = 1;
                            if confirm <= 1 {
                                self.streak = 0;
                                self.fired_threshold = self.numbers.threshold;
                                return self.enter(State::Firing, now_ms);
                            }
                            self.enter(State::Pending, now_ms)
                        } else {
                            self.streak = 0;
                            match self.state {
                                State::InsufficientData | State::Error => {
                                    self.enter(State::Ok, now_ms)
                                }
                                _ => None,
                            }
                        }
                    }
                }
            }
        }
    }

    /// Advance a flow-failure alert by one run. `fail` is the site's fault,
    /// `error` ours (browser or agent), `skipped` says nothing.
    pub fn observe_run(
        &mut self,
        s: &FlowSettings,
        outcome: Outcome,
        run_id: &str,
        reason: Option<&str>,
        started_ms: i64,
        now_ms: i64,
    ) -> Option<(State, State)> {
        let n = &mut self.numbers;
        n.last_run_id = Some(run_id.to_string());
        match outcome {
            Outcome::Skipped => None,
            Outcome::Error => {
                n.errors += 1;
                n.reason = reason.map(str::to_string);
                if n.errors >= s.error_after
                    && matches!(
                        self.state,
                        State::Ok | State::Resolved | State::InsufficientData
                    )
                {
                    return self.enter(State::Error, now_ms);
                }
                None
            }
            Outcome::Fail => {
                n.failures += 1;
                n.passes = 0;
                n.errors = 0;
                n.reason = reason.map(str::to_string);
                if n.failures == 1 {
                    self.started_ms = Some(started_ms);
                }
                if n.failures >= s.fail_after {
                    if self.state == State::Firing {
                        return None;
                    }
                    return self.enter(State::Firing, now_ms);
                }
                if self.state == State::Firing {
                    return None;
                }
                self.enter(State::Pending, now_ms)
            }
            Outcome::Pass => {
                n.passes += 1;
                n.failures = 0;
                n.errors = 0;
                n.reason = None;
                match self.state {
                    State::Firing if n.passes >= s.pass_after => {
                        self.enter(State::Resolved, now_ms)
                    }
                    State::Firing | State::Ok | State::Resolved => None,
                    State::Pending | State::Error | State::InsufficientData => {
                        self.enter(State::Ok, now_ms)
                    }
                }
            }
        }
    }

    /// Advance a flow-stale alert by one look at when its flow last delivered.
    /// `stale` is `None` while the usual interval is unknown (fewer than 3
    /// runs); `numbers` carry the last arrival, the silence and the interval.
    /// It fires at once — waiting three intervals was the confirmation — and
    /// resolves when a result arrives after the one it fired on, so a firing
    /// lasts exactly as long as the silence.
    pub fn observe_freshness(
        &mut self,
        stale: Option<bool>,
        numbers: Numbers,
        now_ms: i64,
    ) -> Option<(State, State)> {
        if self.state == State::Firing {
            let fired_on = self.fired_numbers.as_ref().and_then(|n| n.last_received_ms);
            if numbers.last_received_ms > fired_on {
                self.numbers = numbers;
                return self.enter(State::Resolved, now_ms);
            }
            return None;
        }
        let last = numbers.last_received_ms;
        self.numbers = numbers;
        match stale {
            None => self.enter(State::InsufficientData, now_ms),
            Some(true) => {
                self.started_ms = last;
                self.enter(State::Firing, now_ms)
            }
            Some(false) => match self.state {
                State::InsufficientData | State::Pending | State::Error => {
                    self.enter(State::Ok, now_ms)
                }
                State::Ok | State::Resolved | State::Firing => None,
            },
        }
    }
}

/// A recorded state change with the numbers that caused it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub key: String,
    pub rule: String,
    pub at_ms: i64,
    pub from: State,
    pub to: State,
    pub numbers: Numbers,
}
