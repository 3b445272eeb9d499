//! A step's result as the run format carries it ([`Step`]), built in one place,
//! and [`StepError`]: why a step did not pass, typed by whose trouble it is.
//! The site's trouble (a missing element, an assertion, a page that did not
//! load) makes the step and the run `fail`; ours (the browser stopped
//! answering, the connection to it broke, a secret the agent was not given)
//! makes them `error`, so an alert about a site is never about our machine.

use std::time::Duration;

use chromiumoxide::error::CdpError;
use vitalsign_core::wire::run::{Outcome, Step, Vitals};

use crate::runner::InfraError;

/// A step's result before anything is known about it: no numbers, no error.
/// Every step result of a run starts here (browser steps, HTTP checks,
/// skipped steps), so a field added to [`Step`] is filled in one place.
pub fn new(name: &str, kind: &str, outcome: Outcome) -> Step {
    Step {
        name: name.to_string(),
        kind: kind.to_string(),
        outcome,
        duration_ms: 0.0,
        vitals: Vitals::default(),
        spread: None,
        status: None,
        url: None,
        requests: 0,
        transfer_bytes: 0,
        failed_requests: 0,
        console_errors: 0,
        error: None,
        artifacts: Vec::new(),
    }
}

/// Why a step did not pass. The message is what the run reports; the variant
/// decides the outcome ([`StepError::outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    // --- the site's trouble: outcome `fail` ---
    /// A selector matched nothing on the page.
    #[error("no element matches {0}")]
    NoElement(String),
    /// Navigation did not happen: Chromium's `net::ERR_…` for the URL, or the
    /// load did not finish.
    #[error("could not open {url}: {reason}")]
    Navigation { url: String, reason: String },
    /// The document loaded with an error status.
    #[error("{url} answered {status}")]
    ErrorStatus { url: String, status: u16 },
    /// The page refused an action: the element could not be clicked, typed
    /// into, hovered, scrolled to, or the script that checks it threw.
    #[error("{what}: {reason}")]
    Page { what: String, reason: String },
    /// An assertion about the page (or a `select` value) did not hold; the
    /// message says what was expected and what was found.
    #[error("{0}")]
    Assertion(String),
    /// A `request` step's check failed: no answer, or not the expected one.
    #[error("{0}")]
    Request(String),
    /// The step ran out of its time (`timeouts.step`).
    #[error("step did not finish within {0:?}")]
    Timeout(Duration),

    // --- ours: outcome `error` ---
    /// The flow names a secret (`${env:NAME}`) the agent was not given.
    #[error("{0}")]
    Secret(String),
    /// The connection to the browser broke while the step talked to it.
    #[error("{what}: {reason}")]
    Browser { what: String, reason: String },
    /// The browser itself failed (stopped answering, crashed).
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl StepError {
    /// `fail` when the site is to blame, `error` when we are.
    pub fn outcome(&self) -> Outcome {
        match self {
            StepError::NoElement(_)
            | StepError::Navigation { .. }
            | StepError::ErrorStatus { .. }
            | StepError::Page { .. }
            | StepError::Assertion(_)
            | StepError::Request(_)
            | StepError::Timeout(_) => Outcome::Fail,
            StepError::Secret(_) | StepError::Browser { .. } | StepError::Infra(_) => {
                Outcome::Error
            }
        }
    }

    /// A CDP call made for a step failed: the browser's refusal (a protocol
    /// error, a script exception, an element that is not there or cannot be
    /// scrolled to) is about the page; a broken connection to the browser,
    /// or an answer we cannot read, is ours.
    pub fn from_cdp(what: impl Into<String>, error: CdpError) -> StepError {
        let what = what.into();
        let reason = error.to_string();
        if lost_the_browser(&error) {
            StepError::Browser { what, reason }
        } else {
            StepError::Page { what, reason }
        }
    }
}

/// True for the CDP errors that say nothing about the page: the socket, the
/// channel to chromiumoxide's handler, or a message we could not read.
pub(crate) fn lost_the_browser(error: &CdpError) -> bool {
    match error {
        CdpError::Ws(_)
        | CdpError::Io(_)
        | CdpError::Serde(_)
        | CdpError::NoResponse
        | CdpError::UnexpectedWsMessage(_)
        | CdpError::ChannelSendError(_)
        | CdpError::LaunchExit(..)
        | CdpError::LaunchTimeout(_)
        | CdpError::LaunchIo(..)
        | CdpError::DecodeError(_)
        | CdpError::InvalidMessage(..) => true,
        CdpError::Chrome(_)
        | CdpError::Timeout
        | CdpError::FrameNotFound(_)
        | CdpError::ChromeMessage(_)
        | CdpError::ScrollingFailed(_)
        | CdpError::NotFound
        | CdpError::JavascriptException(_)
        | CdpError::Url(_) => false,
    }
}

