//! The flow file as a document: the serde types the parser reads a file into,
//! and from which the JSON Schema (`deploy/flow.schema.json`, served by the
//! collector at `/v1/flow.schema.json`) is derived, so the schema an editor
//! checks against and the parser cannot drift apart. The rules serde cannot
//! say (one action per step, blank selectors, bounds on durations and
//! schedules) are the parser's, in `flow.rs`; where a JSON Schema can say
//! them too, the attributes here do.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::profile::ProfileDoc;

/// A humantime duration: `500ms`, `15s`, `2m`, `1h 30m`.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\s*)+$";
/// Holds at least one character that is not white space.
pub const NOT_BLANK: &str = r"\S";
/// An HTTP method, in any case.
pub const METHOD_PATTERN: &str = "^([Gg][Ee][Tt]|[Hh][Ee][Aa][Dd]|[Pp][Oo][Ss][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh]|[Dd][Ee][Ll][Ee][Tt][Ee]|[Oo][Pp][Tt][Ii][Oo][Nn][Ss])$";
/// Letters, digits, `-` and `_`: a screenshot's name becomes a file name.
pub const SCREENSHOT_PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// A vitalsign flow file: one user flow, walked step by step in headless
/// Chromium (or over HTTP when every step is a `request`). Reference: docs/flows.md.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "vitalsign flow", transform = steps_are_required)]
pub struct FlowDoc {
    /// The flow's name on the dashboard and in alerts, 1 to 128 characters.
    #[schemars(length(min = 1, max = 128), pattern(NOT_BLANK))]
    pub name: String,
    /// Relative `goto` targets and `request.url`s resolve against it: `http://` or `https://`.
    #[schemars(pattern(r"^https?://[^\s/?#]+"))]
    pub base_url: Option<String>,
    /// The device emulated: `desktop` (the default), `mobile`, or a table of custom values.
    #[schemars(with = "Option<ProfileDoc>")]
    pub profile: Option<toml::Value>,
    /// How long one step and the whole run may take.
    pub timeouts: Option<TimeoutsDoc>,
    /// Runs per measurement (1 to 20, default 1); metrics are the median with the spread.
    #[schemars(range(min = 1, max = 20))]
    pub iterations: Option<u32>,
    /// When the agent runs the flow: an interval from 1s to 31 days (`5m`), or a
    /// cron expression in UTC with 5 fields (`*/5 * * * *`) or 6 (seconds first).
    /// Default: every 5 minutes.
    #[schemars(pattern(NOT_BLANK))]
    pub schedule: Option<String>,
    /// What the flow does, in order; at least one step.
    #[serde(default)]
    #[schemars(with = "Vec<StepDoc>", length(min = 1))]
    pub steps: Vec<toml::Table>,
}

/// serde lets `steps` default (so the parser can say "no [[steps]]"), but a
/// file without steps is invalid, and the schema should say so.
fn steps_are_required(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(required)) = schema.get_mut("required") {
        required.push("steps".into());
    }
    if let Some(serde_json::Value::Object(steps)) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("steps"))
    {
        steps.remove("default");
    }
}

/// Timeouts; both are humantime durations and neither may be zero.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsDoc {
    /// One step (a load, a wait, an assertion): 100ms to 10m, default 15s.
    #[schemars(pattern(DURATION_PATTERN))]
    pub step: Option<String>,
    /// The whole run, every iteration: 1s to 1h, default 120s; at least `step`.
    #[schemars(pattern(DURATION_PATTERN))]
    pub flow: Option<String>,
}

/// One step: exactly one action key (`goto`, `click`, …), its own options, and
/// an optional `name`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StepDoc {
    Goto(GotoStep),
    Click(ClickStep),
    Type(TypeStep),
    Press(PressStep),
    Hover(HoverStep),
    Select(SelectStep),
    Scroll(ScrollStep),
    WaitFor(WaitForStep),
    Assert(AssertStep),
    Screenshot(ScreenshotStep),
    Request(RequestStep),
}

/// The step kinds and the keys each takes besides its own and `name`, as the
/// parser checks them (a test holds the schema to the same list).
pub const STEP_KINDS: &[(&str, &[&str])] = &[
    ("goto", &[]),
    ("click", &[]),
    ("type", &["text"]),
    ("press", &[]),
    ("hover", &[]),
    ("select", &["value"]),
    ("scroll", &[]),
    ("wait_for", &[]),
    ("assert", &[]),
    ("screenshot", &[]),
    ("request", &[]),
];

/// Open a URL (relative to `base_url`, or absolute) and wait for its load event.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GotoStep {
    /// Shown in results; the default says what the step does (`goto /cart`).
    pub name: Option<String>,
    /// The URL; `/` is `base_url` itself.
    #[schemars(pattern(NOT_BLANK))]
    pub goto: String,
}

/// Click the first element matching a CSS selector (waits for it to appear).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// A CSS selector.
    #[schemars(pattern(NOT_BLANK))]
    pub click: String,
}

/// Focus an element and type text into it with real key events.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// A CSS selector of the input.
    #[serde(rename = "type")]
    #[schemars(pattern(NOT_BLANK))]
    pub type_: String,
    /// The text, or `${env:NAME}` to type an environment variable's value
    /// (a secret: never logged, never in results).
    pub text: String,
}

