//! The PostgreSQL backend of [`Storage`], for several collector replicas on
//! one shared database (`--db postgres://…`). SQLite stays the embedded default.
//!
//! - [`schema`]: numbered migrations, the partitioned layout and why.
//! - [`ingest`]: the per-replica writer task: page views, runs and artifacts
//!   in batches (one transaction each, rows by `UNNEST` arrays, rollup deltas
//!   merged in memory and upserted in key order), daily partitions created
//!   ahead and dropped past retention.
//! - [`read`]: percentiles, series, breakdowns, top pages and attribution,
//!   and the dashboard's filter choices.
//! - [`runs`]: probe runs, artifacts and each flow's health.
//! - [`alerts`]: alert states, transitions, silences, acknowledgements, the
//!   evaluator lease, and the outbox shared by replicas.
//!
//! Every connection comes from one deadpool pool; a lost connection is
//! replaced on the next checkout, and while the database cannot be reached
//! every call fails with [`StoreError::Unavailable`] (503), so nothing is
//! acknowledged that was not committed.

pub mod alerts;
pub mod ingest;
pub mod read;
pub mod runs;
pub mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::ProbeRun;

use super::alerts::{Delivery, OutboxRow, OutboxStats, StoredState, TransitionView};
use super::attribution::{AttributionKind, AttributionRank};
use super::flows::FlowHealth;
use super::query::{Breakdown, Filter, PageRank, SeriesPoint, Summary};
use super::storage::{NewArtifact, NewPageView, NewRun, PoolUse, Storage};
use super::views::Dimensions;
use super::writer::WriterStats;
use super::{StoreError, WriteOutcome};
use crate::alerts::engine::{Evaluation, Snapshot};
use crate::alerts::silences::Silence;
use crate::alerts::state::AlertRecord;

/// Connections one replica keeps at most: the writer's one, and reads.
const POOL_SIZE: usize = 16;
/// How long a caller waits for a connection before the call fails (503).
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// A statement's error: the database cannot be reached (503) when the
/// connection broke, or when the server says it is going away (SQLSTATE class
/// 57: shutdown, `pg_terminate_backend`; class 08: connection exception), which
/// arrives as a database error just before the socket closes. The server's
/// message is kept (tokio-postgres' own says only "db error"); neither holds
/// the URL, so no password.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return StoreError::Unavailable(format!("PostgreSQL: {e}"));
        };
        let message = format!("PostgreSQL: {} ({})", db.message(), db.code().code());
        let class = &db.code().code()[..2];
        if e.is_closed() || class == "57" || class == "08" {
            StoreError::Unavailable(message)
        } else {
            StoreError::Postgres(message)
        }
    }
}

/// A connection could not be had: 503, with the server's reason when it gave one.
impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(match &e {
            deadpool_postgres::PoolError::Backend(pg) => format!(
                "PostgreSQL connection: {}",
                pg.as_db_error()
                    .map_or_else(|| pg.to_string(), |db| db.message().to_string())
            ),
            _ => format!("PostgreSQL connection pool: {e}"),
        })
    }
}

/// The PostgreSQL backend: a connection pool, and this replica's writer task.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: Pool,
    pub(super) writer: ingest::PgWriter,
    /// This replica's name in the evaluator lease (host and process id, and
    /// a random part so a restarted process is a new holder).
    pub(super) replica: Arc<str>,
    /// The term this replica last held the evaluator lease under.
    pub(super) lease: Arc<alerts::LeaseState>,
}

