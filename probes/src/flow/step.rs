//! One `[[steps]]` table into a [`Step`]: which action it is, its keys,
//! their values, and a default name that says what the step does.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::doc::{self, RequestDoc, STEP_KINDS};
use super::echo::{bounded, key, quote};
use super::{ACTIONS, Action, Assertion, Request, Step, Text, WAIT, WaitFor};

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

pub(super) fn parse(table: &toml::Table) -> Result<Step, String> {
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
