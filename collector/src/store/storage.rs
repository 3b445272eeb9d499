//! The storage boundary: what the rest of the collector may ask of a
//! database, as one trait with plain domain types in and out (no connection,
//! no closure, no SQL). [`SqliteStore`] implements it today; the PostgreSQL
//! backend of a scaled-out deployment is a second implementation chosen at
//! startup, and callers hold either as `Arc<dyn Storage>` (in [`super::Store`]).
//!
//! Why `async_trait`: the methods must be callable through `dyn Storage` so
//! the backend can be picked at runtime, and a native `async fn` in a trait is
//! not dyn-compatible. `async_trait` boxes each returned future (one
//! allocation per call, next to a blocking-pool hop or a database round
//! trip), which is the price of the runtime choice.
//!
//! Writes are answered only after their transaction has committed; the
//! backend groups concurrent writes into batches (SQLite: one writer thread;
//! PostgreSQL: one writer task per replica), so a caller with one beacon and
//! a caller with many use the same method.

use std::collections::BTreeMap;

use async_trait::async_trait;
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::{Beacon, ProbeRun};

use super::alerts::{Delivery, OutboxRow, OutboxStats, StoredState, TransitionView};
use super::attribution::{AttributionKind, AttributionRank};
use super::flows::FlowHealth;
use super::query::{Breakdown, Filter, PageRank, SeriesPoint, Summary};
use super::views::Dimensions;
use super::writer::WriterStats;
use super::{StoreError, WriteOutcome};
use crate::alerts::engine::{Evaluation, Snapshot};
use crate::alerts::silences::Silence;
use crate::alerts::state::AlertRecord;

/// One page view's beacon, grouped and stamped at ingest.
#[derive(Debug, Clone)]
pub struct NewPageView {
    pub beacon: Beacon,
    pub page_group: String,
    pub received_ms: i64,
}

/// A probe run as an agent sent it, with the page group of each of its
/// `page_views` (same order), grouped by the rules beacons are grouped by.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run: ProbeRun,
    pub page_view_groups: Vec<String>,
    pub received_ms: i64,
}

/// A file an agent uploaded for one of its runs (screenshot, trace, HAR).
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub run_id: String,
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
    /// Hex SHA-256 of `content`: an identical re-upload is `AlreadyStored`.
    pub sha256: String,
}

