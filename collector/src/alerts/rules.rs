//! Which rule applies to which series: configured rules in order, then the
//! built-in defaults, with the thresholds each resolves to.

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use vitalsign_core::metric::Metric;

use crate::config::{AlertRule, AlertsConfig};

/// What a series is: the rollup dimensions. RUM series leave flow/step/location
/// empty; synthetic ones leave site/page group empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub source: String,
    pub site: String,
    pub page_group: String,
    pub metric: Metric,
    pub device: String,
    pub flow: String,
    pub step: String,
    pub location: String,
}

impl SeriesKey {
    /// Where, as the subject says it: `/checkout mobile` or `checkout › pay eu-west desktop`.
    pub fn place(&self) -> String {
        if self.source == "synthetic" {
            format!(
                "{} › {} {} {}",
                self.flow, self.step, self.location, self.device
            )
        } else {
            format!("{} {}", self.page_group, self.device)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Regression,
    Budget,
    FlowFailure,
    /// A flow at a location stopped delivering results (its agent is gone).
    FlowStale,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Regression => "regression",
            RuleKind::Budget => "budget",
            RuleKind::FlowFailure => "flow_failure",
            RuleKind::FlowStale => "flow_stale",
        }
    }

    /// Rules about a flow at a location (not a metric series): hard failures
    /// that get their own email, never held back or joined to an incident.
    pub fn is_flow(self) -> bool {
        matches!(self, RuleKind::FlowFailure | RuleKind::FlowStale)
    }

    fn parse(s: &str) -> Option<RuleKind> {
        [
            RuleKind::Regression,
            RuleKind::Budget,
            RuleKind::FlowFailure,
            RuleKind::FlowStale,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The dimensions a rule can match on.
pub struct Dims<'a> {
    pub site: &'a str,
    pub page_group: &'a str,
    pub metric: Option<Metric>,
    pub device: &'a str,
    pub source: &'a str,
    pub flow: &'a str,
    pub location: &'a str,
}

impl<'a> From<&'a SeriesKey> for Dims<'a> {
    fn from(k: &'a SeriesKey) -> Self {
        Dims {
            site: &k.site,
            page_group: &k.page_group,
            metric: Some(k.metric),
            device: &k.device,
            source: &k.source,
            flow: &k.flow,
            location: &k.location,
        }
    }
}

struct Compiled {
    rule: AlertRule,
    kind: RuleKind,
    metric: Option<Metric>,
    page_group: Option<GlobMatcher>,
}

impl Compiled {
    fn matches(&self, d: &Dims) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.rule.site, d.site)
            && eq(&self.rule.device, d.device)
            && eq(&self.rule.source, d.source)
            && eq(&self.rule.flow, d.flow)
            && eq(&self.rule.location, d.location)
            && self.metric.is_none_or(|m| d.metric == Some(m))
            && self
                .page_group
                .as_ref()
                .is_none_or(|g| g.is_match(d.page_group))
    }
}

/// Thresholds of one rule applied to one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub name: String,
    pub kind: RuleKind,
    pub route: String,
    /// Regression: smallest relative change; budget: unused.
    pub min_relative_change: f64,
    /// Regression: smallest absolute change.
    pub floor: f64,
    pub min_samples: u64,
    /// Budget: the bound.
    pub bound: Option<f64>,
}

pub struct RuleSet {
    rules: Vec<Compiled>,
    config: AlertsConfig,
}

