//! The SQLite backend of [`Storage`]: each read runs one of the store's query
//! functions on a pooled read-only connection ([`SqliteStore::read`]), each write
//! is a [`WriteOp`] for the single writer thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::ProbeRun;

use super::alerts::{self, Delivery, OutboxRow, OutboxStats, StoredState, TransitionView};
use super::attribution::{self, AttributionKind, AttributionRank};
use super::flows::{self, FlowHealth};
use super::query::{self, Breakdown, Filter, PageRank, SeriesPoint, Summary};
use super::storage::{NewArtifact, NewPageView, NewRun, Storage};
use super::views::{self, Dimensions};
use super::writer::{WriteOp, Writer, WriterStats};
use super::{StoreError, WriteOutcome, health, migrations, writer};
use crate::alerts::engine::{Evaluation, Snapshot};
use crate::alerts::silences::Silence;
use crate::alerts::state::AlertRecord;

/// Open a connection with the settings every connection needs.
pub(super) fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // With WAL, NORMAL syncs at checkpoints only and can lose the last commits
        // on power loss; FULL syncs each commit, which is what "acknowledged means
        // on disk" requires. Group commit keeps the cost per request small.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A checkpoint that resets the WAL also shrinks it to this size.
        conn.pragma_update(None, "journal_size_limit", health::JOURNAL_SIZE_LIMIT)?;
        // The writer's working set (index pages of the current hour, rollup
        // rows): with SQLite's default 2 MB cache it re-read them from the
        // file every batch (a profile showed a fifth of its time in the
        // kernel's read copies). 32 MB bounds what it adds to the RSS.
        conn.pragma_update(None, "cache_size", -32_768)?;
    }
    Ok(conn)
}

