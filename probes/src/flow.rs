//! Flow files: one user flow per TOML file, validated up front with errors that
//! name the file, the step (1-based, as a person counts), the key and what
//! would be valid. A flow that cannot work (a blank selector, a zero timeout,
//! a schedule that never fires) is refused here, not found out at 3 a.m.
//!
//! - [`doc`]: the serde types a file is read into, and the JSON Schema derived from them.
//! - [`schedule`]: the `schedule` key: interval bounds, cron fields, the next fire time.
//! - [`echo`]: how much of the input an error repeats.
//! - `step`: one `[[steps]]` table into a [`Step`].

pub mod doc;
pub(crate) mod echo;
pub mod schedule;
mod step;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::profile::Profile;
use doc::{FlowDoc, TimeoutsDoc};
use echo::{bounded, quote};

pub use doc::{json_schema, json_schema_text};

/// Bounds on `timeouts.step`: shorter cannot load a page, longer hides a hang.
pub const STEP_TIMEOUT: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));
/// Bounds on `timeouts.flow`.
pub const FLOW_TIMEOUT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// Bounds on `wait_for.delay` and `wait_for.network_idle` (and at most the step timeout).
pub const WAIT: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(600));

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {location}{reason}")]
pub struct FlowError {
    /// The file (or a name for text that did not come from a file).
    pub origin: String,
    /// `step 3: ` or empty for flow-level problems.
    pub location: String,
    pub reason: String,
}

const ACTIONS: &str =
    "goto, click, type, press, hover, select, scroll, wait_for, assert, screenshot, request";

/// A text that may name an environment variable: `${env:NAME}`. The resolved
/// value is a secret: `Debug` never shows it, errors and results name the variable.
#[derive(Clone, PartialEq)]
pub enum Text {
    Literal(String),
    Env(String),
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Text::Literal(s) => write!(f, "{s:?}"),
            Text::Env(name) => write!(f, "${{env:{name}}}"),
        }
    }
}