impl PgStore {
    /// Connect to `url`, migrate, and start the writer task. `url` is a
    /// libpq-style `postgres://user:password@host:port/db` URL; it never
    /// appears in an error or a log (it may hold a password).
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!("the PostgreSQL URL in `db` does not parse: {e}"))
        })?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CHECKOUT_TIMEOUT))
            .create_timeout(Some(CHECKOUT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("PostgreSQL pool: {e}")))?;
        {
            let mut client = pool.get().await?;
            schema::migrate(&mut client).await?;
        }
        let replica: Arc<str> = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        )
        .into();
        let writer = ingest::PgWriter::start(pool.clone());
        Ok(PgStore {
            pool,
            writer,
            replica,
            lease: Arc::default(),
        })
    }

    /// A pooled connection (503 when none can be had).
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// This replica's name in the evaluator lease.
    pub fn replica(&self) -> &str {
        &self.replica
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "collector".into())
}

#[async_trait]
impl Storage for PgStore {
    async fn append_page_views(&self, views: Vec<NewPageView>) -> Result<(), StoreError> {
        self.writer.append_page_views(views).await
    }

    async fn record_run(&self, run: NewRun) -> Result<WriteOutcome, StoreError> {
        self.writer.record_run(run).await
    }

    async fn record_artifact(&self, artifact: NewArtifact) -> Result<WriteOutcome, StoreError> {
        ingest::record_artifact(self, artifact).await
    }

    async fn prune(&self, before_ms: i64) -> Result<WriteOutcome, StoreError> {
        ingest::prune(self, before_ms).await
    }