/// The SQLite backend: one writer thread, a pool of read-only connections.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) path: PathBuf,
    pub(super) writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl SqliteStore {
    /// Open (creating and migrating as needed) and start the writer thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = open_connection(path, false)?;
        migrations::migrate(&mut conn)?;
        // Rollup changes a crash kept from being written: from the raw rows.
        let recovered = writer::recover_rollups(&mut conn)?;
        if recovered > 0 {
            tracing::info!(
                rows = recovered,
                "rollups recomputed for raw rows stored since their last write"
            );
        }
        let writer = Writer::start(conn);
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read on a pooled read-only connection, off the async runtime.
    /// Rollup changes the writer still holds are written first, so a read
    /// sees every acknowledged write in the rollups too.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self
            .writer
            .stats
            .rollups_pending
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // A failed write shows in `/readyz`; the read still answers.
            let _ = self.writer.write(writer::WriteOp::WriteRollups).await;
        }
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.lock().unwrap().pop() {
                Some(c) => c,
                None => open_connection(&path, true)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap();
            if pool.len() < 8 {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Size of the database and its WAL in bytes.
    pub fn size_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

#[async_trait]
impl Storage for SqliteStore {
    async fn append_page_views(&self, views: Vec<NewPageView>) -> Result<(), StoreError> {
        let ops = views
            .into_iter()
            .map(|v| WriteOp::Beacon {
                beacon: v.beacon,
                page_group: v.page_group,
                received_ms: v.received_ms,
            })
            .collect();
        for outcome in self.writer.write_all(ops).await {
            outcome?;
        }
        Ok(())
    }

    async fn record_run(&self, run: NewRun) -> Result<WriteOutcome, StoreError> {
        self.writer
            .write(WriteOp::Run {
                run: run.run,
                page_view_groups: run.page_view_groups,
                received_ms: run.received_ms,
            })
            .await
    }

    async fn record_artifact(&self, a: NewArtifact) -> Result<WriteOutcome, StoreError> {
        self.writer
            .write(WriteOp::Artifact {
                run_id: a.run_id,
                name: a.name,
                content_type: a.content_type,
                content: a.content,
                sha256: a.sha256,
            })
            .await
    }

    async fn prune(&self, before_ms: i64) -> Result<WriteOutcome, StoreError> {
        self.writer.write(WriteOp::Prune { before_ms }).await
    }

    async fn summary(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Summary, StoreError> {
        let f = filter.clone();
        self.read(move |c| query::summary(c, metric, from_ms, to_ms, &f))
            .await
    }

    async fn raw_values(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<f64>, StoreError> {
        let f = filter.clone();
        self.read(move |c| query::raw_values(c, metric, from_ms, to_ms, &f))
            .await
    }

    async fn series(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let f = filter.clone();
        self.read(move |c| query::series(c, metric, from_ms, to_ms, bucket_ms, &f))
            .await
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
        let f = filter.clone();
        self.read(move |c| query::breakdown(c, metric, from_ms, to_ms, bucket_ms, previous, &f))
            .await
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
        let f = filter.clone();
        self.read(move |c| {
            query::breakdowns(c, metric, from_ms, to_ms, bucket_ms, previous, &f, by_site)
        })
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
        let f = filter.clone();
        self.read(move |c| query::top_pages(c, metric, from_ms, to_ms, &f, limit))
            .await
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
        let f = filter.clone();
        self.read(move |c| attribution::top_attribution(c, metric, kind, from_ms, to_ms, &f, limit))
            .await
    }

    async fn recent_runs(
        &self,
        flow: Option<String>,
        location: Option<String>,
        outcome: Option<String>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ProbeRun>, StoreError> {
        self.read(move |c| {
            query::recent_runs(
                c,
                flow.as_deref(),
                location.as_deref(),
                outcome.as_deref(),
                since_ms,
                limit,
            )
        })
        .await
    }

    async fn artifact(
        &self,
        run_id: &str,
        name: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let (run_id, name) = (run_id.to_string(), name.to_string());
        self.read(move |c| query::artifact(c, &run_id, &name)).await
    }

    async fn dimensions(&self) -> Result<Dimensions, StoreError> {
        self.read(views::dimensions).await
    }

    async fn runs_page(
        &self,
        flow: Option<String>,
        location: Option<String>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ProbeRun>, bool), StoreError> {
        self.read(move |c| views::runs_page(c, flow.as_deref(), location.as_deref(), offset, limit))
            .await
    }

    async fn count_runs(
        &self,
        flow: Option<String>,
        location: Option<String>,
    ) -> Result<u64, StoreError> {
        self.read(move |c| views::count_runs(c, flow.as_deref(), location.as_deref()))
            .await
    }

    async fn run(&self, run_id: &str) -> Result<Option<(ProbeRun, i64)>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |c| views::run(c, &run_id)).await
    }

    async fn runs_before(
        &self,
        flow: &str,
        location: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<ProbeRun>, StoreError> {
        let (flow, location) = (flow.to_string(), location.to_string());
        self.read(move |c| views::runs_before(c, &flow, &location, before_ms, limit))
            .await
    }

    async fn latest_runs(&self, limit: usize) -> Result<Vec<ProbeRun>, StoreError> {
        self.read(move |c| views::latest_runs(c, limit)).await
    }

    async fn stored_artifacts(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |c| views::stored_artifacts(c, &run_id))
            .await
    }

    async fn flow_health(&self, now_ms: i64, since_ms: i64) -> Result<Vec<FlowHealth>, StoreError> {
        self.read(move |c| flows::flow_health(c, now_ms, since_ms))
            .await
    }

    async fn alert_records(&self) -> Result<BTreeMap<String, AlertRecord>, StoreError> {
        self.read(alerts::load_states).await
    }

    async fn alert_snapshot(
        &self,
        hours: Option<(i64, i64)>,
        runs_since_ms: i64,
    ) -> Result<Snapshot, StoreError> {
        self.read(move |c| alerts::load_snapshot(c, hours, runs_since_ms))
            .await
    }

    async fn evaluator_lease(&self, _ttl_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(Some(alerts::SQLITE_LEASE_TERM))
    }

    fn lease_holder(&self) -> Option<(String, i64)> {
        None
    }

    async fn record_evaluation(
        &self,
        evaluation: Evaluation,
        now_ms: i64,
        term: i64,
    ) -> Result<WriteOutcome, StoreError> {
        if term != alerts::SQLITE_LEASE_TERM {
            return Err(StoreError::Conflict(format!(
                "an evaluation under lease term {term}: SQLite's only term is {}",
                alerts::SQLITE_LEASE_TERM
            )));
        }
        self.writer
            .write(WriteOp::AlertEvaluation { evaluation, now_ms })
            .await
    }

    async fn prune_alerts(&self, before_ms: i64) -> Result<WriteOutcome, StoreError> {
        self.writer.write(WriteOp::AlertPrune { before_ms }).await
    }

    async fn alert_states(&self, state: Option<String>) -> Result<Vec<StoredState>, StoreError> {
        self.read(move |c| alerts::states(c, state.as_deref()))
            .await
    }

    async fn alert_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(views::alert_counts).await
    }

    async fn alerts_in_state(
        &self,
        state: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredState>, StoreError> {
        let state = state.to_string();
        self.read(move |c| views::alerts_in_state(c, &state, offset, limit))
            .await
    }

    async fn alert(&self, id: &str) -> Result<Option<StoredState>, StoreError> {
        let id = id.to_string();
        self.read(move |c| views::alert(c, &id)).await
    }

    async fn transitions(
        &self,
        alert: Option<String>,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<TransitionView>, StoreError> {
        self.read(move |c| alerts::transitions(c, alert.as_deref(), since_ms, limit))
            .await
    }

    async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<WriteOutcome, StoreError> {
        self.writer
            .write(WriteOp::Acknowledge {
                id: id.to_string(),
                by: by.to_string(),
                now_ms,
            })
            .await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        self.read(move |c| alerts::silences(c, now_ms)).await
    }

    async fn add_silence(&self, silence: Silence) -> Result<WriteOutcome, StoreError> {
        self.writer.write(WriteOp::Silence(silence)).await
    }

    async fn end_silence(&self, id: &str) -> Result<WriteOutcome, StoreError> {
        self.writer
            .write(WriteOp::EndSilence { id: id.to_string() })
            .await
    }

    async fn claim_outbox(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |c| alerts::due(c, now_ms, limit)).await
    }

    async fn record_delivery(
        &self,
        seq: i64,
        outcome: Delivery,
        now_ms: i64,
    ) -> Result<WriteOutcome, StoreError> {
        self.writer
            .write(WriteOp::Delivery {
                seq,
                outcome,
                now_ms,
            })
            .await
    }

    async fn dead_letters(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |c| alerts::dead_letters(c, limit)).await
    }

    async fn outbox_for_alert(
        &self,
        alert_id: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let alert_id = alert_id.to_string();
        self.read(move |c| views::outbox_for_alert(c, &alert_id, limit))
            .await
    }

    async fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(alerts::outbox_all).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.read(alerts::outbox_stats).await
    }

    fn readiness(&self, min_free_bytes: u64) -> Result<(), String> {
        SqliteStore::readiness(self, min_free_bytes)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        SqliteStore::ping(self).await
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.checkpoint())
            .await
            .map_err(|_| StoreError::Internal("the WAL checkpoint task panicked".into()))?
    }

    fn writer_stats(&self) -> &WriterStats {
        &self.writer.stats
    }

    fn queue_depth(&self) -> usize {
        self.writer.queue_depth()
    }

    fn size_bytes(&self) -> u64 {
        SqliteStore::size_bytes(self)
    }
}