impl Text {
    fn parse(raw: &str) -> Text {
        match raw.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
            Some(name) => Text::Env(name.to_string()),
            None => Text::Literal(raw.to_string()),
        }
    }

    /// [`Text::parse`], refusing a reference that names no usable variable
    /// (`${env:}`, `${env:MY VAR}`, `${env:X` without its brace).
    fn checked(raw: &str, what: &str) -> Result<Text, String> {
        let text = Text::parse(raw);
        let ok = match &text {
            Text::Env(name) => {
                name.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            Text::Literal(s) => !s.starts_with("${env:"),
        };
        if !ok {
            return Err(format!(
                "`{what}`: {} is not a secret reference like \"${{env:NAME}}\" (letters, digits and _)",
                quote(raw)
            ));
        }
        Ok(text)
    }

    /// The value to type; errors name the variable, never a value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Text::Literal(s) => Ok(s.clone()),
            Text::Env(name) => {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
            }
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Text::Env(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Selector(String),
    Text(String),
    UrlContains(String),
    NetworkIdle(Duration),
    Delay(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Assertion {
    TextContains { selector: String, text: String },
    Visible(String),
    Hidden(String),
    UrlContains(String),
    Status(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, Text>,
    pub body: Option<Text>,
    pub expect_status: Option<u16>,
    pub expect_body_contains: Option<String>,
    pub expect_headers: BTreeMap<String, String>,
    pub max_latency: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Goto(String),
    Click(String),
    Type { selector: String, text: Text },
    Press(String),
    Hover(String),
    Select { selector: String, value: String },
    Scroll(String),
    WaitFor(WaitFor),
    Assert(Assertion),
    Screenshot(String),
    Request(Box<Request>),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Goto(_) => "goto",
            Action::Click(_) => "click",
            Action::Type { .. } => "type",
            Action::Press(_) => "press",
            Action::Hover(_) => "hover",
            Action::Select { .. } => "select",
            Action::Scroll(_) => "scroll",
            Action::WaitFor(_) => "wait_for",
            Action::Assert(_) => "assert",
            Action::Screenshot(_) => "screenshot",
            Action::Request(_) => "request",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub name: String,
    pub base_url: String,
    pub profile: Profile,
    pub step_timeout: Duration,
    pub flow_timeout: Duration,
    /// Runs per measurement; metrics are the median with the spread.
    pub iterations: u32,
    /// Interval (`5m`) or cron expression; the agent schedules it.
    pub schedule: Option<String>,
    pub steps: Vec<Step>,
}

impl Flow {
    /// True when no step needs a browser (an HTTP check).
    pub fn is_http_only(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s.action, Action::Request(_)))
    }

    /// Resolve a step URL against `base_url` (absolute URLs pass through).
    pub fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            return target.to_string();
        }
        let base = self.base_url.trim_end_matches('/');
        if target.is_empty() || target == "/" {
            format!("{base}/")
        } else if target.starts_with('/') {
            format!("{base}{target}")
        } else {
            format!("{base}/{target}")
        }
    }

    pub fn load(path: &Path) -> Result<Flow, FlowError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FlowError {
            origin: origin.clone(),
            location: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Flow::parse(&text, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Flow, FlowError> {
        let flow_err = |reason: String| FlowError {
            origin: origin.to_string(),
            location: String::new(),
            reason,
        };
        let raw: FlowDoc = toml::from_str(text).map_err(|e| FlowError {
            // `file:line:column`, as compilers say it, so an editor can jump there.
            origin: match e.span() {
                Some(span) => format!("{origin}:{}", line_column(text, span.start)),
                None => origin.to_string(),
            },
            location: String::new(),
            reason: bounded(e.message().trim_end()),
        })?;
        if raw.name.trim().is_empty() || raw.name.len() > 128 {
            return Err(flow_err(
                "key `name`: give the flow a name of 1 to 128 characters".into(),
            ));
        }
        let base_url = raw.base_url.unwrap_or_default();
        if !base_url.is_empty() && !is_http_url(&base_url) {
            return Err(flow_err(format!(
                "key `base_url`: {} is not an http(s) URL with a host",
                quote(&base_url)
            )));
        }
        let profile = match raw.profile {
            None => Profile::desktop(),
            Some(p) => {
                Profile::from_toml(&p).map_err(|r| flow_err(format!("key `profile`: {r}")))?
            }
        };
        let duration = |key: &str,
                        value: Option<String>,
                        default: Duration,
                        (min, max): (Duration, Duration)|
         -> Result<Duration, FlowError> {
            let Some(v) = value else { return Ok(default) };
            let d = humantime::parse_duration(&v).map_err(|_| {
                flow_err(format!(
                    "key `timeouts.{key}`: {} is not a duration like \"15s\"",
                    quote(&v)
                ))
            })?;
            if !(min..=max).contains(&d) {
                return Err(flow_err(format!(
                    "key `timeouts.{key}`: {} is outside {} … {}",
                    quote(&v),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                )));
            }
            Ok(d)
        };
        let timeouts: TimeoutsDoc = raw.timeouts.unwrap_or_default();
        let step_timeout = duration("step", timeouts.step, Duration::from_secs(15), STEP_TIMEOUT)?;
        let flow_timeout = duration(
            "flow",
            timeouts.flow,
            Duration::from_secs(120),
            FLOW_TIMEOUT,
        )?;
        if flow_timeout < step_timeout {
            return Err(flow_err(format!(
                "key `timeouts.flow`: {} is shorter than `timeouts.step` ({}); the run would end before its first step could",
                humantime::format_duration(flow_timeout),
                humantime::format_duration(step_timeout)
            )));
        }
        let iterations = raw.iterations.unwrap_or(1);
        if !(1..=20).contains(&iterations) {
            return Err(flow_err("key `iterations`: must be 1 to 20".into()));
        }
        if let Some(text) = raw.schedule.as_deref() {
            schedule::check(text).map_err(|r| flow_err(format!("key `schedule`: {r}")))?;
        }
        if raw.steps.is_empty() {
            return Err(flow_err(
                "no [[steps]]: a flow needs at least one step".into(),
            ));
        }
        let mut steps = Vec::new();
        for (i, table) in raw.steps.iter().enumerate() {
            let step_err = |reason: String| FlowError {
                origin: origin.to_string(),
                location: format!("step {}: ", i + 1),
                reason,
            };
            let step = step::parse(table).map_err(step_err)?;
            let needs_base = match &step.action {
                Action::Goto(u) => !is_http_url(u),
                Action::Request(r) => !is_http_url(&r.url),
                _ => false,
            };
            if needs_base && base_url.is_empty() {
                return Err(step_err(
                    "relative URL but the flow has no `base_url`".into(),
                ));
            }
            if let Action::WaitFor(WaitFor::Delay(d) | WaitFor::NetworkIdle(d)) = &step.action
                && *d > step_timeout
            {
                return Err(step_err(format!(
                    "`wait_for`: {} is longer than the step timeout ({}); the step would always time out",
                    humantime::format_duration(*d),
                    humantime::format_duration(step_timeout)
                )));
            }
            if let Action::Request(r) = &step.action
                && let Some(max) = r.max_latency
                && max > step_timeout
            {
                return Err(step_err(format!(
                    "`request.max_latency`: {} is longer than the step timeout ({}), so it could never fail",
                    humantime::format_duration(max),
                    humantime::format_duration(step_timeout)
                )));
            }
            steps.push(step);
        }
        Ok(Flow {
            name: raw.name,
            base_url,
            profile,
            step_timeout,
            flow_timeout,
            iterations,
            schedule: raw.schedule,
            steps,
        })
    }
}

/// `http://` or `https://` followed by a host (not blank, no white space).
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        None => false,
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.contains(char::is_whitespace)
        }
    }
}

/// 1-based `line:column` of a byte offset, columns counted in characters.
fn line_column(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{column}")
}

#[cfg(test)]
mod schema_tests;

#[cfg(test)]
mod tests;
