//! A probe run: one walk of a flow (or one HTTP check) by an agent, with the
//! timings and lab vitals of every step and of every page view.
//!
//! `run_id` is chosen by the agent before the first delivery attempt, so a
//! retried upload is recognised and stored once.
//!
//! Schema versions: 1 has steps only; 2 adds `page_views`. A version-1
//! document is still accepted (it reads as a run without page views).

use serde::{Deserialize, Serialize};

use super::beacon::NavigationType;
use super::{
    Validated, ValidationError, check_http_url, check_ident, check_len, check_no_control,
    check_range,
};
use crate::metric::Metric;

/// The run schema version this build writes.
pub const RUN_SCHEMA_VERSION: u32 = 2;
/// The oldest run schema version still accepted (without `page_views`).
pub const OLDEST_RUN_SCHEMA_VERSION: u32 = 1;
/// A flow navigates at most this often: far above a real flow (steps are at
/// most [`MAX_STEPS`]; a step that navigates twice is rare).
pub const MAX_PAGE_VIEWS: usize = 400;

pub const MAX_STEPS: usize = 200;
pub const MAX_MESSAGE_LEN: usize = 2000;
/// 2000-01-01T00:00:00Z in milliseconds: anything earlier is an unset clock.
const EARLIEST_MS: u64 = 946_684_800_000;
/// 2100-01-01T00:00:00Z in milliseconds: a hard ceiling that needs no clock, so
/// every accepted timestamp fits an `i64` with room to add durations to it.
const LATEST_MS: u64 = 4_102_444_800_000;
/// A run (and each step) lasts at most a day: far above any flow timeout,
/// and small enough that 200 steps summed stay far from overflowing.
pub const MAX_RUN_DURATION_MS: u64 = 86_400_000;
/// How far ahead of the collector's clock a run may claim to have started or
/// finished: agents' clocks drift, but not by more than this.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProbeRun {
    pub schema_version: u32,
    pub run_id: String,
    /// Flow name from the flow file.
    pub flow: String,
    /// Where the agent runs (`eu-west`, `office`): one flow is compared per location.
    pub location: String,
    pub agent_version: String,
    /// `Chromium/156.0.8078.73`; absent for HTTP checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    /// Device profile the flow ran with (`desktop`, `mobile`, or a custom name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Unix time in milliseconds.
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    /// How many iterations the step values summarise (median of N).
    #[serde(default = "one")]
    pub iterations: u32,
    /// Which attempt this is: a failed run is retried once, both are recorded.
    #[serde(default = "one")]
    pub attempt: u32,
    pub outcome: Outcome,
    /// Present when the outcome is not `pass`: which step and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub steps: Vec<Step>,
    /// Every page view the flow opened, in order: the vitals a real user's
    /// browser would report for it (schema version 2; absent for HTTP checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page_views: Vec<PageView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

fn one() -> u32 {
    1
}

/// `fail` is the site's fault (an assertion, a missing element, a 500);
/// `error` is ours (the browser crashed, the agent could not launch it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Error,
    /// A step that did not run because an earlier one failed.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Index into `steps` of the step that failed; absent when the run failed before any step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    /// The step kind from the flow file: `goto`, `click`, `request`, …
    pub kind: String,
    pub outcome: Outcome,
    /// Wall time of the step in milliseconds.
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Vitals::is_empty")]
    pub vitals: Vitals,
    /// Max − min of each vital over the iterations, when there were several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Vitals>,
    /// HTTP status of the document (or of the request, for HTTP checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The page the step ended on (the requested URL, for HTTP checks), so a
    /// step's lab numbers can sit beside the RUM numbers of the same page
    /// group. Origin and path only, as the snippet sends for RUM: see [`page_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub requests: u32,
    #[serde(default)]
    pub transfer_bytes: u64,
    #[serde(default)]
    pub failed_requests: u32,
    #[serde(default)]
    pub console_errors: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Names of `artifacts` that belong to this step (a failure screenshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
}