    async fn summary(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Summary, StoreError> {
        read::summary(self, metric, from_ms, to_ms, filter).await
    }

    async fn raw_values(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<f64>, StoreError> {
        read::raw_values(self, metric, from_ms, to_ms, filter).await
    }

    async fn series(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        read::series(self, metric, from_ms, to_ms, bucket_ms, filter).await
    }

    async fn breakdown(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        previous: bool,
        filter: &Filter,
    ) -> Result<Breakdown, StoreError> {
        read::breakdown(self, metric, from_ms, to_ms, bucket_ms, previous, filter).await
    }

    async fn breakdowns(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        previous: bool,
        filter: &Filter,
        by_site: bool,
    ) -> Result<Vec<(String, Breakdown)>, StoreError> {
        read::breakdowns(
            self, metric, from_ms, to_ms, bucket_ms, previous, filter, by_site,
        )
        .await
    }

    async fn top_pages(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<PageRank>, StoreError> {
        read::top_pages(self, metric, from_ms, to_ms, filter, limit).await
    }

    async fn top_attribution(
        &self,
        metric: Metric,
        kind: AttributionKind,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<AttributionRank>, StoreError> {
        read::top_attribution(self, metric, kind, from_ms, to_ms, filter, limit).await
    }

    async fn recent_runs(
        &self,
        flow: Option<String>,
        location: Option<String>,
        outcome: Option<String>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ProbeRun>, StoreError> {
        runs::recent_runs(self, flow, location, outcome, since_ms, limit).await
    }

    async fn artifact(
        &self,
        run_id: &str,
        name: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        runs::artifact(self, run_id, name).await
    }

    async fn dimensions(&self) -> Result<Dimensions, StoreError> {
        read::dimensions(self).await
    }

    async fn runs_page(
        &self,
        flow: Option<String>,
        location: Option<String>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ProbeRun>, bool), StoreError> {
        runs::runs_page(self, flow, location, offset, limit).await
    }

    async fn count_runs(
        &self,
        flow: Option<String>,
        location: Option<String>,
    ) -> Result<u64, StoreError> {
        runs::count_runs(self, flow, location).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<(ProbeRun, i64)>, StoreError> {
        runs::run(self, run_id).await
    }

    async fn runs_before(
        &self,
        flow: &str,
        location: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<ProbeRun>, StoreError> {
        runs::runs_before(self, flow, location, before_ms, limit).await
    }

    async fn latest_runs(&self, limit: usize) -> Result<Vec<ProbeRun>, StoreError> {
        runs::latest_runs(self, limit).await
    }

    async fn stored_artifacts(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        runs::stored_artifacts(self, run_id).await
    }

    async fn flow_health(&self, now_ms: i64, since_ms: i64) -> Result<Vec<FlowHealth>, StoreError> {
        runs::flow_health(self, now_ms, since_ms).await
    }

    async fn alert_records(&self) -> Result<BTreeMap<String, AlertRecord>, StoreError> {
        alerts::alert_records(self).await
    }

    async fn alert_snapshot(
        &self,
        hours: Option<(i64, i64)>,
        runs_since_ms: i64,
    ) -> Result<Snapshot, StoreError> {
        alerts::alert_snapshot(self, hours, runs_since_ms).await
    }

    async fn evaluator_lease(&self, ttl_ms: i64) -> Result<Option<i64>, StoreError> {
        alerts::evaluator_lease(self, ttl_ms).await
    }

    fn lease_holder(&self) -> Option<(String, i64)> {
        alerts::lease_holder(self)
    }

    async fn record_evaluation(
        &self,
        evaluation: Evaluation,
        now_ms: i64,
        term: i64,
    ) -> Result<WriteOutcome, StoreError> {
        alerts::record_evaluation(self, evaluation, now_ms, term).await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<WriteOutcome, StoreError> {
        alerts::prune_alerts(self, before_ms).await
    }

    async fn alert_states(&self, state: Option<String>) -> Result<Vec<StoredState>, StoreError> {
        alerts::alert_states(self, state).await
    }

    async fn alert_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        alerts::alert_counts(self).await
    }

    async fn alerts_in_state(
        &self,
        state: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredState>, StoreError> {
        alerts::alerts_in_state(self, state, offset, limit).await
    }

    async fn alert(&self, id: &str) -> Result<Option<StoredState>, StoreError> {
        alerts::alert(self, id).await
    }

    async fn transitions(
        &self,
        alert: Option<String>,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<TransitionView>, StoreError> {
        alerts::transitions(self, alert, since_ms, limit).await
    }

    async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<WriteOutcome, StoreError> {
        alerts::acknowledge(self, id, by, now_ms).await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        alerts::silences(self, now_ms).await
    }

    async fn add_silence(&self, silence: Silence) -> Result<WriteOutcome, StoreError> {
        alerts::add_silence(self, silence).await
    }

    async fn end_silence(&self, id: &str) -> Result<WriteOutcome, StoreError> {
        alerts::end_silence(self, id).await
    }

    async fn claim_outbox(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        alerts::claim_outbox(self, now_ms, limit).await
    }

    async fn record_delivery(
        &self,
        seq: i64,
        outcome: Delivery,
        now_ms: i64,
    ) -> Result<WriteOutcome, StoreError> {
        alerts::record_delivery(self, seq, outcome, now_ms).await
    }

    async fn dead_letters(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        alerts::dead_letters(self, limit).await
    }

    async fn outbox_for_alert(
        &self,
        alert_id: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        alerts::outbox_for_alert(self, alert_id, limit).await
    }

    async fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError> {
        alerts::outbox_all(self).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        alerts::outbox_stats(self).await
    }

    fn readiness(&self, _min_free_bytes: u64) -> Result<(), String> {
        // The disk is the database server's; what this replica can see is
        // whether its writes commit and whether it can get a connection.
        if let Some(why) = self.writer.stats.health.failing() {
            return Err(format!("writes to PostgreSQL are failing: {why}"));
        }
        if !self
            .writer
            .stats
            .alive
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err("the PostgreSQL writer task has stopped".into());
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        ingest::maintain(self).await
    }

    fn writer_stats(&self) -> &WriterStats {
        &self.writer.stats
    }

    fn queue_depth(&self) -> usize {
        self.writer.queue_depth()
    }

    fn size_bytes(&self) -> u64 {
        // Not local: the database server's disk (`/metrics` shows 0).
        0
    }

    fn pool_use(&self) -> Option<PoolUse> {
        let status = self.pool.status();
        Some(PoolUse {
            open: status.size,
            idle: status.available,
            max: status.max_size,
            waiting: status.waiting,
        })
    }
}
