//! Flow files: one user flow per TOML file, validated up front with errors that
//! name the file, the step (1-based, as a person counts), the key and what
//! would be valid. A flow that cannot work (a blank selector, a zero timeout,
//! a schedule that never fires) is refused here, not found out at 3 a.m.
//!
//! - [`doc`]: the serde types a file is read into, and the JSON Schema derived from them.
//! - [`schedule`]: the `schedule` key: interval bounds, cron fields, the next fire time.
//! - [`echo`]: how much of the input an error repeats.

pub mod doc;
pub(crate) mod echo;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::profile::Profile;
use doc::{FlowDoc, RequestDoc, STEP_KINDS, TimeoutsDoc};
use echo::{bounded, key, quote};

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
            let step = parse_step(table).map_err(step_err)?;
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

fn string(table: &toml::Table, k: &str) -> Result<Option<String>, String> {
    match table.get(k) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "{} must be a string, not {}",
            key(k),
            other.type_str()
        )),
    }
}

fn required(table: &toml::Table, key: &str, action: &str) -> Result<String, String> {
    string(table, key)?.ok_or_else(|| format!("`{action}` needs `{key}`"))
}

/// A duration within [`WAIT`] or similar bounds; `key` names it in errors.
fn dur(raw: &str, key: &str, (min, max): (Duration, Duration)) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|_| {
        format!(
            "`{key}`: {} is not a duration like \"500ms\" or \"2s\"",
            quote(raw)
        )
    })?;
    if !(min..=max).contains(&d) {
        return Err(format!(
            "`{key}`: {} is outside {} … {}",
            quote(raw),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// Read a checked value into its document type; the hand checks before this
/// give the friendlier messages, this keeps the parser and the schema one.
fn typed<T: DeserializeOwned>(value: &toml::Value, what: &str) -> Result<T, String> {
    value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| format!("`{what}`: {}", bounded(e.message())))
}

fn parse_step(table: &toml::Table) -> Result<Step, String> {
    let actions: Vec<&str> = STEP_KINDS
        .iter()
        .map(|(kind, _)| *kind)
        .filter(|a| table.contains_key(*a))
        .collect();
    let action = match actions.as_slice() {
        [one] => *one,
        [] => {
            return Err(match table.keys().find(|k| k.as_str() != "name") {
                None => format!("no action; expected one of {ACTIONS}"),
                Some(unknown) => format!(
                    "unknown action {}; expected one of {ACTIONS}",
                    quote(unknown)
                ),
            });
        }
        many => {
            return Err(format!(
                "has several actions ({}); one step does one thing",
                many.join(", ")
            ));
        }
    };
    let allowed: &[&str] = STEP_KINDS
        .iter()
        .find(|(kind, _)| *kind == action)
        .map(|(_, keys)| *keys)
        .unwrap_or(&[]);
    if let Some(extra) = table
        .keys()
        .find(|k| k.as_str() != "name" && k.as_str() != action && !allowed.contains(&k.as_str()))
    {
        return Err(format!("unknown key {} for a `{action}` step", key(extra)));
    }
    let selector = |what: &str| -> Result<String, String> {
        let s = required(table, action, action)?;
        if s.trim().is_empty() {
            return Err(format!("`{action}` needs a {what}, not a blank string"));
        }
        Ok(s)
    };
    let value = toml::Value::Table(table.clone());
    let parsed = match action {
        "goto" => {
            selector("URL (\"/\" for `base_url` itself)")?;
            Action::Goto(typed::<doc::GotoStep>(&value, "goto")?.goto)
        }
        "click" => {
            selector("CSS selector")?;
            Action::Click(typed::<doc::ClickStep>(&value, "click")?.click)
        }
        "type" => {
            selector("CSS selector")?;
            required(table, "text", "type")?;
            let step: doc::TypeStep = typed(&value, "type")?;
            Action::Type {
                selector: step.type_,
                text: Text::checked(&step.text, "text")?,
            }
        }
        "press" => {
            let key = selector("key name like \"Enter\"")?;
            if crate::input::key_definition(&key).is_none() {
                return Err(format!(
                    "`press`: unknown key {}; use Enter, Tab, Escape, Backspace, ArrowUp/Down/Left/Right, Space or a single character",
                    quote(&key)
                ));
            }
            Action::Press(typed::<doc::PressStep>(&value, "press")?.press)
        }
        "hover" => {
            selector("CSS selector")?;
            Action::Hover(typed::<doc::HoverStep>(&value, "hover")?.hover)
        }
        "select" => {
            selector("CSS selector")?;
            required(table, "value", "select")?;
            let step: doc::SelectStep = typed(&value, "select")?;
            Action::Select {
                selector: step.select,
                value: step.value,
            }
        }
        "scroll" => {
            selector("CSS selector")?;
            Action::Scroll(typed::<doc::ScrollStep>(&value, "scroll")?.scroll)
        }
        "screenshot" => {
            let name = selector("name")?;
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "`screenshot`: {} may hold letters, digits, '-' and '_' only",
                    quote(&name)
                ));
            }
            Action::Screenshot(typed::<doc::ScreenshotStep>(&value, "screenshot")?.screenshot)
        }
        "wait_for" => {
            let wait = parse_wait(&table["wait_for"])?;
            typed::<doc::WaitForStep>(&value, "wait_for")?;
            Action::WaitFor(wait)
        }
        "assert" => {
            let assertion = parse_assert(&table["assert"])?;
            typed::<doc::AssertStep>(&value, "assert")?;
            Action::Assert(assertion)
        }
        "request" => {
            let step: doc::RequestStep = typed(&value, "request")?;
            Action::Request(Box::new(parse_request(step.request)?))
        }
        _ => unreachable!("STEP_KINDS lists every action"),
    };
    let name = string(table, "name")?.unwrap_or_else(|| describe(&parsed));
    Ok(Step {
        name,
        action: parsed,
    })
}