/// A page view inside a flow, as in RUM: every navigation (a `goto`, a click
/// that loads a new document) starts one, and so does an SPA route change
/// (`navigation_type: route`, which has INP and CLS only, as a RUM route).
/// LCP, FCP and TTFB are the navigation's, final at the first input, when the
/// page is left or when the flow ends; CLS is the largest session window of the
/// whole page view; INP covers all its interactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PageView {
    /// Named after the step that started it (`open home`); a step that started
    /// more than one page view names the later ones `open home (2)`, … so the
    /// name is unique within the run.
    pub name: String,
    /// Index into `steps` of the step that started it.
    pub step: usize,
    pub navigation_type: NavigationType,
    /// Origin and path, as [`Step::url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vitals::is_empty")]
    pub vitals: Vitals,
    /// Max − min of each vital over the iterations, when there were several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Vitals>,
}

/// Lab vitals of one step; absent where the step has none (an LCP only exists
/// for a step that loaded a document).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lcp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbt: Option<f64>,
}

impl Vitals {
    pub fn is_empty(&self) -> bool {
        *self == Vitals::default()
    }

    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Lcp => self.lcp,
            Metric::Cls => self.cls,
            Metric::Inp => self.inp,
            Metric::Fcp => self.fcp,
            Metric::Ttfb => self.ttfb,
            Metric::Tbt => self.tbt,
        }
    }

    pub fn set(&mut self, metric: Metric, value: Option<f64>) {
        let slot = match metric {
            Metric::Lcp => &mut self.lcp,
            Metric::Cls => &mut self.cls,
            Metric::Inp => &mut self.inp,
            Metric::Fcp => &mut self.fcp,
            Metric::Ttfb => &mut self.ttfb,
            Metric::Tbt => &mut self.tbt,
        };
        *slot = value;
    }

    /// The metrics that have a value, in [`Metric::ALL`] order.
    pub fn present(&self) -> impl Iterator<Item = (Metric, f64)> + '_ {
        Metric::ALL
            .into_iter()
            .filter_map(|m| self.get(m).map(|v| (m, v)))
    }

    fn validate(&self, field: &str) -> Validated<()> {
        for (metric, value) in self.present() {
            check_range(
                &format!("{field}.{}", metric.as_str().to_ascii_lowercase()),
                value,
                0.0,
                metric.max_plausible(),
            )?;
        }
        Ok(())
    }
}

/// A file the agent kept as evidence (a screenshot), uploaded separately.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Unique within the run, safe as a file name: `step-2-failure.png`.
    pub name: String,
    pub content_type: String,
    pub bytes: u64,
    /// Hex SHA-256 of the content, so an upload can be checked and deduplicated.
    pub sha256: String,
}

