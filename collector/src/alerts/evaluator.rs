//! The evaluation task inside the collector: on an interval, load states and
//! data, run the pure [`engine::evaluate`], and write the result through the
//! single writer in one transaction.
//!
//! Several collectors may share one PostgreSQL database; exactly one of them
//! evaluates, the holder of the store's evaluator lease
//! ([`crate::store::Storage::evaluator_lease`]). [`run`] takes or renews the
//! lease every third of `alerts.lease_ttl_secs` and evaluates only while it
//! holds it; each evaluation is written under the term it was made with, so
//! a collector that lost the lease mid-evaluation writes nothing (the store
//! answers `Conflict`; it is logged once and skipped). On SQLite the one
//! collector always holds the lease.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::detector::HOUR_MS;
use super::engine::{self, Context, Evaluation};
use super::rules::{RuleKind, RuleSet};
use crate::config::CollectorConfig;
use crate::metrics::Metrics;
use crate::store::alerts as alert_store;
use crate::store::{Store, StoreError};

/// Flows not seen for this long are not re-read on every tick.
const RUN_LOOKBACK_MS: i64 = 7 * 24 * HOUR_MS;

pub struct Evaluator {
    store: Store,
    config: Arc<CollectorConfig>,
    rules: RuleSet,
    metrics: Arc<Metrics>,
    mail_domain: String,
    /// The hour whose rollups were last evaluated: regression and budget rules
    /// decide once per completed hour, so other ticks skip reading rollups.
    last_series_end: Option<i64>,
    /// `now` of the first tick: results are known to arrive only from then
    /// on, so stale flows count their silence from it at the earliest.
    first_tick_ms: Option<i64>,
    /// How long the lease lasts unless renewed.
    lease_ttl_ms: i64,
    /// The lease term this collector holds, as the last look found it.
    term: Option<i64>,
}

/// The domain of the configured sender, for Message-IDs.
pub fn mail_domain(from: &str) -> String {
    from.parse::<lettre::message::Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "vitalsign.localhost".into())
}

impl Evaluator {
    pub fn new(store: Store, config: Arc<CollectorConfig>, metrics: Arc<Metrics>) -> Self {
        Evaluator {
            rules: RuleSet::new(&config.alerts),
            mail_domain: mail_domain(&config.smtp.from),
            lease_ttl_ms: (config.alerts.lease_ttl_secs * 1000) as i64,
            store,
            config,
            metrics,
            last_series_end: None,
            first_tick_ms: None,
            term: None,
        }
    }

    /// Take or renew the evaluator lease: the term this collector holds it
    /// under, or `None` while another collector does.
    pub async fn lease(&mut self) -> Result<Option<i64>, StoreError> {
        let held = self.store.evaluator_lease(self.lease_ttl_ms).await?;
        if held != self.term {
            // Under another term, another collector may have evaluated in
            // between: read the hour's rollups again at the next evaluation.
            self.last_series_end = None;
            match held {
                Some(term) => info!(
                    term,
                    "this collector now evaluates alerts (it holds the evaluator lease)"
                ),
                None => info!(
                    holder = ?self.store.lease_holder(),
                    "another collector holds the evaluator lease; this one does not evaluate alerts"
                ),
            }
            self.term = held;
        }
        Ok(held)
    }

    /// Take or renew the lease, then evaluate at `now_ms` when it is held
    /// (`Conflict` when another collector holds it); returns what it wrote.
    pub async fn tick(&mut self, now_ms: i64) -> Result<Evaluation, StoreError> {
        match self.lease().await? {
            Some(term) => self.evaluate(now_ms, term).await,
            None => Err(StoreError::Conflict(format!(
                "another collector holds the evaluator lease ({:?})",
                self.store.lease_holder()
            ))),
        }
    }