/// A default step name that says what the step does (secrets never included).
fn describe(action: &Action) -> String {
    match action {
        Action::Goto(u) => format!("goto {u}"),
        Action::Click(s) => format!("click {s}"),
        Action::Type { selector, .. } => format!("type into {selector}"),
        Action::Press(k) => format!("press {k}"),
        Action::Hover(s) => format!("hover {s}"),
        Action::Select { selector, .. } => format!("select in {selector}"),
        Action::Scroll(s) => format!("scroll to {s}"),
        Action::WaitFor(w) => match w {
            WaitFor::Selector(s) => format!("wait for {s}"),
            WaitFor::Text(t) => format!("wait for text {t:?}"),
            WaitFor::UrlContains(u) => format!("wait for URL containing {u:?}"),
            WaitFor::NetworkIdle(d) => {
                format!("wait for network idle {}", humantime::format_duration(*d))
            }
            WaitFor::Delay(d) => format!("wait {}", humantime::format_duration(*d)),
        },
        Action::Assert(a) => match a {
            Assertion::TextContains { selector, text } => {
                format!("assert {selector} contains {text:?}")
            }
            Assertion::Visible(s) => format!("assert {s} visible"),
            Assertion::Hidden(s) => format!("assert {s} hidden"),
            Assertion::UrlContains(u) => format!("assert URL contains {u:?}"),
            Assertion::Status(code) => format!("assert status {code}"),
        },
        Action::Screenshot(n) => format!("screenshot {n}"),
        Action::Request(r) => format!("{} {}", r.method, r.url),
    }
}

fn one_key(value: &toml::Value, what: &str, keys: &str) -> Result<toml::Table, String> {
    value.as_table().cloned().ok_or_else(|| {
        format!(
            "`{what}` must be a table like {{ {} = ... }}",
            keys.split(", ").next().unwrap_or("")
        )
    })
}