impl ProbeRun {
    pub fn validate(&self) -> Validated<()> {
        if !(OLDEST_RUN_SCHEMA_VERSION..=RUN_SCHEMA_VERSION).contains(&self.schema_version) {
            return Err(ValidationError::new(
                "schema_version",
                format!(
                    "{} is not supported; this collector accepts {OLDEST_RUN_SCHEMA_VERSION} to {RUN_SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        if self.schema_version < 2 && !self.page_views.is_empty() {
            return Err(ValidationError::new(
                "page_views",
                "needs schema_version 2 (version 1 has steps only)",
            ));
        }
        check_ident("run_id", &self.run_id, 64)?;
        check_len("flow", &self.flow, 1, 128)?;
        check_no_control("flow", &self.flow)?;
        check_ident("location", &self.location, 64)?;
        check_len("agent_version", &self.agent_version, 1, 32)?;
        check_no_control("agent_version", &self.agent_version)?;
        if let Some(v) = &self.browser_version {
            check_len("browser_version", v, 1, 64)?;
            check_no_control("browser_version", v)?;
        }
        if let Some(p) = &self.profile {
            check_ident("profile", p, 64)?;
        }
        if self.started_at_ms < EARLIEST_MS {
            return Err(ValidationError::new(
                "started_at_ms",
                "is before the year 2000; send Unix time in milliseconds",
            ));
        }
        if self.started_at_ms >= LATEST_MS {
            return Err(ValidationError::new(
                "started_at_ms",
                format!(
                    "{} is after the year 2100; send Unix time in milliseconds",
                    self.started_at_ms
                ),
            ));
        }
        if self.finished_at_ms < self.started_at_ms {
            return Err(ValidationError::new(
                "finished_at_ms",
                "is earlier than started_at_ms",
            ));
        }
        if self.finished_at_ms - self.started_at_ms > MAX_RUN_DURATION_MS {
            return Err(ValidationError::new(
                "finished_at_ms",
                format!(
                    "is {} ms after started_at_ms; a run lasts at most {MAX_RUN_DURATION_MS} ms",
                    self.finished_at_ms - self.started_at_ms
                ),
            ));
        }
        if !(1..=100).contains(&self.iterations) {
            return Err(ValidationError::new("iterations", "must be 1 to 100"));
        }
        if !(1..=10).contains(&self.attempt) {
            return Err(ValidationError::new("attempt", "must be 1 to 10"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(ValidationError::new(
                "steps",
                format!("holds {} steps; at most {MAX_STEPS}", self.steps.len()),
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            step.validate(&format!("steps[{i}]"))?;
        }
        if self.page_views.len() > MAX_PAGE_VIEWS {
            return Err(ValidationError::new(
                "page_views",
                format!(
                    "holds {} page views; at most {MAX_PAGE_VIEWS}",
                    self.page_views.len()
                ),
            ));
        }
        for (i, view) in self.page_views.iter().enumerate() {
            view.validate(&format!("page_views[{i}]"), self.steps.len())?;
            if self.page_views[..i].iter().any(|v| v.name == view.name) {
                return Err(ValidationError::new(
                    format!("page_views[{i}].name"),
                    format!(
                        "{:?} names an earlier page view too; names are unique",
                        view.name
                    ),
                ));
            }
        }
        for (i, artifact) in self.artifacts.iter().enumerate() {
            artifact.validate(&format!("artifacts[{i}]"))?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            for (j, name) in step.artifacts.iter().enumerate() {
                if !self.artifacts.iter().any(|a| &a.name == name) {
                    return Err(ValidationError::new(
                        format!("steps[{i}].artifacts[{j}]"),
                        format!("names {name:?}, which is not in artifacts"),
                    ));
                }
            }
        }
        self.validate_outcome()
    }

    /// Checks that need the receiver's clock (`now_ms`, Unix milliseconds): a
    /// run may not start or finish more than [`MAX_CLOCK_SKEW_MS`] in the
    /// future, or the dashboard would show it ahead of everything else and the
    /// retention pruner would keep it forever.
    pub fn check_clock(&self, now_ms: u64) -> Validated<()> {
        let latest = now_ms.saturating_add(MAX_CLOCK_SKEW_MS);
        for (field, value) in [
            ("started_at_ms", self.started_at_ms),
            ("finished_at_ms", self.finished_at_ms),
        ] {
            if value > latest {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "{value} is {} ms ahead of the collector's clock ({now_ms}); at most {MAX_CLOCK_SKEW_MS} ms of skew is allowed",
                        value - now_ms
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The run's outcome must agree with its steps, or a dashboard would show a
    /// green run with a red step.
    fn validate_outcome(&self) -> Validated<()> {
        match (self.outcome, &self.failure) {
            (Outcome::Pass, Some(_)) => Err(ValidationError::new(
                "failure",
                "must be absent when the outcome is pass",
            )),
            (Outcome::Pass, None) => {
                match self.steps.iter().position(|s| s.outcome != Outcome::Pass) {
                    Some(i) => Err(ValidationError::new(
                        format!("steps[{i}].outcome"),
                        "is not pass, but the run's outcome is pass",
                    )),
                    None => Ok(()),
                }
            }
            (Outcome::Skipped, _) => Err(ValidationError::new(
                "outcome",
                "skipped applies to steps only; a run is pass, fail or error",
            )),
            (_, None) => Err(ValidationError::new(
                "failure",
                "is required when the outcome is fail or error",
            )),
            (_, Some(failure)) => {
                check_len("failure.reason", &failure.reason, 1, MAX_MESSAGE_LEN)?;
                match failure.step {
                    Some(i) if i >= self.steps.len() => Err(ValidationError::new(
                        "failure.step",
                        format!("is {i}, but the run has {} steps", self.steps.len()),
                    )),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl Step {
    fn validate(&self, field: &str) -> Validated<()> {
        check_len(&format!("{field}.name"), &self.name, 1, 200)?;
        check_no_control(&format!("{field}.name"), &self.name)?;
        check_ident(&format!("{field}.kind"), &self.kind, 32)?;
        check_range(
            &format!("{field}.duration_ms"),
            self.duration_ms,
            0.0,
            MAX_RUN_DURATION_MS as f64,
        )?;
        self.vitals.validate(&format!("{field}.vitals"))?;
        if let Some(spread) = &self.spread {
            spread.validate(&format!("{field}.spread"))?;
        }
        if let Some(status) = self.status
            && !(100..=599).contains(&status)
        {
            return Err(ValidationError::new(
                format!("{field}.status"),
                format!("{status} is not an HTTP status (100 to 599)"),
            ));
        }
        if let Some(url) = &self.url {
            check_http_url(&format!("{field}.url"), url)?;
        }
        if let Some(error) = &self.error {
            check_len(&format!("{field}.error"), error, 1, MAX_MESSAGE_LEN)?;
        }
        Ok(())
    }
}

impl PageView {
    /// The name a page view's lab series has beside its flow's steps (stored
    /// as a synthetic series' step, shown in `check` verdicts): `page view open home`.
    pub fn series_name(&self) -> String {
        format!("page view {}", self.name)
    }

    fn validate(&self, field: &str, steps: usize) -> Validated<()> {
        check_len(&format!("{field}.name"), &self.name, 1, 200)?;
        check_no_control(&format!("{field}.name"), &self.name)?;
        if self.step >= steps {
            return Err(ValidationError::new(
                format!("{field}.step"),
                format!("is {}, but the run has {steps} steps", self.step),
            ));
        }
        if let Some(url) = &self.url {
            check_http_url(&format!("{field}.url"), url)?;
        }
        if self.vitals.tbt.is_some() {
            return Err(ValidationError::new(
                format!("{field}.vitals.tbt"),
                "TBT belongs to steps; a page view has LCP, CLS, INP, FCP and TTFB",
            ));
        }
        self.vitals.validate(&format!("{field}.vitals"))?;
        if let Some(spread) = &self.spread {
            spread.validate(&format!("{field}.spread"))?;
        }
        Ok(())
    }
}

/// What an agent puts in [`Step::url`]: an http(s) URL cut to scheme, host and
/// path, the way the snippet reports RUM pages (`location.origin + pathname`).
/// The query and fragment may hold personal data or tokens, and so may user
/// info (`user:pass@`); none of them leaves the agent. `None` for anything that
/// is not a web page (`about:blank`, `chrome-error://…`) or would not validate.
pub fn page_url(raw: &str) -> Option<String> {
    let (scheme, rest) = raw.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return None;
    }
    let path = if path.is_empty() { "/" } else { path };
    let url = format!("{}://{host}{path}", scheme.to_ascii_lowercase());
    check_http_url("url", &url).ok()?;
    Some(url)
}

impl Artifact {
    fn validate(&self, field: &str) -> Validated<()> {
        check_ident(&format!("{field}.name"), &self.name, 128)?;
        check_len(&format!("{field}.content_type"), &self.content_type, 1, 100)?;
        check_no_control(&format!("{field}.content_type"), &self.content_type)?;
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValidationError::new(
                format!("{field}.sha256"),
                "must be 64 hexadecimal digits",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::page_url;

    #[test]
    fn page_url_keeps_origin_and_path_only() {
        let cases = [
            (
                "http://127.0.0.1:8080/demo/search.html?q=lantern#top",
                Some("http://127.0.0.1:8080/demo/search.html"),
            ),
            (
                "https://shop.example/checkout#pay",
                Some("https://shop.example/checkout"),
            ),
            (
                "https://shop.example?ref=mail",
                Some("https://shop.example/"),
            ),
            ("HTTPS://shop.example/a", Some("https://shop.example/a")),
            (
                "https://user:secret@shop.example/account",
                Some("https://shop.example/account"),
            ),
            ("about:blank", None),
            ("chrome-error://chromewebdata/", None),
            ("file:///etc/passwd", None),
            ("https:///no-host", None),
            ("https://user@/no-host", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(page_url(raw).as_deref(), expected, "{raw}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(3000));
        assert_eq!(page_url(&long), None, "longer than the wire allows");
    }
}
