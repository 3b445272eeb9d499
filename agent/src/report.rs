//! What people read: the page-view and per-step tables of `once`, and the
//! `check` verdict as a summary, JUnit XML (for CI test tabs), Markdown (for
//! PR comments) and JSON (for scripts).

use std::fmt::Write;

use vitalsign_core::format::{duration_ms, metric_value};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::ProbeRun;
use vitalsign_core::wire::beacon::NavigationType;
use vitalsign_core::wire::run::Outcome;

use crate::budget::Budget;

fn rated(metric: Metric, value: f64) -> String {
    format!(
        "{} {}",
        metric_value(metric, value),
        metric.rate(value).as_str()
    )
}

const TABLE_METRICS: [Metric; 6] = [
    Metric::Lcp,
    Metric::Cls,
    Metric::Inp,
    Metric::Fcp,
    Metric::Ttfb,
    Metric::Tbt,
];

/// Columns of the page-view table: a page view has no TBT.
const PAGE_VIEW_METRICS: [Metric; 5] = [
    Metric::Lcp,
    Metric::Cls,
    Metric::Inp,
    Metric::Fcp,
    Metric::Ttfb,
];

/// Rows padded to their widest cell, two spaces apart, indented.
fn aligned(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

/// A readable table of one run: its page views (what a user would have
/// seen), then a row per step (what each step caused).
pub fn run_table(run: &ProbeRun) -> String {
    let mut header = vec![
        "#".to_string(),
        "step".into(),
        "result".into(),
        "time".into(),
    ];
    header.extend(TABLE_METRICS.iter().map(|m| m.as_str().to_string()));
    header.push("status".into());
    let mut rows = vec![header];
    for (i, step) in run.steps.iter().enumerate() {
        let mut row = vec![
            (i + 1).to_string(),
            step.name.clone(),
            step.outcome.as_str().to_string(),
            duration_ms(step.duration_ms),
        ];
        row.extend(
            TABLE_METRICS
                .iter()
                .map(|m| step.vitals.get(*m).map_or("-".into(), |v| rated(*m, v))),
        );
        row.push(step.status.map_or("-".into(), |s| s.to_string()));
        rows.push(row);
    }
    let mut out = format!(
        "flow {:?} at {}: {}{}\n",
        run.flow,
        run.location,
        run.outcome.as_str().to_uppercase(),
        run.browser_version
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default()
    );
    if !run.page_views.is_empty() {
        let mut header = vec!["page view".to_string(), "started by".into(), "type".into()];
        header.extend(PAGE_VIEW_METRICS.iter().map(|m| m.as_str().to_string()));
        header.push("url".into());
        let mut views = vec![header];
        for view in &run.page_views {
            let mut row = vec![
                view.name.clone(),
                format!("step {}", view.step + 1),
                navigation_type(view.navigation_type).into(),
            ];
            row.extend(
                PAGE_VIEW_METRICS
                    .iter()
                    .map(|m| view.vitals.get(*m).map_or("-".into(), |v| rated(*m, v))),
            );
            row.push(view.url.clone().unwrap_or_else(|| "-".into()));
            views.push(row);
        }
        out.push_str(&aligned(&views));
        out.push('\n');
    }
    out.push_str(&aligned(&rows));
    if let Some(failure) = &run.failure {
        let at = failure
            .step
            .map(|s| format!("step {} ", s + 1))
            .unwrap_or_default();
        let _ = writeln!(out, "  {at}{}: {}", run.outcome.as_str(), failure.reason);
    }
    for step in &run.steps {
        if step.console_errors > 0 || step.failed_requests > 0 {
            let _ = writeln!(
                out,
                "  note: {:?} had {} console error(s), {} failed request(s)",
                step.name, step.console_errors, step.failed_requests
            );
        }
    }
    out
}

fn navigation_type(t: NavigationType) -> &'static str {
    match t {
        NavigationType::Navigate => "navigate",
        NavigationType::Reload => "reload",
        NavigationType::BackForward => "back-forward",
        NavigationType::BackForwardCache => "back-forward-cache",
        NavigationType::Prerender => "prerender",
        NavigationType::Restore => "restore",
        NavigationType::Route => "route",
    }
}