/// A string that must hold more than white space; `what` names the key.
fn not_blank(v: &toml::Value, what: &str, kind: &str) -> Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("`{what}` must be a {kind} string"))?;
    if s.trim().is_empty() {
        return Err(format!("`{what}` needs a {kind}, not a blank string"));
    }
    Ok(s.to_string())
}

fn parse_wait(value: &toml::Value) -> Result<WaitFor, String> {
    let keys = doc::WAIT_KEYS.join(", ");
    let t = one_key(value, "wait_for", &keys)?;
    if t.len() != 1 {
        return Err(format!("`wait_for` takes exactly one of {keys}"));
    }
    let (k, v) = t.iter().next().unwrap();
    let what = format!("wait_for.{k}");
    let wait = match k.as_str() {
        "selector" => WaitFor::Selector(not_blank(v, &what, "CSS selector")?),
        "text" => WaitFor::Text(not_blank(v, &what, "text")?),
        "url_contains" => WaitFor::UrlContains(not_blank(v, &what, "URL part")?),
        "network_idle" => {
            WaitFor::NetworkIdle(dur(&not_blank(v, &what, "duration")?, &what, WAIT)?)
        }
        "delay" => WaitFor::Delay(dur(&not_blank(v, &what, "duration")?, &what, WAIT)?),
        other => {
            return Err(format!(
                "unknown {}; expected one of {keys}",
                key(&format!("wait_for.{other}"))
            ));
        }
    };
    typed::<doc::WaitDoc>(value, "wait_for")?;
    Ok(wait)
}

fn parse_assert(value: &toml::Value) -> Result<Assertion, String> {
    const KEYS: &str = "text_contains (+ selector), visible, hidden, url_contains, status";
    let t = one_key(value, "assert", KEYS)?;
    let assertion = if let Some(text) = t.get("text_contains") {
        if t.keys().any(|k| k != "text_contains" && k != "selector") {
            return Err("`assert` with `text_contains` takes only `selector` besides".into());
        }
        let text = not_blank(text, "assert.text_contains", "text")?;
        let selector = match t.get("selector") {
            None => "body".to_string(),
            Some(s) => not_blank(s, "assert.selector", "CSS selector")?,
        };
        Assertion::TextContains { selector, text }
    } else {
        if t.len() != 1 {
            return Err(format!("`assert` takes exactly one of {KEYS}"));
        }
        let (k, v) = t.iter().next().unwrap();
        match k.as_str() {
            "visible" => Assertion::Visible(not_blank(v, "assert.visible", "selector")?),
            "hidden" => Assertion::Hidden(not_blank(v, "assert.hidden", "selector")?),
            "url_contains" => {
                Assertion::UrlContains(not_blank(v, "assert.url_contains", "URL part")?)
            }
            "status" => {
                let code = v
                    .as_integer()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or("`assert.status` must be an HTTP status from 100 to 599")?;
                Assertion::Status(code as u16)
            }
            other => {
                return Err(format!(
                    "unknown {}; expected one of {KEYS}",
                    key(&format!("assert.{other}"))
                ));
            }
        }
    };
    typed::<doc::AssertDoc>(value, "assert")?;
    Ok(assertion)
}

fn parse_request(raw: RequestDoc) -> Result<Request, String> {
    let method = raw
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    ) {
        return Err(format!(
            "`request.method`: {} is not an HTTP method",
            quote(&method)
        ));
    }
    if raw.url.trim().is_empty() {
        return Err(
            "`request.url` needs a URL (\"/\" for `base_url` itself), not a blank string".into(),
        );
    }
    if let Some(code) = raw.expect_status
        && !(100..=599).contains(&code)
    {
        return Err(format!(
            "`request.expect_status` must be an HTTP status from 100 to 599, not {code}"
        ));
    }
    let mut headers = BTreeMap::new();
    for (name, value) in raw.headers {
        let text = Text::checked(&value, &format!("request.headers.{name}"))?;
        headers.insert(name, text);
    }
    Ok(Request {
        method,
        url: raw.url,
        headers,
        body: raw
            .body
            .as_deref()
            .map(|b| Text::checked(b, "request.body"))
            .transpose()?,
        expect_status: raw.expect_status,
        expect_body_contains: raw.expect_body_contains,
        expect_headers: raw.expect_headers,
        max_latency: raw
            .max_latency
            .as_deref()
            .map(|v| dur(v, "request.max_latency", WAIT))
            .transpose()?,
    })
}

