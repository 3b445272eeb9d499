//! Flow files: one user flow per TOML file, validated up front with errors that
//! name the file, the step (1-based, as a person counts) and what would be valid.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::profile::Profile;

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
        let raw: RawFlow = toml::from_str(text)
            .map_err(|e| flow_err(e.message().to_string() + &span_hint(text, e.span())))?;
        if raw.name.trim().is_empty() || raw.name.len() > 128 {
            return Err(flow_err(
                "key `name`: give the flow a name of 1 to 128 characters".into(),
            ));
        }
        let base_url = raw.base_url.unwrap_or_default();
        let is_http = base_url.starts_with("http://") || base_url.starts_with("https://");
        if !base_url.is_empty() && !is_http {
            return Err(flow_err(format!(
                "key `base_url`: {base_url:?} is not an http(s) URL"
            )));
        }
        let profile = match raw.profile {
            None => Profile::desktop(),
            Some(p) => {
                Profile::from_toml(&p).map_err(|r| flow_err(format!("key `profile`: {r}")))?
            }
        };
        let duration =
            |key: &str, value: Option<String>, default: Duration| -> Result<Duration, FlowError> {
                match value {
                    None => Ok(default),
                    Some(v) => humantime::parse_duration(&v).map_err(|_| {
                        flow_err(format!(
                            "key `timeouts.{key}`: {v:?} is not a duration like \"15s\""
                        ))
                    }),
                }
            };
        let timeouts = raw.timeouts.unwrap_or_default();
        let step_timeout = duration("step", timeouts.step, Duration::from_secs(15))?;
        let flow_timeout = duration("flow", timeouts.flow, Duration::from_secs(120))?;
        let iterations = raw.iterations.unwrap_or(1);
        if !(1..=20).contains(&iterations) {
            return Err(flow_err("key `iterations`: must be 1 to 20".into()));
        }
        if raw.steps.is_empty() {
            return Err(flow_err(
                "no [[steps]]: a flow needs at least one step".into(),
            ));
        }
        let mut steps = Vec::new();
        for (i, table) in raw.steps.iter().enumerate() {
            let step = parse_step(table).map_err(|reason| FlowError {
                origin: origin.to_string(),
                location: format!("step {}: ", i + 1),
                reason,
            })?;
            let needs_base = match &step.action {
                Action::Goto(u) => !u.starts_with("http"),
                Action::Request(r) => !r.url.starts_with("http"),
                _ => false,
            };
            if needs_base && base_url.is_empty() {
                return Err(FlowError {
                    origin: origin.to_string(),
                    location: format!("step {}: ", i + 1),
                    reason: "relative URL but the flow has no `base_url`".into(),
                });
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

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!(
            " (line {})",
            text[..span.start.min(text.len())].lines().count().max(1)
        ),
        None => String::new(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    base_url: Option<String>,
    profile: Option<toml::Value>,
    timeouts: Option<RawTimeouts>,
    iterations: Option<u32>,
    schedule: Option<String>,
    #[serde(default)]
    steps: Vec<toml::Table>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    step: Option<String>,
    flow: Option<String>,
}

fn string(table: &toml::Table, key: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "`{key}` must be a string, not {}",
            other.type_str()
        )),
    }
}

fn required(table: &toml::Table, key: &str, action: &str) -> Result<String, String> {
    string(table, key)?.ok_or_else(|| format!("`{action}` needs `{key}`"))
}

fn dur(raw: &str, key: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|_| format!("`{key}`: {raw:?} is not a duration like \"500ms\" or \"2s\""))
}

fn parse_step(table: &toml::Table) -> Result<Step, String> {
    let actions: Vec<&str> = ACTIONS
        .split(", ")
        .filter(|a| table.contains_key(*a))
        .collect();
    let action = match actions.as_slice() {
        [one] => *one,
        [] => {
            let unknown = table
                .keys()
                .find(|k| k.as_str() != "name")
                .map(String::as_str)
                .unwrap_or("");
            return Err(if unknown.is_empty() {
                format!("no action; expected one of {ACTIONS}")
            } else {
                format!("unknown action {unknown:?}; expected one of {ACTIONS}")
            });
        }
        many => {
            return Err(format!(
                "has several actions ({}); one step does one thing",
                many.join(", ")
            ));
        }
    };
    let allowed: &[&str] = match action {
        "type" => &["text"],
        "select" => &["value"],
        _ => &[],
    };
    if let Some(extra) = table
        .keys()
        .find(|k| k.as_str() != "name" && k.as_str() != action && !allowed.contains(&k.as_str()))
    {
        return Err(format!("unknown key `{extra}` for a `{action}` step"));
    }
    let selector = |what: &str| -> Result<String, String> {
        let s = required(table, action, action)?;
        if s.trim().is_empty() {
            return Err(format!("`{action}` needs a {what}"));
        }
        Ok(s)
    };
    let parsed = match action {
        "goto" => Action::Goto(required(table, "goto", "goto")?),
        "click" => Action::Click(selector("CSS selector")?),
        "type" => Action::Type {
            selector: selector("CSS selector")?,
            text: Text::parse(&required(table, "text", "type")?),
        },
        "press" => {
            let key = selector("key name like \"Enter\"")?;
            if crate::input::key_definition(&key).is_none() {
                return Err(format!(
                    "`press`: unknown key {key:?}; use Enter, Tab, Escape, Backspace, ArrowUp/Down/Left/Right, Space or a single character"
                ));
            }
            Action::Press(key)
        }
        "hover" => Action::Hover(selector("CSS selector")?),
        "select" => Action::Select {
            selector: selector("CSS selector")?,
            value: required(table, "value", "select")?,
        },
        "scroll" => Action::Scroll(selector("CSS selector")?),
        "screenshot" => {
            let name = selector("name")?;
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "`screenshot`: {name:?} may hold letters, digits, '-' and '_' only"
                ));
            }
            Action::Screenshot(name)
        }
        "wait_for" => Action::WaitFor(parse_wait(table.get("wait_for").unwrap())?),
        "assert" => Action::Assert(parse_assert(table.get("assert").unwrap())?),
        "request" => Action::Request(Box::new(parse_request(table.get("request").unwrap())?)),
        _ => unreachable!("ACTIONS lists every action"),
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

