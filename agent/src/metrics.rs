//! The agent's own numbers, served at `/metrics` in Prometheus text format and
//! read by `/healthz`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct AgentMetrics {
    runs_pass: AtomicU64,
    runs_fail: AtomicU64,
    runs_error: AtomicU64,
    /// Sum of run wall times in milliseconds, with the count in the runs_* above.
    run_ms_sum: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    spool_depth: AtomicU64,
    browser_restarts: AtomicU64,
    flow_load_errors: AtomicU64,
}

impl AgentMetrics {
    pub fn record_run(&self, outcome: vitalsign_core::wire::run::Outcome, duration_ms: u64) {
        use vitalsign_core::wire::run::Outcome;
        match outcome {
            Outcome::Pass => &self.runs_pass,
            Outcome::Fail | Outcome::Skipped => &self.runs_fail,
            Outcome::Error => &self.runs_error,
        }
        .fetch_add(1, Relaxed);
        self.run_ms_sum.fetch_add(duration_ms, Relaxed);
    }

    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Relaxed);
    }

    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub fn set_spool_depth(&self, depth: usize) {
        self.spool_depth.store(depth as u64, Relaxed);
    }

    pub fn set_browser_restarts(&self, restarts: u64) {
        self.browser_restarts.store(restarts, Relaxed);
    }

    pub fn set_flow_load_errors(&self, errors: usize) {
        self.flow_load_errors.store(errors as u64, Relaxed);
    }

    pub fn spool_depth(&self) -> u64 {
        self.spool_depth.load(Relaxed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let runs = [
            ("pass", &self.runs_pass),
            ("fail", &self.runs_fail),
            ("error", &self.runs_error),
        ];
        out.push_str("# HELP vitalsign_agent_runs_total Flow runs by outcome.\n# TYPE vitalsign_agent_runs_total counter\n");
        for (outcome, counter) in runs {
            let _ = writeln!(
                out,
                "vitalsign_agent_runs_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let total: u64 = runs.iter().map(|(_, c)| c.load(Relaxed)).sum();
        let lines = [
            (
                "run_duration_seconds_sum",
                "counter",
                "Sum of flow run wall times.",
                format!("{:.3}", self.run_ms_sum.load(Relaxed) as f64 / 1000.0),
            ),
            (
                "run_duration_seconds_count",
                "counter",
                "Number of timed flow runs.",
                total.to_string(),
            ),
            (
                "results_delivered_total",
                "counter",
                "Results the collector acknowledged.",
                self.delivered.load(Relaxed).to_string(),
            ),
            (
                "results_rejected_total",
                "counter",
                "Results the collector refused for good (kept in rejected/).",
                self.rejected.load(Relaxed).to_string(),
            ),
            (
                "spool_depth",
                "gauge",
                "Results waiting in the spool.",
                self.spool_depth.load(Relaxed).to_string(),
            ),
            (
                "browser_restarts_total",
                "counter",
                "Times the browser was killed and relaunched.",
                self.browser_restarts.load(Relaxed).to_string(),
            ),
            (
                "flow_load_errors",
                "gauge",
                "Flow files that failed to load at the last (re)load.",
                self.flow_load_errors.load(Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP vitalsign_agent_{name} {help}\n# TYPE vitalsign_agent_{name} {kind}\nvitalsign_agent_{name} {value}"
            );
        }
        out
    }
}