/// What a budget was checked against.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Step(String),
    PageView(String),
}

impl Target {
    /// `add to cart` for a step (as before page views existed), `page view open home`.
    pub fn label(&self) -> String {
        match self {
            Target::Step(name) => name.clone(),
            // As the collector names the page view's series.
            Target::PageView(name) => format!("page view {name}"),
        }
    }
}

/// One budget checked against one step or page view of one flow.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub flow: String,
    pub target: Target,
    pub budget: Budget,
    /// Median over the iterations; `None` when the target has no such metric.
    pub actual: Option<f64>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.actual.is_none_or(|v| v <= self.budget.max)
    }
}

/// The outcome of `check` over all flows.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub runs: Vec<ProbeRun>,
    pub verdicts: Vec<Verdict>,
}

impl CheckReport {
    pub fn new(runs: Vec<ProbeRun>, budgets: &[Budget]) -> CheckReport {
        let mut verdicts = Vec::new();
        for run in &runs {
            let targets = run
                .page_views
                .iter()
                .map(|v| (Target::PageView(v.name.clone()), &v.vitals))
                .chain(
                    run.steps
                        .iter()
                        .map(|s| (Target::Step(s.name.clone()), &s.vitals)),
                );
            for (target, vitals) in targets {
                for budget in budgets.iter().filter(|b| b.applies_to_flow(&run.flow)) {
                    let actual = vitals.get(budget.metric);
                    let applies = match (&target, &budget.step, &budget.page_view) {
                        (Target::Step(name), Some(step), _) => name == step,
                        (Target::PageView(name), _, Some(view)) => name == view,
                        (_, Some(_), _) | (_, _, Some(_)) => false,
                        // Unscoped: what users see is the page view; a step
                        // only for TBT, or when the run has no page views.
                        // Only targets that measured the metric.
                        (Target::PageView(_), None, None) => actual.is_some(),
                        (Target::Step(_), None, None) => {
                            actual.is_some()
                                && (run.page_views.is_empty() || budget.metric == Metric::Tbt)
                        }
                    };
                    if applies {
                        verdicts.push(Verdict {
                            flow: run.flow.clone(),
                            target: target.clone(),
                            budget: budget.clone(),
                            actual,
                        });
                    }
                }
            }
        }
        CheckReport { runs, verdicts }
    }

    /// The verdicts and the runs they came from, for scripts.
    pub fn json(&self) -> serde_json::Value {
        let verdicts: Vec<serde_json::Value> = self
            .verdicts
            .iter()
            .map(|v| {
                let (kind, name) = match &v.target {
                    Target::Step(name) => ("step", name),
                    Target::PageView(name) => ("page_view", name),
                };
                serde_json::json!({
                    "flow": v.flow,
                    kind: name,
                    "metric": v.budget.metric.as_str(),
                    "actual": v.actual,
                    "max": v.budget.max,
                    "budget": v.budget.text,
                    "passed": v.passed(),
                })
            })
            .collect();
        serde_json::json!({
            "exit_code": self.exit_code(),
            "verdicts": verdicts,
            "runs": self.runs,
        })
    }

    /// Could not measure: the browser or agent failed, not the site.
    pub fn infrastructure_error(&self) -> bool {
        self.runs.iter().any(|r| r.outcome == Outcome::Error)
    }

    pub fn failed_flows(&self) -> impl Iterator<Item = &ProbeRun> {
        self.runs.iter().filter(|r| r.outcome == Outcome::Fail)
    }

