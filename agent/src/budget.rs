//! Performance budgets for `check`: which flow, which page view or step,
//! which metric, what bound.
//!
//! ```toml
//! [[budget]]
//! flow = "checkout"          # optional: every flow
//! page_view = "open product" # optional: a page view (named after the step that started it)
//! # step = "add to cart"     # or a step; not both
//! rules = ["lcp <= 2500ms", "cls <= 0.1", "inp <= 200ms"]
//! ```
//!
//! A budget that names neither checks every page view of a run (what a user
//! would see: LCP, CLS, INP, FCP, TTFB), and every step for TBT, which page
//! views do not have; a run without page views (an HTTP check, an old
//! document) has its steps checked instead.

use std::path::Path;

use serde::Deserialize;
use vitalsign_core::metric::Metric;

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("budget file {path}: {reason}")]
    File { path: String, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub flow: Option<String>,
    pub step: Option<String>,
    pub page_view: Option<String>,
    pub metric: Metric,
    /// Milliseconds for times, unitless for CLS.
    pub max: f64,
    /// The rule as written, for reports.
    pub text: String,
}

impl Budget {
    pub fn applies_to_flow(&self, flow: &str) -> bool {
        self.flow.as_deref().is_none_or(|f| f == flow)
    }

    /// Names neither a step nor a page view.
    pub fn unscoped(&self) -> bool {
        self.step.is_none() && self.page_view.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    budget: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    flow: Option<String>,
    step: Option<String>,
    page_view: Option<String>,
    rules: Vec<String>,
}

pub fn load(path: &Path) -> Result<Vec<Budget>, BudgetError> {
    let text = std::fs::read_to_string(path).map_err(|e| BudgetError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&text).map_err(|reason| BudgetError::File {
        path: path.display().to_string(),
        reason,
    })
}

pub fn parse(text: &str) -> Result<Vec<Budget>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.budget.is_empty() {
        return Err(
            "no [[budget]] entries; add at least one with `rules = [\"lcp <= 2500ms\"]`".into(),
        );
    }
    let mut budgets = Vec::new();
    for (i, entry) in file.budget.iter().enumerate() {
        if entry.rules.is_empty() {
            return Err(format!("budget {}: `rules` is empty", i + 1));
        }
        if entry.step.is_some() && entry.page_view.is_some() {
            return Err(format!(
                "budget {}: name a `step` or a `page_view`, not both (one budget entry per target)",
                i + 1
            ));
        }
        for rule in &entry.rules {
            let (metric, max) = parse_rule(rule)
                .map_err(|reason| format!("budget {}: rule {rule:?}: {reason}", i + 1))?;
            if metric == Metric::Tbt && entry.page_view.is_some() {
                return Err(format!(
                    "budget {}: rule {rule:?}: a page view has no TBT (it has no field counterpart); budget it on a `step`",
                    i + 1
                ));
            }
            budgets.push(Budget {
                flow: entry.flow.clone(),
                step: entry.step.clone(),
                page_view: entry.page_view.clone(),
                metric,
                max,
                text: rule.trim().to_string(),
            });
        }
    }
    Ok(budgets)
}

/// `lcp <= 2500ms`, `lcp <= 2.5s`, `cls <= 0.1`, `ttfb <= 800` (ms implied).
fn parse_rule(rule: &str) -> Result<(Metric, f64), String> {
    let (name, bound) = rule
        .split_once("<=")
        .ok_or("expected `METRIC <= VALUE`, for example `lcp <= 2500ms`")?;
    let name = name.trim();
    let metric = Metric::parse(name).ok_or_else(|| {
        format!("unknown metric {name:?}; expected one of lcp, cls, inp, fcp, ttfb, tbt")
    })?;
    let bound = bound.trim();
    let (number, scale) = if metric.is_time() {
        if let Some(n) = bound.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = bound.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (bound, 1.0)
        }
    } else {
        (bound, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!(
            "{bound:?} is not a number{}",
            if metric.is_time() {
                " (with ms or s)"
            } else {
                ""
            }
        )
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err("the bound must be a non-negative number".into());
    }
    Ok((metric, value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_scopes() {
        let b = parse(
            "[[budget]]\nflow = \"demo\"\nrules = [\"lcp <= 2.5s\", \"cls<=0.1\", \"inp <= 200ms\", \"ttfb <= 800\"]\n",
        )
        .unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!((b[0].metric, b[0].max), (Metric::Lcp, 2500.0));
        assert_eq!((b[1].metric, b[1].max), (Metric::Cls, 0.1));
        assert_eq!(b[3].max, 800.0);
        assert!(b[0].applies_to_flow("demo") && b[0].unscoped());
        assert!(!b[0].applies_to_flow("other"));
        let b = parse("[[budget]]\npage_view = \"open product\"\nrules = [\"inp <= 200ms\"]\n")
            .unwrap();
        assert_eq!(b[0].page_view.as_deref(), Some("open product"));
        assert!(!b[0].unscoped());
    }

    #[test]
    fn the_shipped_examples_parse() {
        for file in ["budgets.example.toml", "budgets.dashboard.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy")
                .join(file);
            let budgets = load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!budgets.is_empty(), "{file}");
        }
        let example =
            load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/budgets.example.toml"))
                .unwrap();
        assert!(
            example
                .iter()
                .any(|b| b.page_view.as_deref() == Some("home"))
        );
        assert!(
            example
                .iter()
                .any(|b| b.step.as_deref() == Some("add to cart"))
        );
    }

    #[test]
    fn errors_name_the_rule() {
        let err = parse("[[budget]]\nrules = [\"lcp < 2500ms\"]\n").unwrap_err();
        assert!(
            err.contains("budget 1") && err.contains("lcp < 2500ms"),
            "{err}"
        );
        let err = parse("[[budget]]\nrules = [\"fid <= 100ms\"]\n").unwrap_err();
        assert!(err.contains("unknown metric \"fid\""), "{err}");
        let err = parse("[[budget]]\nrules = [\"lcp <= fast\"]\n").unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        assert!(parse("").unwrap_err().contains("no [[budget]]"));
        let err = parse("[[budget]]\nstep = \"a\"\npage_view = \"a\"\nrules = [\"lcp <= 1s\"]\n")
            .unwrap_err();
        assert!(err.contains("not both"), "{err}");
        let err = parse("[[budget]]\npage_view = \"a\"\nrules = [\"tbt <= 200ms\"]\n").unwrap_err();
        assert!(err.contains("no TBT"), "{err}");
    }
}