/// Press one key: Enter, Tab, Escape, Backspace, ArrowUp/Down/Left/Right, Space or one character.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PressStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// The key's name.
    #[schemars(pattern(NOT_BLANK))]
    pub press: String,
}

/// Move the mouse over an element.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoverStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// A CSS selector.
    #[schemars(pattern(NOT_BLANK))]
    pub hover: String,
}

/// Choose an option of a `<select>` by its value.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// A CSS selector of the `<select>`.
    #[schemars(pattern(NOT_BLANK))]
    pub select: String,
    /// The `value` of the option to choose.
    pub value: String,
}

/// Scroll an element into view.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrollStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// A CSS selector.
    #[schemars(pattern(NOT_BLANK))]
    pub scroll: String,
}

/// Save a PNG of the page as an artifact of the run.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenshotStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// The artifact's name: letters, digits, `-` and `_`.
    #[schemars(pattern(SCREENSHOT_PATTERN))]
    pub screenshot: String,
}

/// Wait (within the step timeout) for one condition.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// Exactly one condition.
    pub wait_for: WaitDoc,
}

/// The keys of a `wait_for` table, as the parser knows them.
pub const WAIT_KEYS: &[&str] = &["selector", "text", "url_contains", "network_idle", "delay"];

/// One condition to wait for.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitDoc {
    /// An element matching this CSS selector exists.
    Selector(#[schemars(pattern(NOT_BLANK))] String),
    /// The page's text contains this.
    Text(#[schemars(pattern(NOT_BLANK))] String),
    /// The URL contains this.
    UrlContains(#[schemars(pattern(NOT_BLANK))] String),
    /// No request has been in flight for this long (1ms to 10m).
    NetworkIdle(#[schemars(pattern(DURATION_PATTERN))] String),
    /// A fixed pause (1ms to 10m); prefer a condition.
    Delay(#[schemars(pattern(DURATION_PATTERN))] String),
}

/// Check the page; a failed assertion fails the run.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertStep {
    /// Shown in results; the default says what the step does.
    pub name: Option<String>,
    /// Exactly one assertion.
    pub assert: AssertDoc,
}

/// The keys of an `assert` table, as the parser knows them.
pub const ASSERT_KEYS: &[&str] = &[
    "text_contains",
    "selector",
    "visible",
    "hidden",
    "url_contains",
    "status",
];

/// One assertion.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AssertDoc {
    TextContains(TextContainsDoc),
    One(AssertOneDoc),
}

/// The text of an element (default `body`) contains a string.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextContainsDoc {
    /// The text to find.
    #[schemars(pattern(NOT_BLANK))]
    pub text_contains: String,
    /// A CSS selector; default `body`.
    #[schemars(pattern(NOT_BLANK))]
    pub selector: Option<String>,
}

/// An assertion with one value.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AssertOneDoc {
    /// An element matching this CSS selector is visible.
    Visible(#[schemars(pattern(NOT_BLANK))] String),
    /// No element matching this CSS selector is visible.
    Hidden(#[schemars(pattern(NOT_BLANK))] String),
    /// The URL contains this.
    UrlContains(#[schemars(pattern(NOT_BLANK))] String),
    /// The last navigation answered with this HTTP status.
    Status(#[schemars(range(min = 100, max = 599))] u16),
}

/// An HTTP request with checks on its answer (no browser when every step is one).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestStep {
    /// Shown in results; the default is the method and URL.
    pub name: Option<String>,
    /// The request and its checks.
    pub request: RequestDoc,
}

/// An HTTP request and what its answer must be.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestDoc {
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS, in any case.
    #[schemars(pattern(METHOD_PATTERN))]
    pub method: Option<String>,
    /// Relative to `base_url`, or absolute.
    #[schemars(pattern(NOT_BLANK))]
    pub url: String,
    /// Request headers; a value may be `${env:NAME}` (a secret).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body; may be `${env:NAME}` (a secret).
    pub body: Option<String>,
    /// The status the answer must have (default: any status below 400).
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// A string the body must contain.
    pub expect_body_contains: Option<String>,
    /// Headers the answer must carry, with these exact values.
    #[serde(default)]
    pub expect_headers: BTreeMap<String, String>,
    /// The longest the answer may take (up to the step timeout); the step fails when slower.
    #[schemars(pattern(DURATION_PATTERN))]
    pub max_latency: Option<String>,
}

/// The schema of a flow file (JSON Schema 2020-12), as shipped in
/// `deploy/flow.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(FlowDoc);
    schema.insert(
        "$id".into(),
        "https://github.com/vitalsign/vitalsign/deploy/flow.schema.json".into(),
    );
    let mut value = schema.to_value();
    drop_null(&mut value);
    value
}

/// TOML has no null: an optional key is absent, never `null`, so the
/// `null` alternatives schemars gives every `Option` only mislead an editor.
fn drop_null(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get("anyOf")
                && any.len() == 2
                && any
                    .iter()
                    .any(|v| v.get("type").is_some_and(|t| t == "null"))
            {
                let other = any
                    .iter()
                    .find(|v| v.get("type").is_none_or(|t| t != "null"))
                    .cloned();
                map.remove("anyOf");
                if let Some(Value::Object(other)) = other {
                    map.extend(other);
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// [`json_schema`] as the shipped file holds it: pretty, with a final newline.
pub fn json_schema_text() -> String {
    serde_json::to_string_pretty(&json_schema()).expect("a schema serialises") + "\n"
}