fn one_key(value: &toml::Value, what: &str, keys: &str) -> Result<(String, toml::Table), String> {
    let table = value.as_table().ok_or_else(|| {
        format!(
            "`{what}` must be a table like {{ {} = ... }}",
            keys.split(", ").next().unwrap_or("")
        )
    })?;
    Ok((keys.to_string(), table.clone()))
}

fn parse_wait(value: &toml::Value) -> Result<WaitFor, String> {
    const KEYS: &str = "selector, text, url_contains, network_idle, delay";
    let (_, t) = one_key(value, "wait_for", KEYS)?;
    if t.len() != 1 {
        return Err(format!("`wait_for` takes exactly one of {KEYS}"));
    }
    let (key, v) = t.iter().next().unwrap();
    let s = v
        .as_str()
        .ok_or_else(|| format!("`wait_for.{key}` must be a string"))?
        .to_string();
    Ok(match key.as_str() {
        "selector" => WaitFor::Selector(s),
        "text" => WaitFor::Text(s),
        "url_contains" => WaitFor::UrlContains(s),
        "network_idle" => WaitFor::NetworkIdle(dur(&s, "wait_for.network_idle")?),
        "delay" => WaitFor::Delay(dur(&s, "wait_for.delay")?),
        other => {
            return Err(format!(
                "unknown `wait_for.{other}`; expected one of {KEYS}"
            ));
        }
    })
}

fn parse_assert(value: &toml::Value) -> Result<Assertion, String> {
    const KEYS: &str = "text_contains (+ selector), visible, hidden, url_contains, status";
    let (_, t) = one_key(value, "assert", KEYS)?;
    let get = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(text) = get("text_contains") {
        let selector = get("selector").unwrap_or_else(|| "body".into());
        if t.keys().any(|k| k != "text_contains" && k != "selector") {
            return Err("`assert` with `text_contains` takes only `selector` besides".into());
        }
        return Ok(Assertion::TextContains { selector, text });
    }
    if t.len() != 1 {
        return Err(format!("`assert` takes exactly one of {KEYS}"));
    }
    let (key, v) = t.iter().next().unwrap();
    Ok(match key.as_str() {
        "visible" => Assertion::Visible(
            v.as_str()
                .ok_or("`assert.visible` must be a selector string")?
                .into(),
        ),
        "hidden" => Assertion::Hidden(
            v.as_str()
                .ok_or("`assert.hidden` must be a selector string")?
                .into(),
        ),
        "url_contains" => Assertion::UrlContains(
            v.as_str()
                .ok_or("`assert.url_contains` must be a string")?
                .into(),
        ),
        "status" => {
            let code = v
                .as_integer()
                .filter(|c| (100..=599).contains(c))
                .ok_or("`assert.status` must be an HTTP status from 100 to 599")?;
            Assertion::Status(code as u16)
        }
        other => return Err(format!("unknown `assert.{other}`; expected one of {KEYS}")),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    expect_status: Option<u16>,
    expect_body_contains: Option<String>,
    #[serde(default)]
    expect_headers: BTreeMap<String, String>,
    max_latency: Option<String>,
}

fn parse_request(value: &toml::Value) -> Result<Request, String> {
    let raw: RawRequest = value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| format!("`request`: {}", e.message()))?;
    let method = raw
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    ) {
        return Err(format!(
            "`request.method`: {method:?} is not an HTTP method"
        ));
    }
    Ok(Request {
        method,
        url: raw.url,
        headers: raw
            .headers
            .into_iter()
            .map(|(k, v)| (k, Text::parse(&v)))
            .collect(),
        body: raw.body.as_deref().map(Text::parse),
        expect_status: raw.expect_status,
        expect_body_contains: raw.expect_body_contains,
        expect_headers: raw.expect_headers,
        max_latency: raw
            .max_latency
            .as_deref()
            .map(|v| dur(v, "request.max_latency"))
            .transpose()?,
    })
}

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
}