/// Everything the collector stores and reads. Every method is one unit of
/// work for the backend; callers compose them and never see how it stores.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    // ---- ingest (answered after commit) ----

    /// Store page views; a re-report of a page view replaces its values.
    async fn append_page_views(&self, views: Vec<NewPageView>) -> Result<(), StoreError>;

    /// Store a probe run and its samples; the same run id again is `AlreadyStored`.
    async fn record_run(&self, run: NewRun) -> Result<WriteOutcome, StoreError>;

    async fn record_artifact(&self, artifact: NewArtifact) -> Result<WriteOutcome, StoreError>;

    /// Delete one slice of raw rows and runs older than `before_ms`
    /// (`WriteOutcome::Pruned`; `more` says to call again). Rollups stay.
    async fn prune(&self, before_ms: i64) -> Result<WriteOutcome, StoreError>;

    // ---- queries ----

    async fn summary(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Summary, StoreError>;

    /// Every sample's value in the range, from the raw rows.
    async fn raw_values(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<f64>, StoreError>;

    async fn series(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    /// Summary, series, distribution and device split of one filter in one
    /// pass; `previous`: also the equally long period before.
    async fn breakdown(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        previous: bool,
        filter: &Filter,
    ) -> Result<Breakdown, StoreError>;

    /// [`Storage::breakdown`] per site (`by_site`), or for all together.
    #[allow(clippy::too_many_arguments)]
    async fn breakdowns(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        previous: bool,
        filter: &Filter,
        by_site: bool,
    ) -> Result<Vec<(String, Breakdown)>, StoreError>;

    async fn top_pages(
        &self,
        metric: Metric,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<PageRank>, StoreError>;

    #[allow(clippy::too_many_arguments)]
    async fn top_attribution(
        &self,
        metric: Metric,
        kind: AttributionKind,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<AttributionRank>, StoreError>;

    /// Runs, newest first, matching the given fields.
    async fn recent_runs(
        &self,
        flow: Option<String>,
        location: Option<String>,
        outcome: Option<String>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ProbeRun>, StoreError>;

    /// An artifact's content type and bytes.
    async fn artifact(
        &self,
        run_id: &str,
        name: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError>;

    // ---- what the dashboard reads besides those ----

    /// The filter choices: sites, page groups, devices, flows, locations.
    async fn dimensions(&self) -> Result<Dimensions, StoreError>;

    /// One page of runs, newest first, and whether more follow.
    async fn runs_page(
        &self,
        flow: Option<String>,
        location: Option<String>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ProbeRun>, bool), StoreError>;

    async fn count_runs(
        &self,
        flow: Option<String>,
        location: Option<String>,
    ) -> Result<u64, StoreError>;

    /// A run and when it was received.
    async fn run(&self, run_id: &str) -> Result<Option<(ProbeRun, i64)>, StoreError>;

    /// Runs of one flow × location started before `before_ms`, newest first.
    async fn runs_before(
        &self,
        flow: &str,
        location: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<ProbeRun>, StoreError>;

    /// Each flow × location's latest run.
    async fn latest_runs(&self, limit: usize) -> Result<Vec<ProbeRun>, StoreError>;

    /// A run's artifacts: name, content type, size in bytes.
    async fn stored_artifacts(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, String, u64)>, StoreError>;

    /// Each flow × location's last result, pass rate and staleness.
    async fn flow_health(&self, now_ms: i64, since_ms: i64) -> Result<Vec<FlowHealth>, StoreError>;

    // ---- alerts ----

    /// The engine's records by alert key.
    async fn alert_records(&self) -> Result<BTreeMap<String, AlertRecord>, StoreError>;

    /// What the engine evaluates: hourly histograms of the series in `hours`
    /// (`None`: none this time), runs since `runs_since_ms`, flow freshness.
    async fn alert_snapshot(
        &self,
        hours: Option<(i64, i64)>,
        runs_since_ms: i64,
    ) -> Result<Snapshot, StoreError>;

    /// Take or renew the evaluator lease for `ttl_ms`: `Some(term)` while
    /// this process holds it (and may evaluate alerts), `None` while another
    /// replica does. Exactly one holder at a time; the term grows at every
    /// change of holder. The holder calls this every few seconds (well within
    /// `ttl_ms`) to keep it; a holder that stops is replaced once `ttl_ms`
    /// has passed. (SQLite: one process owns the database, so it always
    /// holds the lease, under [`super::alerts::SQLITE_LEASE_TERM`].)
    async fn evaluator_lease(&self, ttl_ms: i64) -> Result<Option<i64>, StoreError>;

    /// Who holds the evaluator lease and under which term, as this process
    /// last saw it (for `/metrics`); `None` before the first look, and on
    /// SQLite, which has no lease shared with anyone.
    fn lease_holder(&self) -> Option<(String, i64)>;

    /// One evaluation's states, transitions and outbox rows, all or nothing,
    /// written only while this process holds the evaluator lease under
    /// `term` (what [`Storage::evaluator_lease`] returned before the
    /// evaluation read its data); otherwise nothing is written and the
    /// answer is `Conflict`.
    async fn record_evaluation(
        &self,
        evaluation: Evaluation,
        now_ms: i64,
        term: i64,
    ) -> Result<WriteOutcome, StoreError>;

    /// Forget sent outbox rows and ended silences older than `before_ms`.
    async fn prune_alerts(&self, before_ms: i64) -> Result<WriteOutcome, StoreError>;

    /// Alert states, all or those in `state`.
    async fn alert_states(&self, state: Option<String>) -> Result<Vec<StoredState>, StoreError>;

    /// How many alerts are in each state.
    async fn alert_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;

    async fn alerts_in_state(
        &self,
        state: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredState>, StoreError>;

    async fn alert(&self, id: &str) -> Result<Option<StoredState>, StoreError>;

    /// Transitions, newest first, of one alert or all.
    async fn transitions(
        &self,
        alert: Option<String>,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<TransitionView>, StoreError>;

    /// Acknowledge a firing alert (unknown: `NotFound`; not firing: `Conflict`).
    async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<WriteOutcome, StoreError>;

    /// Silences in force at `now_ms` or later.
    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError>;

    async fn add_silence(&self, silence: Silence) -> Result<WriteOutcome, StoreError>;

    async fn end_silence(&self, id: &str) -> Result<WriteOutcome, StoreError>;

    // ---- the email outbox ----

    /// Claim messages due for a delivery attempt at `now_ms`, oldest first:
    /// each is this caller's until it records the attempt. (SQLite has one
    /// outbox worker, so its claim is a read; a backend shared by replicas
    /// must lock the rows, with an expiry so a crashed sender's come back.)
    async fn claim_outbox(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError>;

    /// What a delivery attempt came to (sent, retry later, dead letter).
    async fn record_delivery(
        &self,
        seq: i64,
        outcome: Delivery,
        now_ms: i64,
    ) -> Result<WriteOutcome, StoreError>;

    async fn dead_letters(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError>;

    async fn outbox_for_alert(
        &self,
        alert_id: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    /// Every outbox row in order (tests and operators' inspection).
    async fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError>;

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;

    // ---- operations ----

    /// `Ok` when writes can be taken; otherwise the reason, for `/readyz`.
    fn readiness(&self, min_free_bytes: u64) -> Result<(), String>;

    /// Whether the database answers a read.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Periodic upkeep (SQLite: a truncating WAL checkpoint).
    async fn maintain(&self) -> Result<(), StoreError>;

    /// The writer's counters and health, for `/metrics` and `/readyz`.
    fn writer_stats(&self) -> &WriterStats;

    /// Writes waiting for the writer.
    fn queue_depth(&self) -> usize;

    /// Bytes the database takes where it lives (0 when not local).
    fn size_bytes(&self) -> u64;

    /// The connection pool's use, for a backend that keeps one (`/metrics`).
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }
}

/// Connections of a backend's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Open connections, idle or in use.
    pub open: usize,
    pub idle: usize,
    pub max: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}