/// Mark a step as not passed: its outcome from whose trouble it was, its error
/// the message.
pub fn record_failure(step: &mut Step, error: &StepError) {
    step.outcome = error.outcome();
    step.error = Some(error.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chromiumoxide::error::ChannelError;
    use serde_json::json;

    #[test]
    fn a_new_step_serialises_as_the_run_format_s_bare_step() {
        let step = new("open home", "goto", Outcome::Pass);
        assert_eq!(
            serde_json::to_value(&step).unwrap(),
            json!({
                "name": "open home",
                "kind": "goto",
                "outcome": "pass",
                "duration_ms": 0.0,
                "requests": 0,
                "transfer_bytes": 0,
                "failed_requests": 0,
                "console_errors": 0
            })
        );
    }

    #[test]
    fn the_site_s_trouble_fails_and_ours_is_an_error() {
        let site = [
            StepError::NoElement("#cart".into()),
            StepError::Navigation {
                url: "http://127.0.0.1:9/".into(),
                reason: "net::ERR_CONNECTION_REFUSED".into(),
            },
            StepError::ErrorStatus {
                url: "http://127.0.0.1:9/x".into(),
                status: 500,
            },
            StepError::Assertion("#title is hidden, expected visible".into()),
            StepError::Request("status 404, expected 200".into()),
            StepError::Timeout(Duration::from_secs(2)),
            StepError::from_cdp("could not click #buy", CdpError::NotFound),
            StepError::from_cdp(
                "could not click #buy",
                CdpError::Chrome(chromiumoxide::types::Error {
                    code: -32000,
                    message: "Node is detached from document".into(),
                }),
            ),
        ];
        for error in &site {
            assert_eq!(error.outcome(), Outcome::Fail, "{error:?}");
        }
        let ours = [
            StepError::Secret("environment variable SHOP_PASSWORD is not set".into()),
            StepError::from_cdp("could not click #buy", CdpError::NoResponse),
            StepError::from_cdp(
                "could not click #buy",
                CdpError::ChannelSendError(ChannelError::Canceled(
                    futures::channel::oneshot::Canceled,
                )),
            ),
            StepError::Infra(InfraError::Crashed),
        ];
        for error in &ours {
            assert_eq!(error.outcome(), Outcome::Error, "{error:?}");
        }
    }

    /// The messages are the ones runs carried before the errors were typed:
    /// alerts and dashboards show them.
    #[test]
    fn messages_say_what_happened_as_before() {
        let cases = [
            (
                StepError::NoElement("#cart".into()),
                "no element matches #cart",
            ),
            (
                StepError::Navigation {
                    url: "http://127.0.0.1:9/".into(),
                    reason: "net::ERR_CONNECTION_REFUSED".into(),
                },
                "could not open http://127.0.0.1:9/: net::ERR_CONNECTION_REFUSED",
            ),
            (
                StepError::ErrorStatus {
                    url: "http://127.0.0.1:9/x".into(),
                    status: 500,
                },
                "http://127.0.0.1:9/x answered 500",
            ),
            (
                StepError::Timeout(Duration::from_secs(2)),
                "step did not finish within 2s",
            ),
            (
                StepError::from_cdp("could not click #buy", CdpError::NoResponse),
                "could not click #buy: Received no response from the chromium instance.",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn a_failure_sets_outcome_and_error_and_nothing_else() {
        let mut step = new("cart shows item", "assert", Outcome::Pass);
        record_failure(
            &mut step,
            &StepError::Assertion("text \"1 item\" not found in #cart".into()),
        );
        let mut expected = new("cart shows item", "assert", Outcome::Fail);
        expected.error = Some("text \"1 item\" not found in #cart".into());
        assert_eq!(step, expected);
        record_failure(
            &mut step,
            &StepError::Secret("environment variable X is not set".into()),
        );
        assert_eq!(step.outcome, Outcome::Error);
    }
}

/// The run documents the agent uploads keep their shape: every valid example
/// in `tests/fixtures/run` reads into [`vitalsign_core::wire::ProbeRun`] and
/// writes back as the same JSON, key for key (numbers compared as numbers,
/// `40` and `40.0` alike), so no field is renamed, dropped or added. The one
/// difference allowed: fields the format always writes (a step's four
/// counters, a run's `iterations` and `attempt`) which the hand-written
/// fixtures leave out at their default.
#[cfg(test)]
mod wire_tests {
    use serde_json::Value;
    use vitalsign_core::wire::ProbeRun;

    /// Numbers as f64, so `40` in a fixture equals the `40.0` an f64 field writes.
    fn numbers_as_f64(value: Value) -> Value {
        match value {
            Value::Number(n) => serde_json::json!(n.as_f64().expect("finite")),
            Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, numbers_as_f64(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// The counters [`vitalsign_core::wire::run::Step`] writes even when 0.
    const ALWAYS_WRITTEN: [&str; 4] = [
        "requests",
        "transfer_bytes",
        "failed_requests",
        "console_errors",
    ];

    /// `written` with the always-written fields it leaves out at their defaults.
    fn with_defaults(mut written: Value) -> Value {
        if let Some(run) = written.as_object_mut() {
            run.entry("iterations").or_insert(serde_json::json!(1));
            run.entry("attempt").or_insert(serde_json::json!(1));
        }
        if let Some(steps) = written.get_mut("steps").and_then(Value::as_array_mut) {
            for step in steps.iter_mut().filter_map(Value::as_object_mut) {
                for key in ALWAYS_WRITTEN {
                    step.entry(key).or_insert(serde_json::json!(0));
                }
            }
        }
        written
    }

    #[test]
    fn run_fixtures_serialise_exactly_as_written() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/run/valid");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let written: Value = serde_json::from_str(&text).unwrap();
            let run: ProbeRun =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let again = serde_json::to_value(&run).unwrap();
            assert_eq!(
                numbers_as_f64(again),
                numbers_as_f64(with_defaults(written)),
                "{} does not survive a round trip",
                path.display()
            );
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} fixtures in {}", dir.display());
    }
}
