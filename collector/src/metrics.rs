//! The collector's own numbers for `/metrics`, rendered by prometheus-client
//! as OpenMetrics text. Durations are histograms; what the store and the
//! outbox own (queue depth, file size, outbox age) is read at scrape time.
//!
//! The names are the ones dashboards were built on before the crate rendered
//! them (pinned in the test below): counters end in `_total`, and the two
//! histograms keep their `_sum` / `_count` and add `_bucket`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Store;

/// What `/metrics` answers with (OpenMetrics, which Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// HTTP status codes are three digits: a counter for each, per route.
const STATUSES: usize = 900;

/// A duration histogram with buckets from 0.5 ms to about 16 s (doubling),
/// which covers a batch commit and an alert evaluation. `Default` so the
/// structs that hold one can derive it.
#[derive(Debug, Clone)]
pub struct SecondsHistogram(Histogram);

impl Default for SecondsHistogram {
    fn default() -> Self {
        SecondsHistogram(Histogram::new(exponential_buckets(0.0005, 2.0, 16)))
    }
}

impl SecondsHistogram {
    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed.as_secs_f64());
    }
}

type ReasonLabel = [(&'static str, &'static str); 1];

#[derive(Default)]
pub struct Metrics {
    /// route → count per status (index `status - 100`), shared with the
    /// scrape-time collector. Every request passes here: after a route's
    /// first request it costs a shared read lock and one atomic add, no
    /// allocation and no exclusive lock (a prometheus-client `Family` would
    /// need an owned label set, a `String`, to look a route up).
    requests: Arc<RequestCounts>,
    /// Rejected ingest requests by reason.
    rejections: Family<ReasonLabel, Counter>,
    pub alerts: AlertMetrics,
}

#[derive(Debug, Default)]
struct RequestCounts(RwLock<std::collections::HashMap<Box<str>, Box<[AtomicU64]>>>);