    /// One evaluation at `now_ms`, written under lease `term`; returns what
    /// it wrote. `Conflict`: the lease was lost meanwhile and nothing was
    /// written.
    pub async fn evaluate(&mut self, now_ms: i64, term: i64) -> Result<Evaluation, StoreError> {
        let started = Instant::now();
        let end = now_ms.div_euclid(HOUR_MS);
        let with_series = self.last_series_end != Some(end);
        let listening_since_ms = *self.first_tick_ms.get_or_insert(now_ms);
        let cfg = self.config.alerts.clone();
        let states = self.store.alert_records().await?;
        let silences = self.store.silences(now_ms).await?;
        let hours = with_series.then(|| alert_store::series_hours(&cfg, &states, now_ms));
        let seen = states
            .values()
            .filter(|r| r.kind == RuleKind::FlowFailure)
            .map(|r| r.last_bucket)
            .min()
            .unwrap_or(now_ms);
        let runs_since = seen.min(now_ms - HOUR_MS).max(now_ms - RUN_LOOKBACK_MS);
        let mut snapshot = self.store.alert_snapshot(hours, runs_since).await?;
        snapshot.listening_since_ms = listening_since_ms;
        let ctx = Context {
            rules: &self.rules,
            silences: &silences,
            deliver: self.config.smtp.enabled(),
            mail_domain: &self.mail_domain,
        };
        let eval = engine::evaluate(&ctx, &snapshot, &states, now_ms);
        if !(eval.records.is_empty() && eval.transitions.is_empty() && eval.outbox.is_empty()) {
            let records = eval.records.clone();
            let transitions = eval.transitions.clone();
            let outbox = eval.outbox.clone();
            let write = Evaluation {
                records,
                transitions,
                outbox,
                evaluated: eval.evaluated,
            };
            if let Err(e) = self.store.record_evaluation(write, now_ms, term).await {
                if matches!(e, StoreError::Conflict(_)) {
                    // The next look at the lease says who holds it now.
                    self.term = None;
                    self.last_series_end = None;
                }
                return Err(e);
            }
        }
        if with_series {
            self.last_series_end = Some(end);
            let before_ms = now_ms - i64::from(self.config.retention_days) * 24 * HOUR_MS;
            self.store.prune_alerts(before_ms).await?;
        }
        for t in &eval.transitions {
            info!(alert = %engine::alert_id(&t.key), rule = %t.rule, from = t.from.as_str(), to = t.to.as_str(), "alert transition");
        }
        for m in &eval.outbox {
            info!(message_id = %m.message_id, subject = %m.subject, "alert email queued");
        }
        let elapsed = started.elapsed();
        let am = &self.metrics.alerts;
        am.evaluation_seconds.observe(elapsed);
        am.evaluation_seconds_last.set(elapsed.as_secs_f64());
        am.series_evaluated_last.set(eval.evaluated as i64);
        refresh_outbox_metrics(&self.store, &self.metrics).await;
        Ok(eval)
    }
}

pub async fn refresh_outbox_metrics(store: &Store, metrics: &Metrics) {
    match store.outbox_stats().await {
        Ok(stats) => {
            let am = &metrics.alerts;
            am.outbox_pending.set(stats.pending);
            am.outbox_oldest_created_ms
                .store(stats.oldest_pending_ms.unwrap_or(0), Relaxed);
            am.outbox_dead.set(stats.dead);
        }
        Err(e) => warn!(error = %e, "reading outbox statistics failed"),
    }
}

/// Evaluate every `alerts.evaluate_every_secs` of the store's clock while
/// this collector holds the evaluator lease, renewing it every third of
/// `alerts.lease_ttl_secs` (real time: the lease expires by the database's
/// clock), until `shutdown` is cancelled; an evaluation under way is
/// finished first.
pub async fn run(mut evaluator: Evaluator, shutdown: CancellationToken) {
    let every_ms = (evaluator.config.alerts.evaluate_every_secs * 1000) as i64;
    let renew = Duration::from_millis((evaluator.lease_ttl_ms / 3).max(1) as u64);
    let clock = evaluator.store.clock.clone();
    // When the next evaluation is due (store clock); at once when the lease
    // is (re)gained.
    let mut next_ms = i64::MIN;
    let mut lease_failing = false;
    while !shutdown.is_cancelled() {
        let held = match evaluator.lease().await {
            Ok(held) => {
                if lease_failing {
                    info!("the evaluator lease can be read again");
                    lease_failing = false;
                }
                held
            }
            Err(e) => {
                if !lease_failing {
                    warn!(error = %e, "taking or renewing the evaluator lease failed; retrying");
                    lease_failing = true;
                }
                None
            }
        };
        let mut wait_ms = None;
        match held {
            Some(term) => {
                let now_ms = clock.now_ms();
                if now_ms >= next_ms {
                    next_ms = now_ms + every_ms;
                    match evaluator.evaluate(now_ms, term).await {
                        Ok(_) => {}
                        Err(StoreError::Conflict(e)) => {
                            warn!(error = %e, "the evaluator lease was lost during an evaluation; it was not written");
                            next_ms = i64::MIN;
                        }
                        Err(e) => {
                            warn!(error = %e, "alert evaluation failed; retrying at the next tick")
                        }
                    }
                }
                if evaluator.term.is_some() {
                    wait_ms = Some((next_ms - clock.now_ms()).max(1));
                }
            }
            None => next_ms = i64::MIN,
        }
        let due = async {
            match wait_ms {
                Some(ms) => clock.sleep(Duration::from_millis(ms as u64)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(renew) => {}
            () = due => {}
            () = shutdown.cancelled() => break,
        }
    }
}
