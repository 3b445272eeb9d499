//! The collector's own numbers for `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

use crate::store::Store;

#[derive(Default)]
pub struct Metrics {
    /// (route, status) → count
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// rejection reason → count
    rejections: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((route.to_string(), status))
            .or_insert(0) += 1;
    }

    pub fn rejection(&self, reason: &'static str) {
        *self.rejections.lock().unwrap().entry(reason).or_insert(0) += 1;
    }

    pub fn render(&self, store: &Store) -> String {
        let mut out = String::new();
        out.push_str("# HELP vitalsign_http_requests_total Requests by route and status.\n# TYPE vitalsign_http_requests_total counter\n");
        for ((route, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "vitalsign_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP vitalsign_rejections_total Rejected ingest requests by reason.\n# TYPE vitalsign_rejections_total counter\n");
        for (reason, n) in self.rejections.lock().unwrap().iter() {
            let _ = writeln!(out, "vitalsign_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        let stats = &store.writer.stats;
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
                "write_queue_depth",
                "gauge",
                "Writes waiting for the writer.",
                store.writer.queue_depth() as f64,
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
        out
    }
}
