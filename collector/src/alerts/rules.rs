//! Which rule applies to which series: configured rules in order, then the
//! built-in defaults, with the thresholds each resolves to.

use serde::{Deserialize, Serialize};
use vitalsign_core::metric::{Metric, Source};

use crate::config::{AlertRule, AlertsConfig, PageGlob};

/// What a series is: the rollup dimensions. RUM series leave flow/step/location
/// empty; synthetic ones leave site/page group empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub source: Source,
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
        if self.source == Source::Synthetic {
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
}

/// The dimensions a rule can match on.
pub struct Dims<'a> {
    pub site: &'a str,
    pub page_group: &'a str,
    pub metric: Option<Metric>,
    pub device: &'a str,
    pub source: Source,
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
            source: k.source,
            flow: &k.flow,
            location: &k.location,
        }
    }
}

impl AlertRule {
    /// Does this rule's matcher set cover the series? (Its globs were
    /// compiled when the configuration was read.)
    fn matches(&self, d: &Dims) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.site, d.site)
            && eq(&self.device, d.device)
            && self.source.is_none_or(|s| s == d.source)
            && eq(&self.flow, d.flow)
            && eq(&self.location, d.location)
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
    config: AlertsConfig,
}

impl RuleSet {
    pub fn new(config: &AlertsConfig) -> RuleSet {
        RuleSet {
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
            m.and_then(|m| cfg.regression.floors.get(&m).copied())
                .unwrap_or(0.0)
        };
        let bound_of = |m: Option<Metric>| m.and_then(|m| cfg.budget.bounds.get(&m).copied());
        if let Some(rule) = cfg.rules.iter().find(|r| r.kind == kind && r.matches(dims)) {
            if rule.enabled == Some(false) {
                return None;
            }
            let bound = rule.bound.or_else(|| bound_of(metric));
            if kind == RuleKind::Budget && bound.is_none() {
                return None;
            }
            return Some(Resolved {
                name: rule.name.clone(),
                kind,
                route: rule
                    .route
                    .clone()
                    .unwrap_or_else(|| cfg.default_route.clone()),
                min_relative_change: rule
                    .min_relative_change
                    .unwrap_or(cfg.regression.min_relative_change),
                floor: rule.floor.unwrap_or_else(|| floor_of(metric)),
                min_samples: rule.min_samples.unwrap_or(cfg.regression.min_samples),
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
    page_group: Option<&PageGlob>,
    flow: Option<&str>,
    location: Option<&str>,
    dims: &Dims,
) -> bool {
    let eq = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have);
    eq(site, dims.site)
        && eq(flow, dims.flow)
        && eq(location, dims.location)
        && page_group.is_none_or(|g| g.is_match(dims.page_group))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(page_group: &str, metric: Metric) -> SeriesKey {
        SeriesKey {
            source: Source::Rum,
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
            page_group: Some(PageGlob::new("/checkout/**").unwrap()),
            metric: Some(Metric::Lcp),
            route: Some("checkout".into()),
            min_relative_change: Some(0.2),
            ..AlertRule::new("checkout-lcp", RuleKind::Regression)
        });
        cfg.rules.push(AlertRule {
            page_group: Some(PageGlob::new("/admin*").unwrap()),
            enabled: Some(false),
            ..AlertRule::new("mute-admin", RuleKind::Regression)
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
