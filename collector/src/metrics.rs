//! The collector's own numbers for `/metrics` (Prometheus text format).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Mutex, RwLock};

use crate::store::Store;

/// HTTP status codes are three digits: a counter for each, per route.
const STATUSES: usize = 900;

#[derive(Default)]
pub struct Metrics {
    /// route → count per status (index `status - 100`). Every request
    /// passes here: after a route's first request it costs a shared read
    /// lock and one atomic add, no allocation and no exclusive lock.
    requests: RwLock<HashMap<Box<str>, Box<[AtomicU64]>>>,
    /// rejection reason → count
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    pub alerts: AlertMetrics,
}

/// The alert engine's and the outbox worker's numbers. Outbox counts come from
/// the database (refreshed by the worker and the evaluator), so they survive
/// restarts and agree with `/api/v1/alerts/dead-letters`.
#[derive(Default)]
pub struct AlertMetrics {
    pub notifications_sent: AtomicU64,
    pub notifications_dead: AtomicU64,
    pub delivery_retries: AtomicU64,
    pub evaluations: AtomicU64,
    pub evaluation_micros_sum: AtomicU64,
    pub evaluation_micros_last: AtomicU64,
    pub series_evaluated_last: AtomicU64,
    pub outbox_pending: AtomicI64,
    /// `created_ms` of the oldest pending message; 0 = none.
    pub outbox_oldest_created_ms: AtomicI64,
    pub outbox_dead: AtomicI64,
}

impl AlertMetrics {
    fn render(&self, out: &mut String, now_ms: i64) {
        let oldest = self.outbox_oldest_created_ms.load(Relaxed);
        let age = if oldest > 0 {
            (now_ms - oldest).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        let evaluations = self.evaluations.load(Relaxed);
        let lines = [
            (
                "alert_outbox_depth",
                "gauge",
                "Alert emails waiting in the outbox (pending).",
                self.outbox_pending.load(Relaxed) as f64,
            ),
            (
                "alert_outbox_oldest_age_seconds",
                "gauge",
                "Age of the oldest pending alert email; 0 when the outbox is empty.",
                age,
            ),
            (
                "alert_dead_letters",
                "gauge",
                "Alert emails the SMTP server refused permanently (5xx), kept in the dead-letter list.",
                self.outbox_dead.load(Relaxed) as f64,
            ),
            (
                "alert_notifications_sent_total",
                "counter",
                "Alert emails the SMTP server accepted since start.",
                self.notifications_sent.load(Relaxed) as f64,
            ),
            (
                "alert_notifications_dead_total",
                "counter",
                "Alert emails dead-lettered since start.",
                self.notifications_dead.load(Relaxed) as f64,
            ),
            (
                "alert_delivery_retries_total",
                "counter",
                "Temporary SMTP failures (4xx, connection, timeout) that were retried, since start.",
                self.delivery_retries.load(Relaxed) as f64,
            ),
            (
                "alert_evaluation_seconds_sum",
                "counter",
                "Time spent evaluating alert rules.",
                self.evaluation_micros_sum.load(Relaxed) as f64 / 1e6,
            ),
            (
                "alert_evaluation_seconds_count",
                "counter",
                "Alert evaluations run.",
                evaluations as f64,
            ),
            (
                "alert_evaluation_seconds_last",
                "gauge",
                "Duration of the last alert evaluation (load, evaluate, write).",
                self.evaluation_micros_last.load(Relaxed) as f64 / 1e6,
            ),
            (
                "alert_series_evaluated_last",
                "gauge",
                "Rule applications (series × rule, flows) in the last evaluation.",
                self.series_evaluated_last.load(Relaxed) as f64,
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP vitalsign_{name} {help}\n# TYPE vitalsign_{name} {kind}\nvitalsign_{name} {value}"
            );
        }
    }
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        let slot = usize::from(status).clamp(100, 100 + STATUSES - 1) - 100;
        if let Some(counts) = self.requests.read().unwrap().get(route) {
            counts[slot].fetch_add(1, Relaxed);
            return;
        }
        self.requests
            .write()
            .unwrap()
            .entry(route.into())
            .or_insert_with(|| (0..STATUSES).map(|_| AtomicU64::new(0)).collect())[slot]
            .fetch_add(1, Relaxed);
    }

    pub fn rejection(&self, reason: &'static str) {
        *self.rejections.lock().unwrap().entry(reason).or_insert(0) += 1;
    }

    pub fn render(&self, store: &Store) -> String {
        let mut out = String::new();
        out.push_str("# HELP vitalsign_http_requests_total Requests by route and status.\n# TYPE vitalsign_http_requests_total counter\n");
        let requests = self.requests.read().unwrap();
        let mut routes: Vec<_> = requests.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        for (route, counts) in routes {
            for (slot, n) in counts.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let status = slot + 100;
                    let _ = writeln!(
                        out,
                        "vitalsign_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        drop(requests);
        out.push_str("# HELP vitalsign_rejections_total Rejected ingest requests by reason.\n# TYPE vitalsign_rejections_total counter\n");
        for (reason, n) in self.rejections.lock().unwrap().iter() {
            let _ = writeln!(out, "vitalsign_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        let stats = store.writer_stats();
        let batches = stats.batches.load(Relaxed);
        let gauges = [
            (
                "write_batches_total",
                "counter",
                "Transactions the writer committed.",
                batches as f64,
            ),
            (
                "writes_total",
                "counter",
                "Writes committed (beacons, runs, artifacts).",
                stats.writes.load(Relaxed) as f64,
            ),
            (
                "write_batch_size_last",
                "gauge",
                "Writes in the last committed batch.",
                stats.last_batch_size.load(Relaxed) as f64,
            ),
            (
                "write_batch_size_max",
                "gauge",
                "Largest batch committed so far.",
                stats.max_batch_size.load(Relaxed) as f64,
            ),
            (
                "commit_seconds_sum",
                "counter",
                "Time spent applying and committing batches.",
                stats.commit_micros_sum.load(Relaxed) as f64 / 1e6,
            ),
            (
                "commit_seconds_count",
                "counter",
                "Committed batches.",
                batches as f64,
            ),
            (
                "rollup_writes_total",
                "counter",
                "Transactions that wrote the rollups (each merging the changes of one or more batches).",
                stats.rollup_writes.load(Relaxed) as f64,
            ),
            (
                "write_queue_depth",
                "gauge",
                "Writes waiting for the writer.",
                store.queue_depth() as f64,
            ),
            (
                "db_size_bytes",
                "gauge",
                "Database file plus WAL size.",
                store.size_bytes() as f64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP vitalsign_{name} {help}\n# TYPE vitalsign_{name} {kind}\nvitalsign_{name} {value}"
            );
        }
        self.alerts.render(&mut out, store.clock.now_ms());
        out
    }
}