    pub fn broken(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| !v.passed())
    }

    /// 0: all budgets kept; 1: a budget broken or a flow failed; 2: could not run.
    pub fn exit_code(&self) -> i32 {
        if self.infrastructure_error() {
            2
        } else if self.failed_flows().next().is_some() || self.broken().next().is_some() {
            1
        } else {
            0
        }
    }

    pub fn summary(&self) -> String {
        let mut out = String::new();
        for v in &self.verdicts {
            let actual = v
                .actual
                .map_or("not measured".into(), |a| metric_value(v.budget.metric, a));
            let _ = writeln!(
                out,
                "{} {} / {}: {} (budget {})",
                if v.passed() { "PASS" } else { "FAIL" },
                v.flow,
                v.target.label(),
                actual,
                v.budget.text
            );
        }
        for run in &self.runs {
            if let Some(failure) = &run.failure {
                let _ = writeln!(
                    out,
                    "{} {}: {}",
                    if run.outcome == Outcome::Error {
                        "ERROR"
                    } else {
                        "FAIL"
                    },
                    run.flow,
                    failure.reason
                );
            }
        }
        let broken = self.broken().count();
        let _ = writeln!(
            out,
            "{} budget(s) checked, {} broken, {} flow(s) failed, {} could not run",
            self.verdicts.len(),
            broken,
            self.failed_flows().count(),
            self.runs
                .iter()
                .filter(|r| r.outcome == Outcome::Error)
                .count()
        );
        out
    }

    pub fn junit_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failures = self.broken().count() + self.failed_flows().count();
        let errors = self
            .runs
            .iter()
            .filter(|r| r.outcome == Outcome::Error)
            .count();
        let tests = self.verdicts.len() + self.runs.len();
        let _ = writeln!(
            out,
            "<testsuites name=\"vitalsign check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
        );
        for run in &self.runs {
            let verdicts: Vec<&Verdict> = self
                .verdicts
                .iter()
                .filter(|v| v.flow == run.flow)
                .collect();
            let suite_failures = verdicts.iter().filter(|v| !v.passed()).count()
                + usize::from(run.outcome == Outcome::Fail);
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{suite_failures}\" errors=\"{}\" time=\"{:.3}\">",
                xml(&run.flow),
                verdicts.len() + 1,
                usize::from(run.outcome == Outcome::Error),
                run.finished_at_ms.saturating_sub(run.started_at_ms) as f64 / 1000.0
            );
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"flow runs\"",
                xml(&run.flow)
            );
            match (&run.outcome, &run.failure) {
                (Outcome::Pass, _) | (_, None) => out.push_str("/>\n"),
                (outcome, Some(failure)) => {
                    let tag = if *outcome == Outcome::Error {
                        "error"
                    } else {
                        "failure"
                    };
                    let _ = writeln!(
                        out,
                        ">\n      <{tag} message=\"{}\"/>\n    </testcase>",
                        xml(&failure.reason)
                    );
                }
            }
            for v in verdicts {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}: {}\"",
                    xml(&v.flow),
                    xml(&v.target.label()),
                    xml(&v.budget.text)
                );
                if v.passed() {
                    out.push_str("/>\n");
                } else {
                    let actual = v
                        .actual
                        .map_or(String::new(), |a| metric_value(v.budget.metric, a));
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{} is {actual}, budget {}\"/>\n    </testcase>",
                        v.budget.metric,
                        xml(&v.budget.text)
                    );
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    pub fn markdown(&self) -> String {
        let verdict = match self.exit_code() {
            0 => "✅ all budgets kept",
            1 => "❌ budget broken",
            _ => "⚠️ could not measure",
        };
        let mut out = format!("## vitalsign check: {verdict}\n\n");
        out.push_str(
            "| flow | step or page view | metric | median | budget | result |\n|---|---|---|---|---|---|\n",
        );
        for v in &self.verdicts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                md(&v.flow),
                md(&v.target.label()),
                v.budget.metric,
                v.actual
                    .map_or("–".into(), |a| metric_value(v.budget.metric, a)),
                md(&v.budget.text),
                if v.passed() { "pass" } else { "**FAIL**" }
            );
        }
        for run in &self.runs {
            if let Some(failure) = &run.failure {
                let _ = writeln!(
                    out,
                    "\n**{}** {}: {}",
                    md(&run.flow),
                    run.outcome.as_str(),
                    md(&failure.reason)
                );
            }
        }
        out
    }
}

