//! The agent's own numbers, served at `/metrics` as OpenMetrics text by
//! prometheus-client and read by `/healthz`.
//!
//! The names are the ones dashboards were built on before the crate rendered
//! them (pinned in the test below); the run duration is now a histogram, so
//! it adds `_bucket` samples to its `_sum` and `_count`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vitalsign_core::wire::run::Outcome;

/// What `/metrics` answers with (OpenMetrics, which Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type OutcomeLabel = [(&'static str, &'static str); 1];

#[derive(Debug)]
pub struct AgentMetrics {
    /// Runs by outcome (`pass`, `fail` — skipped counts as fail — and `error`).
    runs: Family<OutcomeLabel, Counter>,
    /// Wall time of each run: buckets from 0.5 s to about 8.5 min (doubling).
    run_duration: Histogram,
    delivered: Counter,
    rejected: Counter,
    spool_depth: Gauge,
    /// The browser pool keeps its own count; we publish the latest.
    browser_restarts: AtomicU64,
    flow_load_errors: Gauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let runs = Family::<OutcomeLabel, Counter>::default();
        // All three outcomes are served from the start, at 0, as before.
        for outcome in ["pass", "fail", "error"] {
            let _ = runs.get_or_create(&[("outcome", outcome)]);
        }
        AgentMetrics {
            runs,
            run_duration: Histogram::new(exponential_buckets(0.5, 2.0, 11)),
            delivered: Counter::default(),
            rejected: Counter::default(),
            spool_depth: Gauge::default(),
            browser_restarts: AtomicU64::new(0),
            flow_load_errors: Gauge::default(),
        }
    }
}

impl AgentMetrics {
    pub fn record_run(&self, outcome: Outcome, duration_ms: u64) {
        let outcome = match outcome {
            Outcome::Pass => "pass",
            Outcome::Fail | Outcome::Skipped => "fail",
            Outcome::Error => "error",
        };
        self.runs.get_or_create(&[("outcome", outcome)]).inc();
        self.run_duration.observe(duration_ms as f64 / 1000.0);
    }

    pub fn delivered(&self) {
        self.delivered.inc();
    }

    pub fn rejected(&self) {
        self.rejected.inc();
    }

    pub fn set_spool_depth(&self, depth: usize) {
        self.spool_depth.set(depth as i64);
    }

    pub fn set_browser_restarts(&self, restarts: u64) {
        self.browser_restarts.store(restarts, Relaxed);
    }

    pub fn set_flow_load_errors(&self, errors: usize) {
        self.flow_load_errors.set(errors as i64);
    }

    pub fn spool_depth(&self) -> u64 {
        self.spool_depth.get().max(0) as u64
    }

    /// The OpenMetrics text. The registry is put together per scrape from
    /// shared handles (cloning a metric clones an `Arc`), as the collector does.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("vitalsign_agent");
        registry.register("runs", "Flow runs by outcome", self.runs.clone());
        registry.register(
            "run_duration_seconds",
            "Flow run wall times",
            self.run_duration.clone(),
        );
        registry.register(
            "results_delivered",
            "Results the collector acknowledged",
            self.delivered.clone(),
        );
        registry.register(
            "results_rejected",
            "Results the collector refused for good (kept in rejected/)",
            self.rejected.clone(),
        );
        registry.register(
            "spool_depth",
            "Results waiting in the spool",
            self.spool_depth.clone(),
        );
        registry.register(
            "browser_restarts",
            "Times the browser was killed and relaunched",
            ConstCounter::new(self.browser_restarts.load(Relaxed)),
        );
        registry.register(
            "flow_load_errors",
            "Flow files that failed to load at the last (re)load",
            self.flow_load_errors.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample names `/metrics` served before prometheus-client rendered
    /// it, taken from that output: dashboards query these.
    const BEFORE: [&str; 10] = [
        "vitalsign_agent_runs_total{outcome=\"pass\"}",
        "vitalsign_agent_runs_total{outcome=\"fail\"}",
        "vitalsign_agent_runs_total{outcome=\"error\"}",
        "vitalsign_agent_run_duration_seconds_sum",
        "vitalsign_agent_run_duration_seconds_count",
        "vitalsign_agent_results_delivered_total",
        "vitalsign_agent_results_rejected_total",
        "vitalsign_agent_spool_depth",
        "vitalsign_agent_browser_restarts_total",
        "vitalsign_agent_flow_load_errors",
    ];

    #[test]
    fn serves_the_names_dashboards_were_built_on() {
        let m = AgentMetrics::default();
        m.record_run(Outcome::Pass, 1200);
        m.record_run(Outcome::Skipped, 300);
        m.delivered();
        m.set_spool_depth(4);
        m.set_browser_restarts(2);
        let text = m.render();
        let served: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .filter(|s| !s.starts_with("vitalsign_agent_run_duration_seconds_bucket{le="))
            .collect();
        assert_eq!(served, BEFORE.into_iter().collect(), "{text}");
        for line in [
            "vitalsign_agent_runs_total{outcome=\"pass\"} 1",
            "vitalsign_agent_runs_total{outcome=\"fail\"} 1",
            "vitalsign_agent_runs_total{outcome=\"error\"} 0",
            "vitalsign_agent_run_duration_seconds_count 2",
            "vitalsign_agent_run_duration_seconds_sum 1.5",
            "vitalsign_agent_run_duration_seconds_bucket{le=\"0.5\"} 1",
            "vitalsign_agent_run_duration_seconds_bucket{le=\"1.0\"} 1",
            "vitalsign_agent_run_duration_seconds_bucket{le=\"2.0\"} 2",
            "vitalsign_agent_results_delivered_total 1",
            "vitalsign_agent_spool_depth 4",
            "vitalsign_agent_browser_restarts_total 2",
            "# TYPE vitalsign_agent_run_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(m.spool_depth(), 4);
    }
}