/// Encodes the request counters as one counter family at each scrape.
impl Collector for RequestCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let requests = self.0.read().unwrap();
        let mut routes: Vec<_> = requests.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        let mut family = encoder.encode_descriptor(
            "http_requests",
            "Requests by route and status",
            None,
            MetricType::Counter,
        )?;
        for (route, counts) in routes {
            for (slot, n) in counts.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let labels = ([("route", route.as_ref())], [("status", slot + 100)]);
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// The alert engine's and the outbox worker's numbers. Outbox counts come from
/// the database (refreshed by the worker and the evaluator), so they survive
/// restarts and agree with `/api/v1/alerts/dead-letters`.
#[derive(Default)]
pub struct AlertMetrics {
    pub notifications_sent: Counter,
    pub notifications_dead: Counter,
    pub delivery_retries: Counter,
    /// Load, evaluate and write of each evaluation.
    pub evaluation_seconds: SecondsHistogram,
    pub evaluation_seconds_last: Gauge<f64, AtomicU64>,
    pub series_evaluated_last: Gauge,
    pub outbox_pending: Gauge,
    /// `created_ms` of the oldest pending message; 0 = none (its age is
    /// computed at scrape time).
    pub outbox_oldest_created_ms: AtomicI64,
    pub outbox_dead: Gauge,
}

impl AlertMetrics {
    fn register(&self, registry: &mut Registry, now_ms: i64) {
        let oldest = self.outbox_oldest_created_ms.load(Relaxed);
        let age = if oldest > 0 {
            (now_ms - oldest).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        registry.register(
            "alert_outbox_depth",
            "Alert emails waiting in the outbox (pending)",
            self.outbox_pending.clone(),
        );
        registry.register(
            "alert_outbox_oldest_age_seconds",
            "Age of the oldest pending alert email; 0 when the outbox is empty",
            ConstGauge::new(age),
        );
        registry.register(
            "alert_dead_letters",
            "Alert emails the SMTP server refused permanently (5xx), kept in the dead-letter list",
            self.outbox_dead.clone(),
        );
        registry.register(
            "alert_notifications_sent",
            "Alert emails the SMTP server accepted since start",
            self.notifications_sent.clone(),
        );
        registry.register(
            "alert_notifications_dead",
            "Alert emails dead-lettered since start",
            self.notifications_dead.clone(),
        );
        registry.register(
            "alert_delivery_retries",
            "Temporary SMTP failures (4xx, connection, timeout) that were retried, since start",
            self.delivery_retries.clone(),
        );
        registry.register(
            "alert_evaluation_seconds",
            "Time spent evaluating alert rules (load, evaluate, write), per evaluation",
            self.evaluation_seconds.0.clone(),
        );
        registry.register(
            "alert_evaluation_seconds_last",
            "Duration of the last alert evaluation (load, evaluate, write)",
            self.evaluation_seconds_last.clone(),
        );
        registry.register(
            "alert_series_evaluated_last",
            "Rule applications (series × rule, flows) in the last evaluation",
            self.series_evaluated_last.clone(),
        );
    }
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        let slot = usize::from(status).clamp(100, 100 + STATUSES - 1) - 100;
        if let Some(counts) = self.requests.0.read().unwrap().get(route) {
            counts[slot].fetch_add(1, Relaxed);
            return;
        }
        self.requests
            .0
            .write()
            .unwrap()
            .entry(route.into())
            .or_insert_with(|| (0..STATUSES).map(|_| AtomicU64::new(0)).collect())[slot]
            .fetch_add(1, Relaxed);
    }

    pub fn rejection(&self, reason: &'static str) {
        self.rejections.get_or_create(&[("reason", reason)]).inc();
    }

    /// The OpenMetrics text of everything. A registry is put together per
    /// scrape: the store's numbers are read now, and the metrics kept here
    /// are shared handles (cloning one clones an `Arc`).
    pub fn render(&self, store: &Store) -> String {
        let mut registry = Registry::with_prefix("vitalsign");
        registry.register_collector(Box::new(self.requests.clone()));
        registry.register(
            "rejections",
            "Rejected ingest requests by reason",
            self.rejections.clone(),
        );
        let stats = store.writer_stats();
        registry.register(
            "write_batches",
            "Transactions the writer committed",
            ConstCounter::new(stats.batches.load(Relaxed)),
        );
        registry.register(
            "writes",
            "Writes committed (beacons, runs, artifacts)",
            ConstCounter::new(stats.writes.load(Relaxed)),
        );
        registry.register(
            "write_batch_size_last",
            "Writes in the last committed batch",
            ConstGauge::new(stats.last_batch_size.load(Relaxed) as i64),
        );
        registry.register(
            "write_batch_size_max",
            "Largest batch committed so far",
            ConstGauge::new(stats.max_batch_size.load(Relaxed) as i64),
        );
        registry.register(
            "commit_seconds",
            "Time spent applying and committing each batch",
            stats.commit_seconds.0.clone(),
        );
        registry.register(
            "rollup_writes",
            "Transactions that wrote the rollups (each merging the changes of one or more batches)",
            ConstCounter::new(stats.rollup_writes.load(Relaxed)),
        );
        registry.register(
            "write_queue_depth",
            "Writes waiting for the writer",
            ConstGauge::new(store.queue_depth() as i64),
        );
        registry.register(
            "db_size_bytes",
            "Database file plus WAL size",
            ConstGauge::new(store.size_bytes() as i64),
        );
        if let Some(pool) = store.pool_use() {
            for (name, help, value) in [
                (
                    "db_connections_open",
                    "Database connections open (idle or in use)",
                    pool.open,
                ),
                (
                    "db_connections_idle",
                    "Database connections open and idle",
                    pool.idle,
                ),
                (
                    "db_connections_max",
                    "Most database connections the pool opens",
                    pool.max,
                ),
                (
                    "db_connections_waiting",
                    "Callers waiting for a database connection",
                    pool.waiting,
                ),
            ] {
                registry.register(name, help, ConstGauge::new(value as i64));
            }
        }
        self.alerts.register(&mut registry, store.clock.now_ms());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample names with their label names, as a scraper sees them.
    fn served(text: &str) -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let series = l.rsplit_once(' ').unwrap().0;
                match series.split_once('{') {
                    None => series.to_string(),
                    Some((name, labels)) => {
                        let keys: Vec<&str> = labels
                            .trim_end_matches('}')
                            .split(',')
                            .map(|kv| kv.split_once('=').unwrap().0)
                            .filter(|k| *k != "le")
                            .collect();
                        if keys.is_empty() {
                            name.to_string()
                        } else {
                            format!("{name}{{{}}}", keys.join(","))
                        }
                    }
                }
            })
            .collect()
    }

    /// The sample names (with label names) `/metrics` served before
    /// prometheus-client rendered it, taken from that output: dashboards
    /// query these. The histograms add only their `_bucket` samples.
    const BEFORE: [&str; 21] = [
        "vitalsign_alert_dead_letters",
        "vitalsign_alert_delivery_retries_total",
        "vitalsign_alert_evaluation_seconds_count",
        "vitalsign_alert_evaluation_seconds_last",
        "vitalsign_alert_evaluation_seconds_sum",
        "vitalsign_alert_notifications_dead_total",
        "vitalsign_alert_notifications_sent_total",
        "vitalsign_alert_outbox_depth",
        "vitalsign_alert_outbox_oldest_age_seconds",
        "vitalsign_alert_series_evaluated_last",
        "vitalsign_commit_seconds_count",
        "vitalsign_commit_seconds_sum",
        "vitalsign_db_size_bytes",
        "vitalsign_http_requests_total{route,status}",
        "vitalsign_rejections_total{reason}",
        "vitalsign_rollup_writes_total",
        "vitalsign_write_batch_size_last",
        "vitalsign_write_batch_size_max",
        "vitalsign_write_batches_total",
        "vitalsign_write_queue_depth",
        "vitalsign_writes_total",
    ];

    #[test]
    fn serves_the_names_dashboards_were_built_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        let metrics = Metrics::default();
        metrics.request("/v1/beacon", 202);
        metrics.request("/v1/beacon", 202);
        metrics.request("/v1/beacon", 429);
        metrics.rejection("bad_json");
        metrics.alerts.notifications_sent.inc();
        metrics
            .alerts
            .evaluation_seconds
            .observe(Duration::from_millis(3));
        let text = metrics.render(&store);
        let mut expected: std::collections::BTreeSet<String> =
            BEFORE.iter().map(|s| s.to_string()).collect();
        expected.insert("vitalsign_commit_seconds_bucket".into());
        expected.insert("vitalsign_alert_evaluation_seconds_bucket".into());
        assert_eq!(served(&text), expected, "{text}");
        for line in [
            "vitalsign_http_requests_total{route=\"/v1/beacon\",status=\"202\"} 2",
            "vitalsign_http_requests_total{route=\"/v1/beacon\",status=\"429\"} 1",
            "vitalsign_rejections_total{reason=\"bad_json\"} 1",
            "vitalsign_alert_notifications_sent_total 1",
            "vitalsign_alert_evaluation_seconds_count 1",
            "vitalsign_alert_evaluation_seconds_bucket{le=\"0.004\"} 1",
            "vitalsign_alert_evaluation_seconds_bucket{le=\"0.002\"} 0",
            "# TYPE vitalsign_commit_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