fn xml(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget;

    fn fixture(name: &str) -> ProbeRun {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/run/valid")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn verdicts_and_exit_codes() {
        let run = fixture("checkout-pass.json"); // open home: LCP 1650.2, CLS 0.012
        let kept =
            budget::parse("[[budget]]\nrules = [\"lcp <= 2500ms\", \"cls <= 0.1\"]\n").unwrap();
        let report = CheckReport::new(vec![run.clone()], &kept);
        assert_eq!(report.exit_code(), 0, "{}", report.summary());
        assert_eq!(report.verdicts.len(), 3, "LCP once, CLS on two steps");

        let broken = budget::parse(
            "[[budget]]\nflow = \"checkout\"\nstep = \"open home\"\nrules = [\"lcp <= 1.5s\"]\n",
        )
        .unwrap();
        let report = CheckReport::new(vec![run], &broken);
        assert_eq!(report.exit_code(), 1);
        assert!(
            report
                .summary()
                .contains("FAIL checkout / open home: 1.7 s (budget lcp <= 1.5s)"),
            "{}",
            report.summary()
        );
        let xml = report.junit_xml();
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(
            xml.contains("<failure message=\"LCP is 1.7 s, budget lcp &lt;= 1.5s\"/>"),
            "{xml}"
        );
        assert!(
            report
                .markdown()
                .contains("| checkout | open home | LCP | 1.7 s | lcp <= 1.5s | **FAIL** |")
        );

        let error = fixture("http-check-error.json");
        assert_eq!(CheckReport::new(vec![error], &kept).exit_code(), 2);
    }

    #[test]
    fn budgets_name_a_page_view_or_a_step() {
        // open home LCP 1012, INP 96 (page view); open reviews is a route with INP 152.
        let run = fixture("flow-page-views.json");
        let unscoped =
            budget::parse("[[budget]]\nrules = [\"inp <= 100ms\", \"tbt <= 100ms\"]\n").unwrap();
        let report = CheckReport::new(vec![run.clone()], &unscoped);
        let seen: Vec<(String, bool)> = report
            .verdicts
            .iter()
            .map(|v| {
                (
                    format!("{} {}", v.target.label(), v.budget.metric),
                    v.passed(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("page view open home INP".to_string(), true),
                ("page view open reviews INP".to_string(), false),
                ("open home TBT".to_string(), true),
                ("hero shown TBT".to_string(), true),
                ("open product TBT".to_string(), true),
                ("open reviews TBT".to_string(), false),
                ("reviews shown TBT".to_string(), true),
            ],
            "unscoped: page views for what users see, steps for TBT only"
        );
        let scoped = budget::parse(
            "[[budget]]\npage_view = \"open product\"\nrules = [\"lcp <= 400ms\"]\n\
             [[budget]]\nstep = \"open reviews\"\nrules = [\"inp <= 200ms\"]\n",
        )
        .unwrap();
        let report = CheckReport::new(vec![run], &scoped);
        assert_eq!(report.verdicts.len(), 2);
        assert_eq!(report.exit_code(), 1);
        let summary = report.summary();
        assert!(
            summary
                .contains("FAIL checkout / page view open product: 480 ms (budget lcp <= 400ms)"),
            "{summary}"
        );
        assert!(
            summary.contains("PASS checkout / open reviews: 152 ms"),
            "{summary}"
        );
        let json = report.json();
        assert_eq!(json["verdicts"][0]["page_view"], "open product");
        assert_eq!(json["verdicts"][1]["step"], "open reviews");
        assert_eq!(json["runs"][0]["page_views"][2]["navigation_type"], "route");
        assert!(report.markdown().contains(
            "| checkout | page view open product | LCP | 480 ms | lcp <= 400ms | **FAIL** |"
        ));
    }

    #[test]
    fn table_shows_page_views_then_steps() {
        let table = run_table(&fixture("flow-page-views.json"));
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].trim_start().starts_with("page view"), "{table}");
        assert!(
            lines[2].contains("open home")
                && lines[2].contains("step 1")
                && lines[2].contains("navigate")
                && lines[2].contains("1.0 s good")
                && lines[2].contains("https://shop.example/"),
            "{table}"
        );
        assert!(
            lines[4].contains("open reviews")
                && lines[4].contains("route")
                && lines[4].contains("152 ms good"),
            "{table}"
        );
        assert!(
            lines[6].trim_start().starts_with('#'),
            "the steps follow: {table}"
        );
    }

    #[test]
    fn table_shows_ratings_and_failure() {
        let table = run_table(&fixture("checkout-fail-with-screenshot.json"));
        assert!(table.contains("1.7 s good"), "{table}");
        assert!(
            table.contains("step 3 fail: text \"1 item\" not found"),
            "{table}"
        );
    }
}