#[cfg(test)]
mod schema_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"
name = "checkout"
base_url = "http://127.0.0.1:9/shop"
profile = "mobile"
schedule = "5m"
iterations = 3
[timeouts]
step = "10s"

[[steps]]
name = "open home"
goto = "/"
[[steps]]
type = "#search"
text = "${env:SEARCH_SECRET}"
[[steps]]
press = "Enter"
[[steps]]
wait_for = { selector = "#results" }
[[steps]]
assert = { text_contains = "1 item", selector = "#cart" }
[[steps]]
request = { url = "/healthz", expect_status = 200, max_latency = "500ms" }
"##;

    #[test]
    fn parses_a_full_flow() {
        let flow = Flow::parse(GOOD, "checkout.toml").unwrap();
        assert_eq!(flow.name, "checkout");
        assert_eq!(flow.iterations, 3);
        assert_eq!(flow.step_timeout, Duration::from_secs(10));
        assert_eq!(flow.steps.len(), 6);
        assert_eq!(flow.steps[1].name, "type into #search");
        assert_eq!(flow.url("/"), "http://127.0.0.1:9/shop/");
        assert_eq!(flow.url("/cart"), "http://127.0.0.1:9/shop/cart");
        assert_eq!(flow.profile.name, "mobile");
        assert!(!flow.is_http_only());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        // SAFETY-free: only this test reads the variable.
        let flow = Flow::parse(GOOD, "checkout.toml").unwrap();
        let printed = format!("{flow:?}");
        assert!(printed.contains("${env:SEARCH_SECRET}"), "{printed}");
        let Action::Type { text, .. } = &flow.steps[1].action else {
            panic!()
        };
        assert!(text.is_secret());
        assert_eq!(
            text.resolve().unwrap_err(),
            "environment variable SEARCH_SECRET is not set"
        );
    }

    #[test]
    fn errors_name_file_step_and_what_is_valid() {
        let cases = [
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\n[[steps]]\n[[steps]]\nclik = \"#b\"\n",
                "f.toml: step 2: no action",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclik = \"#b\"\n",
                "f.toml: step 1: unknown action \"clik\"; expected one of goto, click",
            ),
            (
                "name = \"x\"\n[[steps]]\ngoto = \"/\"\n",
                "f.toml: step 1: relative URL but the flow has no `base_url`",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\nclick = \"#a\"\n",
                "step 1: has several actions",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nwait_for = { delay = \"soon\" }\n",
                "step 1: `wait_for.delay`: \"soon\" is not a duration",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nassert = { status = 99 }\n",
                "step 1: `assert.status` must be an HTTP status",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\npress = \"Hyper\"\n",
                "step 1: `press`: unknown key \"Hyper\"",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\nprofile = \"fridge\"\n[[steps]]\ngoto = \"/\"\n",
                "key `profile`: \"fridge\"",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = { url = \"/\", method = \"FETCH\" }\n",
                "`request.method`",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\ncolour = 1\n[[steps]]\ngoto = \"/\"\n",
                "unknown field `colour`",
            ),
            (
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclick = \"#a\"\ntext = \"b\"\n",
                "step 1: unknown key `text` for a `click` step",
            ),
        ];
        for (text, expected) in cases {
            let err = Flow::parse(text, "f.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    /// Flows that parse but cannot work (issue 18, finding 6), each with what
    /// its error must say: the file, the step, the key.
    pub const CANNOT_WORK: &[(&str, &str, &str)] = &[
        (
            "blank-click",
            "[[steps]]\nclick = \"  \"\n",
            "f.toml: step 1: `click` needs a CSS selector",
        ),
        (
            "empty-type",
            "[[steps]]\ntype = \"\"\ntext = \"a\"\n",
            "f.toml: step 1: `type` needs a CSS selector",
        ),
        (
            "blank-hover",
            "[[steps]]\nhover = \"\\t\"\n",
            "f.toml: step 1: `hover` needs",
        ),
        (
            "blank-select",
            "[[steps]]\nselect = \"\"\nvalue = \"a\"\n",
            "f.toml: step 1: `select` needs",
        ),
        (
            "blank-scroll",
            "[[steps]]\nscroll = \" \"\n",
            "f.toml: step 1: `scroll` needs",
        ),
        (
            "empty-goto",
            "[[steps]]\ngoto = \"\"\n",
            "f.toml: step 1: `goto` needs a URL",
        ),
        (
            "blank-wait-selector",
            "[[steps]]\ngoto = \"/\"\n[[steps]]\nwait_for = { selector = \"\" }\n",
            "f.toml: step 2: `wait_for.selector` needs",
        ),
        (
            "blank-wait-text",
            "[[steps]]\nwait_for = { text = \" \" }\n",
            "f.toml: step 1: `wait_for.text` needs",
        ),
        (
            "blank-assert-visible",
            "[[steps]]\nassert = { visible = \"\" }\n",
            "f.toml: step 1: `assert.visible` needs",
        ),
        (
            "blank-assert-hidden",
            "[[steps]]\nassert = { hidden = \"\" }\n",
            "f.toml: step 1: `assert.hidden` needs",
        ),
        (
            "blank-text-contains",
            "[[steps]]\nassert = { text_contains = \"\" }\n",
            "f.toml: step 1: `assert.text_contains` needs",
        ),
        (
            "blank-assert-selector",
            "[[steps]]\nassert = { text_contains = \"a\", selector = \"\" }\n",
            "f.toml: step 1: `assert.selector` needs",
        ),
        (
            "empty-request-url",
            "[[steps]]\nrequest = { url = \"\" }\n",
            "f.toml: step 1: `request.url` needs a URL",
        ),
        (
            "zero-step-timeout",
            "[timeouts]\nstep = \"0s\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `timeouts.step`: \"0s\" is outside",
        ),
        (
            "zero-flow-timeout",
            "[timeouts]\nflow = \"0ms\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `timeouts.flow`: \"0ms\" is outside",
        ),
        (
            "endless-step-timeout",
            "[timeouts]\nstep = \"584542046090years\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `timeouts.step`",
        ),
        (
            "flow-shorter-than-step",
            "[timeouts]\nstep = \"30s\"\nflow = \"10s\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `timeouts.flow`: 10s is shorter",
        ),
        (
            "zero-delay",
            "[[steps]]\nwait_for = { delay = \"0s\" }\n",
            "f.toml: step 1: `wait_for.delay`: \"0s\" is outside",
        ),
        (
            "zero-network-idle",
            "[[steps]]\nwait_for = { network_idle = \"0s\" }\n",
            "f.toml: step 1: `wait_for.network_idle`",
        ),
        (
            "delay-past-step-timeout",
            "[[steps]]\nwait_for = { delay = \"20s\" }\n",
            "f.toml: step 1: `wait_for`: 20s is longer than the step timeout",
        ),
        (
            "zero-max-latency",
            "[[steps]]\nrequest = { url = \"/\", max_latency = \"0s\" }\n",
            "f.toml: step 1: `request.max_latency`",
        ),
        (
            "status-out-of-range",
            "[[steps]]\nrequest = { url = \"/\", expect_status = 600 }\n",
            "f.toml: step 1: `request.expect_status`",
        ),
        (
            "bad-secret-ref",
            "[[steps]]\ntype = \"#q\"\ntext = \"${env:}\"\n",
            "f.toml: step 1: `text`: \"${env:}\" is not a secret reference",
        ),
        (
            "bad-header-secret",
            "[[steps]]\nrequest = { url = \"/\", headers = { Authorization = \"${env:A B}\" } }\n",
            "f.toml: step 1: `request.headers.Authorization`",
        ),
        (
            "schedule-ages",
            "schedule = \"584542046090years\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `schedule`: \"584542046090years\"",
        ),
        (
            "schedule-u64-seconds",
            "schedule = \"18446744073709551615s\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `schedule`: \"18446744073709551615s\" is outside 1s … 31days",
        ),
        (
            "schedule-too-often",
            "schedule = \"10ms\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `schedule`: \"10ms\" is outside",
        ),
        (
            "schedule-blank",
            "schedule = \" \"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `schedule`: is empty",
        ),
        (
            "cron-never",
            "schedule = \"0 0 31 2 *\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `schedule`: \"0 0 31 2 *\" never fires",
        ),
        (
            "cron-bad-field",
            "schedule = \"0 24 * * *\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `schedule`: \"0 24 * * *\": the hour field \"24\" is wrong",
        ),
        (
            "profile-nan",
            "profile = { latency_ms = nan }\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `profile`: `latency_ms` must be a number from 0 to 10000, not NaN",
        ),
        (
            "profile-inf",
            "profile = { download_kbps = inf }\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `profile`: `download_kbps`",
        ),
        (
            "profile-cpu-nan",
            "profile = { cpu_slowdown = nan }\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `profile`: `cpu_slowdown`",
        ),
        (
            "base-url-no-host",
            "base_url = \"https:// /\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: key `base_url`",
        ),
    ];

    #[test]
    fn flows_that_cannot_work_are_refused_naming_file_step_and_key() {
        for (label, body, expected) in CANNOT_WORK {
            let text = format!("name = \"x\"\nbase_url = \"http://a\"\n{body}");
            let text = text.replacen("base_url = \"http://a\"\nbase_url", "base_url", 1);
            let err = match Flow::parse(&text, "f.toml") {
                Ok(_) => panic!("{label}: accepted\n{text}"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(expected),
                "{label}: expected {expected:?} in {err:?}"
            );
        }
    }

    #[test]
    fn toml_syntax_errors_say_file_line_and_column() {
        let err = Flow::parse("name = \"x\"\n[[steps]]\ngoto = /\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.toml:3:8: "), "{err}");
        let err = Flow::parse("name = \"x\"\niterations = \"many\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.toml:2:14: "), "{err}");
        // Deep nesting: still a position, never a bare "recursion limit".
        let deep = format!(
            "name = \"x\"\nv = {}{}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let err = Flow::parse(&deep, "f.toml").unwrap_err().to_string();
        assert!(err.starts_with("f.toml:2:"), "{err}");
    }

    #[test]
    fn errors_repeat_at_most_a_short_excerpt_of_the_input() {
        let huge = "\u{1b}[2m".repeat(200_000);
        let cases = [
            format!("name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\n\"{huge}\" = 1\n"),
            format!(
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclick = \"a\"\n\"{huge}\" = 1\n"
            ),
            format!("name = \"x\"\nbase_url = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
            format!("name = \"x\"\niterations = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
            format!("name = \"x\"\nschedule = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
            format!("name = \"x\"\nschedule = \"{huge} * * * *\"\n[[steps]]\ngoto = \"/\"\n"),
            format!("name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\npress = \"{huge}\"\n"),
            format!(
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = {{ url = \"/\", method = \"{huge}\" }}\n"
            ),
            format!(
                "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = {{ url = \"/\", \"{huge}\" = 1 }}\n"
            ),
            format!("name = \"x\"\nprofile = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
            format!("name = \"x\"\n{huge}\n"),
        ];
        for text in cases {
            let err = Flow::parse(&text, "f.toml").unwrap_err().to_string();
            assert!(err.len() < 600, "{} bytes: {}", err.len(), &err[..600]);
            assert!(!err.chars().any(char::is_control), "{err:?}");
        }
    }
}