impl RuleSet {
    /// Compile globs; the config was validated, so an invalid glob here is a bug.
    pub fn new(config: &AlertsConfig) -> RuleSet {
        let rules = config
            .rules
            .iter()
            .map(|r| Compiled {
                kind: RuleKind::parse(&r.kind).expect("validated rule kind"),
                metric: r.metric.as_deref().and_then(Metric::parse),
                page_group: r.page_group.as_deref().map(|g| {
                    Glob::new(g)
                        .expect("validated page_group glob")
                        .compile_matcher()
                }),
                rule: r.clone(),
            })
            .collect();
        RuleSet {
            rules,
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The rule of `kind` for a series: the first configured rule that matches,
    /// else the built-in one; `None` when muted or nothing applies.
    pub fn resolve(&self, kind: RuleKind, dims: &Dims) -> Option<Resolved> {
        let cfg = &self.config;
        let metric = dims.metric;
        let floor_of = |m: Option<Metric>| {
            m.and_then(|m| {
                cfg.regression
                    .floors
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(m.as_str()))
                    .map(|(_, v)| *v)
            })
            .unwrap_or(0.0)
        };
        let bound_of = |m: Option<Metric>| {
            m.and_then(|m| {
                cfg.budget
                    .bounds
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(m.as_str()))
                    .map(|(_, v)| *v)
            })
        };
        if let Some(c) = self
            .rules
            .iter()
            .find(|c| c.kind == kind && c.matches(dims))
        {
            if c.rule.enabled == Some(false) {
                return None;
            }
            let bound = c.rule.bound.or_else(|| bound_of(metric));
            if kind == RuleKind::Budget && bound.is_none() {
                return None;
            }
            return Some(Resolved {
                name: c.rule.name.clone(),
                kind,
                route: c
                    .rule
                    .route
                    .clone()
                    .unwrap_or_else(|| cfg.default_route.clone()),
                min_relative_change: c
                    .rule
                    .min_relative_change
                    .unwrap_or(cfg.regression.min_relative_change),
                floor: c.rule.floor.unwrap_or_else(|| floor_of(metric)),
                min_samples: c.rule.min_samples.unwrap_or(cfg.regression.min_samples),
                bound,
            });
        }
        if !cfg.default_rules {
            return None;
        }
        let bound = bound_of(metric);
        match kind {
            RuleKind::Budget if bound.is_none() => return None,
            RuleKind::FlowFailure | RuleKind::FlowStale if metric.is_some() => return None,
            RuleKind::Regression | RuleKind::Budget if metric.is_none() => return None,
            _ => {}
        }
        Some(Resolved {
            name: format!("default-{}", kind.as_str().replace('_', "-")),
            kind,
            route: cfg.default_route.clone(),
            min_relative_change: cfg.regression.min_relative_change,
            floor: floor_of(metric),
            min_samples: cfg.regression.min_samples,
            bound,
        })
    }
}

/// Does an optional glob/equality matcher set (silences, maintenance windows)
/// match these dimensions? Unset fields match everything.
pub fn matcher_matches(
    site: Option<&str>,
    page_group: Option<&str>,
    flow: Option<&str>,
    location: Option<&str>,
    dims: &Dims,
) -> bool {
    let eq = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have);
    eq(site, dims.site)
        && eq(flow, dims.flow)
        && eq(location, dims.location)
        && page_group.is_none_or(|g| {
            Glob::new(g)
                .map(|g| g.compile_matcher().is_match(dims.page_group))
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(page_group: &str, metric: Metric) -> SeriesKey {
        SeriesKey {
            source: "rum".into(),
            site: "shop".into(),
            page_group: page_group.into(),
            metric,
            device: "mobile".into(),
            flow: String::new(),
            step: String::new(),
            location: String::new(),
        }
    }

    #[test]
    fn first_matching_rule_then_defaults() {
        let mut cfg = AlertsConfig::default();
        cfg.routes.insert("checkout".into(), Default::default());
        cfg.rules.push(AlertRule {
            name: "checkout-lcp".into(),
            kind: "regression".into(),
            page_group: Some("/checkout/**".into()),
            metric: Some("LCP".into()),
            route: Some("checkout".into()),
            min_relative_change: Some(0.2),
            ..Default::default()
        });
        cfg.rules.push(AlertRule {
            name: "mute-admin".into(),
            kind: "regression".into(),
            page_group: Some("/admin*".into()),
            enabled: Some(false),
            ..Default::default()
        });
        cfg.validate().unwrap();
        let rules = RuleSet::new(&cfg);
        let k = key("/checkout/pay", Metric::Lcp);
        let r = rules.resolve(RuleKind::Regression, &(&k).into()).unwrap();
        assert_eq!(
            (r.name.as_str(), r.route.as_str()),
            ("checkout-lcp", "checkout")
        );
        assert_eq!(r.min_relative_change, 0.2);
        assert_eq!(r.floor, 100.0);
        let k = key("/checkout/pay", Metric::Inp);
        let r = rules.resolve(RuleKind::Regression, &(&k).into()).unwrap();
        assert_eq!((r.name.as_str(), r.floor), ("default-regression", 25.0));
        let k = key("/admin", Metric::Lcp);
        assert!(rules.resolve(RuleKind::Regression, &(&k).into()).is_none());
        let k = key("/", Metric::Cls);
        assert_eq!(
            rules.resolve(RuleKind::Budget, &(&k).into()).unwrap().bound,
            Some(0.1)
        );
        let k = key("/", Metric::Ttfb);
        assert!(rules.resolve(RuleKind::Budget, &(&k).into()).is_none());
    }
}
