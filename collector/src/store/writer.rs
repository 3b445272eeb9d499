//! The single writer: a thread that owns the write connection, takes whatever
//! writes are queued, applies them in one transaction, commits, and only then
//! answers each request. Many concurrent beacons cost one fsync.
//!
//! Rollups (value histograms, attribution counts) change in memory and are
//! written one row per touched series and hour, at most [`MAX_ROLLUP_LAG`]
//! after the first unwritten change, or before any read ([`SqliteStore::read`] asks
//! for them with [`WriteOp::WriteRollups`] while some are pending): a reader
//! always sees rollups that count every acknowledged write. Under load many
//! batches merge into one write of each rollup row instead of one per batch. What a crash loses of them is
//! recomputed from the raw rows when the store opens ([`recover_rollups`]):
//! `rollup_state` says up to which raw row the rollups count, and
//! `rollup_journal` keeps re-reported rows as the rollups counted them.

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_core::wire::run::MAX_STEPS;
use vitalsign_core::wire::{Beacon, ProbeRun};

use super::StoreError;
use super::alerts::{self, Delivery};
use super::attribution::{AttributionDeltas, Counted, Dictionary, StoredAttribution};
use super::measurements::{self, PAGE_VIEW_STEP, Row, SeriesDims, SeriesIds, SeriesRef};
use crate::alerts::engine::Evaluation;
use crate::alerts::silences::Silence;
use crate::histogram::{Histogram, bucket_of};

/// Most writes in one transaction: bounds the latency a big burst adds.
const MAX_BATCH: usize = 1024;
/// Longest a rollup change waits in memory while ingest is busy. Readers do
/// not see the lag (a read has the writer write pending changes first); it
/// bounds what a crash leaves to recompute from the raw rows, and a longer
/// one rewrites each busy rollup row less often.
const MAX_ROLLUP_LAG: std::time::Duration = std::time::Duration::from_millis(5000);
/// Most distinct rollup rows merged in memory before they are written.
const MAX_PENDING_ROLLUPS: usize = 20_000;
const QUEUE_CAPACITY: usize = 16 * 1024;

pub enum WriteOp {
    Beacon {
        beacon: Beacon,
        page_group: String,
        received_ms: i64,
    },
    Run {
        run: ProbeRun,
        /// The page group of each of `run.page_views` (same order), grouped
        /// by the rules RUM beacons are grouped by.
        page_view_groups: Vec<String>,
        received_ms: i64,
    },
    Artifact {
        run_id: String,
        name: String,
        content_type: String,
        content: Vec<u8>,
        sha256: String,
    },
    Prune {
        before_ms: i64,
    },
    /// The alert engine's states, transitions and outbox rows of one
    /// evaluation, all or nothing.
    AlertEvaluation {
        evaluation: Evaluation,
        now_ms: i64,
    },
    /// Sent outbox rows and ended silences past retention.
    AlertPrune {
        before_ms: i64,
    },
    /// What an outbox message's delivery attempt came to.
    Delivery {
        seq: i64,
        outcome: Delivery,
        now_ms: i64,
    },
    /// Acknowledge a firing alert (unknown: not found; not firing: conflict).
    Acknowledge {
        id: String,
        by: String,
        now_ms: i64,
    },
    Silence(Silence),
    EndSilence {
        id: String,
    },
    /// Write the pending rollup changes now (a reader is about to read them).
    WriteRollups,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Stored,
    /// Idempotent retry: the document was already stored; nothing changed.
    AlreadyStored,
    /// Raw rows (page views, probe steps) and runs deleted; `more`: a slice
    /// was full, so older rows may remain (prune again).
    Pruned {
        rows: usize,
        runs: usize,
        more: bool,
    },
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// Numbers for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub writes: AtomicU64,
    pub commit_seconds: crate::metrics::SecondsHistogram,
    pub last_batch_size: AtomicU64,
    pub max_batch_size: AtomicU64,
    pub alive: std::sync::atomic::AtomicBool,
    /// Recent storage failures, for `/readyz`.
    pub health: super::health::WriteHealth,
    /// Committed rollup changes wait in the writer's memory.
    pub rollups_pending: std::sync::atomic::AtomicBool,
    /// Transactions that wrote rollups (each merging one or more batches).
    pub rollup_writes: AtomicU64,
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        stats.alive.store(true, Relaxed);
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run(conn, rx, &thread_stats);
                thread_stats.alive.store(false, Relaxed);
            })
            .expect("spawning the writer thread");
        Writer { queue, stats }
    }

    /// Queue a write and wait until its batch has committed.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let result = answer.await.map_err(|_| StoreError::WriterGone)?;
        self.stats.health.record(&result);
        result
    }

    /// Queue several writes at once and wait until each has committed; they
    /// are queued together, so they share a batch unless it fills.
    pub async fn write_all(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>> {
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            let (reply, answer) = oneshot::channel();
            if self.queue.send(Job { op, reply }).await.is_err() {
                answers.push(None);
                break;
            }
            answers.push(Some(answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            let result = match answer {
                Some(a) => a.await.unwrap_or(Err(StoreError::WriterGone)),
                None => Err(StoreError::WriterGone),
            };
            self.stats.health.record(&result);
            results.push(result);
        }
        results
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    pub fn is_alive(&self) -> bool {
        self.stats.alive.load(Relaxed) && !self.queue.is_closed()
    }
}

/// The writer loop ends when every sender is gone (shutdown): by then every
/// queued job has been committed and answered, and the rollups are written.
fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, stats: &WriterStats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Live as long as the thread: a selector or series seen before costs no SQL.
    let mut caches = Caches::default();
    let mut pending = Pending::default();
    while let Some(first) = rx.blocking_recv() {
        caches.dictionary.trim();
        caches.series.trim();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let results = apply_batch(&mut conn, &mut batch, &mut caches, &mut pending, stats);
        stats.commit_seconds.observe(started.elapsed());
        stats.batches.fetch_add(1, Relaxed);
        stats.writes.fetch_add(batch.len() as u64, Relaxed);
        stats.last_batch_size.store(batch.len() as u64, Relaxed);
        stats.max_batch_size.fetch_max(batch.len() as u64, Relaxed);
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
    if let Err(e) = pending.write_out(&mut conn, &mut caches.series) {
        // The next start recomputes them from the raw rows.
        super::health::error_limited("writing rollups at shutdown failed", &e.to_string());
    }
}

/// What the writer remembers between batches.
#[derive(Default)]
struct Caches {
    dictionary: Dictionary,
    series: SeriesIds,
}

impl Caches {
    fn batch_failed(&mut self) {
        self.dictionary.batch_failed();
        self.series.batch_failed();
    }
}

/// Rollup changes of committed batches not yet written.
#[derive(Default)]
struct Pending {
    deltas: Deltas,
    /// When the oldest of them was committed.
    since: Option<Instant>,
    /// `rollup_state.rolled_up_through` (read when first needed).
    rolled_up_through: Option<i64>,
    /// A failed commit took changes with it: recompute from the raw rows.
    lost: bool,
}

impl Pending {
    fn due(&self) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= MAX_ROLLUP_LAG)
            || self.deltas.rollups.deltas.len() >= MAX_PENDING_ROLLUPS
    }

    fn watermark(&mut self, conn: &Connection) -> rusqlite::Result<i64> {
        if let Some(w) = self.rolled_up_through {
            return Ok(w);
        }
        let w = conn.query_row("SELECT rolled_up_through FROM rollup_state", [], |r| {
            r.get(0)
        })?;
        self.rolled_up_through = Some(w);
        Ok(w)
    }

    /// Write what is pending in its own transaction (at shutdown).
    fn write_out(&mut self, conn: &mut Connection, series: &mut SeriesIds) -> rusqlite::Result<()> {
        if self.since.is_none() && !self.lost {
            return Ok(());
        }
        if self.lost {
            recover_rollups(conn)?;
            *self = Pending::default();
            return Ok(());
        }
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another store opened on this file meanwhile (a restart in the same
        // process) recomputed these changes from the raw rows: do not add
        // them twice.
        let through: i64 = tx.query_row("SELECT rolled_up_through FROM rollup_state", [], |r| {
            r.get(0)
        })?;
        if Some(through) == self.rolled_up_through {
            std::mem::take(&mut self.deltas).flush(&mut tx, series)?;
            mark_rolled_up(&tx)?;
        }
        tx.commit()?;
        *self = Pending::default();
        Ok(())
    }
}

/// The rollups count every raw row stored so far: move the watermark and
/// forget the journal. In the transaction that writes the rollups.
fn mark_rolled_up(tx: &Connection) -> rusqlite::Result<i64> {
    let through: i64 = tx.query_row("SELECT coalesce(max(id), 0) FROM measurements", [], |r| {
        r.get(0)
    })?;
    tx.prepare_cached("UPDATE rollup_state SET rolled_up_through = max(rolled_up_through, ?1)")?
        .execute([through])?;
    tx.prepare_cached("DELETE FROM rollup_journal")?
        .execute([])?;
    Ok(through)
}

/// After a crash (or a failed commit): add what rows stored after the
/// watermark contributed and correct the journaled ones, so the rollups count
/// exactly the raw rows again. Returns how many rows it looked at.
pub(super) fn recover_rollups(conn: &mut Connection) -> rusqlite::Result<usize> {
    // Immediate: it reads, then writes; a writer still finishing (a restart
    // in the same process) is waited for instead of failing the upgrade.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let through: i64 = tx.query_row("SELECT rolled_up_through FROM rollup_state", [], |r| {
        r.get(0)
    })?;
    let journaled = measurements::journaled(&tx)?;
    let mut series = SeriesIds::default();
    let mut deltas = Deltas::default();
    for (before, now) in &journaled {
        // A row pruned since keeps what the rollups counted of it: its newer
        // values went with it, and rollups outlive raw rows anyway.
        if let Some(now) = now.as_ref().filter(|n| n.id <= through) {
            deltas.contributions(before, -1);
            deltas.contributions(now, 1);
        }
    }
    let mut seen = journaled.len();
    // In slices, so memory stays bounded whatever the gap (normally a
    // fraction of a second of rows).
    let mut after = through;
    loop {
        let rows = measurements::rows_after(&tx, after, RECOVERY_SLICE)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        seen += rows.len();
        for row in &rows {
            deltas.contributions(row, 1);
        }
        std::mem::take(&mut deltas).flush(&mut tx, &mut series)?;
    }
    if seen == 0 {
        return Ok(0);
    }
    std::mem::take(&mut deltas).flush(&mut tx, &mut series)?;
    mark_rolled_up(&tx)?;
    tx.commit()?;
    Ok(seen)
}

/// Raw rows read at a time while recomputing rollups.
const RECOVERY_SLICE: usize = 10_000;

/// Apply every job inside one transaction. Beacons, runs, artifacts and
/// prunes check everything they can refuse before they write, so they need no
/// savepoint: a refused job wrote nothing, and a failing statement (I/O, a
/// full disk) fails the whole batch. Only the alert writes, which may refuse
/// after writing, run in a savepoint each (rare: a few per minute). If the
/// commit itself fails, every job gets the error: nothing is acknowledged
/// that is not on disk. The pending rollup changes are written in the same
/// transaction when they are due or a reader asked for them.
fn apply_batch(
    conn: &mut Connection,
    batch: &mut [Job],
    caches: &mut Caches,
    pending: &mut Pending,
    stats: &WriterStats,
) -> Vec<Result<WriteOutcome, StoreError>> {
    if pending.lost {
        match recover_rollups(conn) {
            Ok(_) => *pending = Pending::default(),
            Err(e) => super::health::error_limited("recomputing rollups failed", &e.to_string()),
        }
    }
    let mut touched = false;
    let commit = (|| -> Result<Vec<Result<WriteOutcome, StoreError>>, rusqlite::Error> {
        let watermark = pending.watermark(conn)?;
        let mut tx = conn.transaction()?;
        // The batch's rollup changes go straight into the pending ones (no
        // per-batch map to merge afterwards): if the batch fails, they are
        // marked lost below and recomputed from the raw rows.
        touched = true;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch.iter_mut() {
            let result = match &job.op {
                op if op.may_refuse_after_writing() => {
                    let mut sp = tx.savepoint()?;
                    let result = apply_alert(&sp, op);
                    if result.is_ok() {
                        sp.commit()?;
                    } else {
                        sp.rollback()?;
                    }
                    result
                }
                WriteOp::WriteRollups => Ok(WriteOutcome::Stored),
                op => match apply(&tx, op, &mut pending.deltas, caches, watermark) {
                    // A statement failed: the transaction may be half applied.
                    Err(StoreError::Sqlite(e)) => return Err(e),
                    other => other,
                },
            };
            caches.dictionary.job_done(true);
            results.push(result);
        }
        if pending.since.is_none() && pending.deltas.is_empty() {
            tx.commit()?;
            return Ok(results);
        }
        let asked = batch.iter().any(|j| matches!(j.op, WriteOp::WriteRollups));
        // While lost (their recomputation failed, say on a full disk) the
        // pending changes are not what the raw rows hold: never write them;
        // the recomputation that succeeds later counts every row since.
        if (asked || pending.due()) && !pending.lost {
            std::mem::take(&mut pending.deltas).flush(&mut tx, &mut caches.series)?;
            let through = mark_rolled_up(&tx)?;
            tx.commit()?;
            *pending = Pending {
                rolled_up_through: Some(through),
                ..Pending::default()
            };
            stats.rollups_pending.store(false, Release);
            stats.rollup_writes.fetch_add(1, Relaxed);
        } else {
            tx.commit()?;
            pending.since.get_or_insert_with(Instant::now);
            // Before the replies go out: a reader who saw one asks for them.
            stats.rollups_pending.store(true, Release);
        }
        Ok(results)
    })();
    match commit {
        Ok(results) => results,
        Err(e) => {
            caches.batch_failed();
            if touched {
                // The pending changes hold this batch's, or went into the
                // failed transaction: recompute them from the raw rows.
                pending.lost = true;
            }
            super::health::error_limited(
                "batch commit failed; no write of this batch was acknowledged",
                &e.to_string(),
            );
            batch
                .iter()
                .map(|_| {
                    Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                        Some(e.to_string()),
                    )))
                })
                .collect()
        }
    }
}

/// Everything a batch changes besides the rows it writes.
#[derive(Default)]
struct Deltas {
    rollups: RollupDeltas,
    attribution: AttributionDeltas,
}

impl Deltas {
    fn flush(self, tx: &mut Transaction, series: &mut SeriesIds) -> rusqlite::Result<()> {
        self.rollups.flush(tx, series)?;
        self.attribution.flush(tx, series)
    }

    fn is_empty(&self) -> bool {
        self.rollups.deltas.is_empty() && self.attribution.is_empty()
    }

    /// Add (`sign` 1) or take back (`sign` -1) everything a stored row counts for.
    fn contributions(&mut self, stored: &measurements::Stored, sign: i64) {
        for (metric, value) in stored.row.present() {
            self.add(
                stored.series,
                stored.ts_ms,
                metric,
                value,
                stored.row.attribution(metric).as_ref(),
                sign,
            );
        }
    }
}

/// Most raw rows one prune deletes: a day of raw rows goes in slices between
/// ingest batches instead of one long transaction that stalls the writer.
pub const PRUNE_SLICE: usize = 1_000;

fn apply(
    tx: &Connection,
    op: &WriteOp,
    deltas: &mut Deltas,
    caches: &mut Caches,
    watermark: i64,
) -> Result<WriteOutcome, StoreError> {
    match op {
        WriteOp::Beacon {
            beacon,
            page_group,
            received_ms,
        } => {
            let series = caches.series.id(
                tx,
                &SeriesRef {
                    site: &beacon.site,
                    page_group,
                    device: beacon.device.map_or("unknown", |d| d.as_str()),
                    source: "rum",
                    flow: "",
                    step: "",
                    location: "",
                },
            )?;
            let mut row = Row::default();
            for report in &beacon.reports {
                let a = caches.dictionary.resolve(tx, beacon, report)?;
                row.navigation = Some(a.navigation);
                row.connection = Some(a.connection);
                row.set(report.metric, report.value, Some(&a));
            }
            write_row(
                tx,
                *received_ms,
                series,
                &beacon.page_view_id,
                PAGE_VIEW_STEP,
                row,
                deltas,
                watermark,
            )?;
            Ok(WriteOutcome::Stored)
        }
        WriteOp::Run {
            run,
            page_view_groups,
            received_ms,
        } => {
            // Refused (overflowing step times) before anything is written.
            let samples = run_samples(run, page_view_groups)?;
            let document = serde_json::to_string(run).expect("a ProbeRun always serialises");
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO runs (run_id, flow, location, outcome, started_at_ms, received_ms, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    run.run_id,
                    run.flow,
                    run.location,
                    run.outcome.as_str(),
                    run.started_at_ms as i64,
                    received_ms,
                    document
                ],
            )?;
            if inserted == 0 {
                return Ok(WriteOutcome::AlreadyStored);
            }
            for sample in samples {
                let series = caches.series.id(tx, &sample.series.as_ref())?;
                write_row(
                    tx,
                    sample.ts_ms,
                    series,
                    &run.run_id,
                    sample.step_index,
                    sample.row,
                    deltas,
                    watermark,
                )?;
            }
            Ok(WriteOutcome::Stored)
        }
        WriteOp::Artifact {
            run_id,
            name,
            content_type,
            content,
            sha256,
        } => {
            let document: Option<String> = tx
                .query_row(
                    "SELECT document FROM runs WHERE run_id = ?1",
                    [run_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(document) = document else {
                return Err(StoreError::NotFound(format!(
                    "run {run_id} is not stored; upload the run first"
                )));
            };
            let run: ProbeRun = serde_json::from_str(&document).map_err(|e| {
                StoreError::Corrupt(format!("stored run {run_id} is unreadable: {e}"))
            })?;
            let Some(listed) = run.artifacts.iter().find(|a| &a.name == name) else {
                return Err(StoreError::NotFound(format!(
                    "run {run_id} lists no artifact named {name:?}"
                )));
            };
            if !listed.sha256.eq_ignore_ascii_case(sha256) {
                return Err(StoreError::Invalid(format!(
                    "content sha256 {sha256} does not match the run's artifacts entry {}",
                    listed.sha256
                )));
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO artifacts (run_id, name, content_type, sha256, content) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, name, content_type, sha256, content],
            )?;
            Ok(if inserted == 0 {
                WriteOutcome::AlreadyStored
            } else {
                WriteOutcome::Stored
            })
        }
        WriteOp::Prune { before_ms } => {
            // Rollups keep the history; only raw rows and run documents go,
            // oldest first, at most a slice of each per write.
            let slice = PRUNE_SLICE as i64;
            let rows = tx
                .prepare_cached(
                    "DELETE FROM measurements WHERE id IN
                         (SELECT id FROM measurements WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
                )?
                .execute(params![before_ms, slice])?;
            tx.prepare_cached(
                "DELETE FROM artifacts WHERE run_id IN
                     (SELECT run_id FROM runs WHERE started_at_ms < ?1 ORDER BY started_at_ms LIMIT ?2)",
            )?
            .execute(params![before_ms, slice])?;
            let runs = tx
                .prepare_cached(
                    "DELETE FROM runs WHERE run_id IN
                         (SELECT run_id FROM runs WHERE started_at_ms < ?1 ORDER BY started_at_ms LIMIT ?2)",
                )?
                .execute(params![before_ms, slice])?;
            Ok(WriteOutcome::Pruned {
                rows,
                runs,
                more: rows == PRUNE_SLICE || runs == PRUNE_SLICE,
            })
        }
        alert => apply_alert(tx, alert),
    }
}

impl WriteOp {
    /// The alert writes check what they change as they go (an acknowledgement
    /// of an alert that stopped firing), so each runs in a savepoint.
    fn may_refuse_after_writing(&self) -> bool {
        !matches!(
            self,
            WriteOp::Beacon { .. }
                | WriteOp::Run { .. }
                | WriteOp::Artifact { .. }
                | WriteOp::Prune { .. }
                | WriteOp::WriteRollups
        )
    }
}

fn apply_alert(tx: &Connection, op: &WriteOp) -> Result<WriteOutcome, StoreError> {
    match op {
        WriteOp::AlertEvaluation { evaluation, now_ms } => alerts::apply(tx, evaluation, *now_ms),
        WriteOp::AlertPrune { before_ms } => alerts::prune(tx, *before_ms),
        WriteOp::Delivery {
            seq,
            outcome,
            now_ms,
        } => alerts::record_delivery(tx, *seq, outcome, *now_ms),
        WriteOp::Acknowledge { id, by, now_ms } => alerts::acknowledge(tx, id, by, *now_ms),
        WriteOp::Silence(silence) => alerts::insert_silence(tx, silence),
        WriteOp::EndSilence { id } => alerts::delete_silence(tx, id),
        WriteOp::Beacon { .. }
        | WriteOp::Run { .. }
        | WriteOp::Artifact { .. }
        | WriteOp::Prune { .. }
        | WriteOp::WriteRollups => Err(StoreError::Internal(
            "an ingest write was routed to the alert writes".into(),
        )),
    }
}

/// One raw row of a probe run: a step, or a page view the run measured.
pub(super) struct RunSample {
    pub ts_ms: i64,
    pub series: SeriesDims,
    pub step_index: i64,
    pub row: Row,
}

/// The raw rows a probe run stores (steps and page views with at least one
/// metric), the same for every backend; `Invalid` when step start times
/// overflow (validation bounds them, but a wrapped sum would store samples
/// at a time nobody sent).
pub(super) fn run_samples(
    run: &ProbeRun,
    page_view_groups: &[String],
) -> Result<Vec<RunSample>, StoreError> {
    let overflow = || StoreError::Invalid("started_at_ms: step start times overflow".into());
    let mut step_starts = Vec::with_capacity(run.steps.len());
    let mut step_start = i64::try_from(run.started_at_ms).map_err(|_| overflow())?;
    for step in &run.steps {
        step_starts.push(step_start);
        step_start = step_start
            .checked_add(step.duration_ms as i64)
            .ok_or_else(overflow)?;
    }
    let device = run.profile.as_deref().unwrap_or("desktop");
    let series = |page_group: &str, step: &str| SeriesDims {
        site: String::new(),
        page_group: page_group.to_string(),
        device: device.to_string(),
        source: "synthetic".into(),
        flow: run.flow.clone(),
        step: step.to_string(),
        location: run.location.clone(),
    };
    let mut samples = Vec::new();
    for (index, (step, start)) in run
        .steps
        .iter()
        .zip(step_starts.iter().copied())
        .enumerate()
    {
        let mut row = Row::default();
        for (metric, value) in step.vitals.present() {
            row.set(metric, value, None);
        }
        if row.present().next().is_none() {
            continue;
        }
        samples.push(RunSample {
            ts_ms: start,
            series: series("", &step.name),
            step_index: index as i64,
            row,
        });
    }
    // Page views are synthetic series of their own beside the steps
    // (named `page view NAME`, indexed after every possible step so
    // the identity never collides), tagged with their page group so
    // lab and field numbers of one page group sit side by side.
    for (index, view) in run.page_views.iter().enumerate() {
        let mut row = Row::default();
        for (metric, value) in view.vitals.present() {
            row.set(metric, value, None);
        }
        if row.present().next().is_none() {
            continue;
        }
        samples.push(RunSample {
            ts_ms: step_starts
                .get(view.step)
                .copied()
                .unwrap_or(run.started_at_ms as i64),
            series: series(
                page_view_groups.get(index).map_or("", String::as_str),
                &view.series_name(),
            ),
            step_index: (MAX_STEPS + index) as i64,
            row,
        });
    }
    Ok(samples)
}

/// Insert a raw row, or merge it into the stored row with the same key: the
/// values it carries replace the stored ones of the same metrics (CLS and INP
/// are re-reported as they grow, and only the latest counts), the others stay.
/// A replaced value's rollup and attribution contributions are taken back in
/// the stored row's hour and series, so a re-report moves counts instead of
/// adding them. A row the written rollups already count is journaled first
/// (as they count it), so a crash before its changes are written loses nothing.
#[allow(clippy::too_many_arguments)]
fn write_row(
    tx: &Connection,
    ts_ms: i64,
    series: i64,
    origin_id: &str,
    step_index: i64,
    row: Row,
    deltas: &mut Deltas,
    watermark: i64,
) -> Result<(), StoreError> {
    // Most rows are new: try the insert first and look for the stored one only
    // when the identity index says it exists (a re-report).
    if measurements::insert(tx, ts_ms, series, origin_id, step_index, &row)? {
        for (metric, value) in row.present() {
            deltas.add(
                series,
                ts_ms,
                metric,
                value,
                row.attribution(metric).as_ref(),
                1,
            );
        }
        return Ok(());
    }
    let Some(stored) = measurements::find(tx, origin_id, step_index)? else {
        return Err(StoreError::Internal(format!(
            "raw row {origin_id} step {step_index} was neither inserted nor found"
        )));
    };
    if stored.id <= watermark {
        measurements::journal(tx, &stored)?;
    }
    let merged = merge_report(stored.series, stored.ts_ms, &stored.row, &row, deltas);
    measurements::update(tx, stored.id, &merged)?;
    Ok(())
}

/// Where a sample's rollup and attribution contributions are counted: each
/// backend keeps its own (SQLite: merged in the writer's memory; PostgreSQL:
/// rows per histogram bucket), and [`merge_report`] moves them the same way.
pub(super) trait Contributions {
    /// Add (`sign` 1) or take back (`sign` -1) one sample's contributions.
    fn add(
        &mut self,
        series: i64,
        ts_ms: i64,
        metric: Metric,
        value: f64,
        attribution: Option<&StoredAttribution>,
        sign: i64,
    );

    /// The attribution part of [`Contributions::add`] alone.
    fn attribute(
        &mut self,
        series: i64,
        ts_ms: i64,
        metric: Metric,
        value: f64,
        attribution: Option<&StoredAttribution>,
        sign: i64,
    );
}

/// The row a re-report `row` leaves of the stored `old` (counted in `series`
/// at `ts_ms`): the values it carries replace the stored ones of the same
/// metrics, the others stay; a page view's navigation and connection type
/// are its latest report's (the connection can change while the page lives),
/// for all its metrics, so the ones this report does not carry move their
/// attribution counts over. Every replaced value's contributions are taken
/// back and the new ones added in `deltas`.
pub(super) fn merge_report(
    series: i64,
    ts_ms: i64,
    old: &Row,
    row: &Row,
    deltas: &mut impl Contributions,
) -> Row {
    let mut merged = old.clone();
    merged.navigation = row.navigation.or(old.navigation);
    merged.connection = row.connection.or(old.connection);
    for (metric, value) in old.present() {
        if row.value(metric).is_some() {
            continue;
        }
        let (before, after) = (old.attribution(metric), merged.attribution(metric));
        if before != after {
            deltas.attribute(series, ts_ms, metric, value, before.as_ref(), -1);
            deltas.attribute(series, ts_ms, metric, value, after.as_ref(), 1);
        }
    }
    for (metric, value) in row.present() {
        if let Some(old_value) = old.value(metric) {
            deltas.add(
                series,
                ts_ms,
                metric,
                old_value,
                old.attribution(metric).as_ref(),
                -1,
            );
        }
        merged.set(metric, value, row.attribution(metric).as_ref());
        deltas.add(
            series,
            ts_ms,
            metric,
            value,
            merged.attribution(metric).as_ref(),
            1,
        );
    }
    merged
}

impl Contributions for Deltas {
    fn add(
        &mut self,
        series: i64,
        ts_ms: i64,
        metric: Metric,
        value: f64,
        attribution: Option<&StoredAttribution>,
        sign: i64,
    ) {
        self.rollups.add(
            RollupKey {
                series,
                metric,
                hour: ts_ms.div_euclid(3_600_000),
            },
            value,
            sign,
        );
        self.attribute(series, ts_ms, metric, value, attribution, sign);
    }

    fn attribute(
        &mut self,
        series: i64,
        ts_ms: i64,
        metric: Metric,
        value: f64,
        attribution: Option<&StoredAttribution>,
        sign: i64,
    ) {
        if let Some(a) = attribution {
            self.attribution.add(
                &Counted {
                    metric,
                    ts_ms,
                    series,
                },
                a,
                value,
                sign,
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RollupKey {
    series: i64,
    metric: Metric,
    /// An hour (or, for the daily rows, a day) since the epoch.
    hour: i64,
}

/// Changes to hourly rollups collected over a batch (and over batches while
/// they wait) and written once: per rollup row, the net change of its counts
/// and of each histogram bucket, so a row touched by many samples is one
/// small map, not a list of every sample.
#[derive(Default)]
struct RollupDeltas {
    deltas: FxHashMap<RollupKey, RollupChange>,
}

/// The net change of one rollup row.
#[derive(Default, Clone)]
struct RollupChange {
    count: i64,
    good: i64,
    needs_improvement: i64,
    poor: i64,
    /// Net change per histogram bucket, sorted by bucket: a row of the
    /// current hour holds a few dozen, which a binary search over one
    /// allocation finds faster than a tree of nodes.
    buckets: Vec<(i16, i64)>,
}

impl RollupChange {
    fn add(&mut self, metric: Metric, value: f64, delta: i64) {
        self.count += delta;
        *match metric.rate(value) {
            Rating::Good => &mut self.good,
            Rating::NeedsImprovement => &mut self.needs_improvement,
            Rating::Poor => &mut self.poor,
        } += delta;
        self.add_to_bucket(bucket_of(value), delta);
    }

    fn add_to_bucket(&mut self, bucket: i16, delta: i64) {
        match self.buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.buckets[i].1 += delta,
            Err(i) => self.buckets.insert(i, (bucket, delta)),
        }
    }

    fn absorb(&mut self, other: &RollupChange) {
        self.count += other.count;
        self.good += other.good;
        self.needs_improvement += other.needs_improvement;
        self.poor += other.poor;
        for &(bucket, delta) in &other.buckets {
            self.add_to_bucket(bucket, delta);
        }
    }
}

impl RollupDeltas {
    fn add(&mut self, key: RollupKey, value: f64, count: i64) {
        self.deltas
            .entry(key)
            .or_default()
            .add(key.metric, value, count);
    }

    /// Write the hourly rollups, then the same changes into the daily ones
    /// (`rollups_daily`, what long ranges read: a 30-day view merges 30 rows
    /// per series instead of 720).
    fn flush(self, tx: &mut Transaction, series: &mut SeriesIds) -> rusqlite::Result<()> {
        let mut daily: FxHashMap<RollupKey, RollupChange> = FxHashMap::default();
        for (k, change) in &self.deltas {
            let day = RollupKey {
                hour: k.hour.div_euclid(24),
                ..*k
            };
            daily.entry(day).or_default().absorb(change);
        }
        write_rollups(tx, series, "rollups", "hour", self.deltas)?;
        write_rollups(tx, series, "rollups_daily", "day", daily)
    }
}

/// Merge changes into one rollup table; `unit` names its time column (the
/// key's `hour` field holds an hour or a day number accordingly).
fn write_rollups(
    tx: &Transaction,
    series: &mut SeriesIds,
    table: &str,
    unit: &str,
    deltas: FxHashMap<RollupKey, RollupChange>,
) -> rusqlite::Result<()> {
    let key_match = format!(
        "metric = ?1 AND site = ?2 AND page_group = ?3 AND device = ?4 AND source = ?5
         AND flow = ?6 AND step = ?7 AND location = ?8 AND {unit} = ?9"
    );
    let mut select = tx.prepare_cached(&format!(
        "SELECT count, good, needs_improvement, poor, histogram FROM {table} WHERE {key_match}"
    ))?;
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO {table} (metric, site, page_group, device, source, flow, step, location, {unit},
                              count, good, needs_improvement, poor, histogram)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?;
    // In place: unlike INSERT OR REPLACE (delete + insert), an update of
    // the non-key columns leaves the (metric, time) index untouched.
    let mut update = tx.prepare_cached(&format!(
        "UPDATE {table} SET count = ?10, good = ?11, needs_improvement = ?12, poor = ?13, histogram = ?14
         WHERE {key_match}"
    ))?;
    for (k, change) in deltas {
        let d = series.dims(tx, k.series)?;
        let key = params![
            k.metric.as_str(),
            d.site,
            d.page_group,
            d.device,
            d.source,
            d.flow,
            d.step,
            d.location,
            k.hour
        ];
        let existing: Option<(i64, i64, i64, i64, Vec<u8>)> = select
            .query_row(key, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let exists = existing.is_some();
        let (mut count, mut good, mut ni, mut poor, blob) = existing.unwrap_or_default();
        let mut histogram = Histogram::decode(&blob);
        for &(bucket, delta) in &change.buckets {
            histogram.add_to_bucket(bucket, delta);
        }
        count += change.count;
        good += change.good;
        ni += change.needs_improvement;
        poor += change.poor;
        let write = if exists { &mut update } else { &mut insert };
        write.execute(params![
            k.metric.as_str(),
            d.site,
            d.page_group,
            d.device,
            d.source,
            d.flow,
            d.step,
            d.location,
            k.hour,
            count,
            good,
            ni,
            poor,
            histogram.encode()
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use crate::store::query::{self, Filter};

    fn beacon(id: &str, cls: f64) -> Beacon {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "site": "shop", "page_view_id": id,
            "url": "https://shop.example/", "navigation_type": "navigate",
            "device": "mobile", "snippet_version": "0.1.0",
            "reports": [{"metric": "CLS", "value": cls, "rating": Metric::Cls.rate(cls).as_str()}]
        }))
        .unwrap()
    }

    /// A batch whose commit fails (here: the database may not grow) had its
    /// rollup changes added to the pending ones; they are recomputed from the
    /// raw rows, so the rollups count exactly the rows that were stored.
    #[test]
    fn a_failed_batch_leaves_no_rollup_changes_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn =
            super::super::sqlite::open_connection(&dir.path().join("f.db"), false).unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let (mut caches, mut pending, stats) = (
            Caches::default(),
            Pending::default(),
            WriterStats::default(),
        );
        let now = 1_763_870_000_000i64;
        let mut batch_of =
            |conn: &mut Connection, pending: &mut Pending, ids: Vec<String>, read: bool| {
                let mut jobs: Vec<Job> = ids
                    .into_iter()
                    .map(|id| Job {
                        op: WriteOp::Beacon {
                            beacon: beacon(&id, 0.05),
                            page_group: "/".into(),
                            received_ms: now,
                        },
                        reply: oneshot::channel().0,
                    })
                    .collect();
                if read {
                    jobs.push(Job {
                        op: WriteOp::WriteRollups,
                        reply: oneshot::channel().0,
                    });
                }
                let results = apply_batch(conn, &mut jobs, &mut caches, pending, &stats);
                results.iter().filter(|r| r.is_ok()).count()
            };
        assert_eq!(
            batch_of(
                &mut conn,
                &mut pending,
                vec!["pv-1".into(), "pv-2".into()],
                false
            ),
            2
        );
        // No room for another page: the next batch fails at its first insert
        // or its commit, after its beacons counted in the pending changes.
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
        let many: Vec<String> = (0..400)
            .map(|i| format!("pv-full-{i}-{}", "x".repeat(40)))
            .collect();
        assert_eq!(
            batch_of(&mut conn, &mut pending, many, false),
            0,
            "the whole batch failed"
        );
        assert!(pending.lost);
        conn.pragma_update(None, "max_page_count", 1_073_741_823i64)
            .unwrap();
        assert_eq!(
            batch_of(&mut conn, &mut pending, vec!["pv-3".into()], true),
            2
        );
        assert!(!pending.lost);
        let (rows, rolled): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(cls) FROM measurements),
                        (SELECT sum(count) FROM rollups WHERE metric = 'CLS')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, rolled), (3, 3));
        let daily: i64 = conn
            .query_row(
                "SELECT sum(count) FROM rollups_daily WHERE metric = 'CLS'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(daily, 3);
    }

    /// What a crash between a commit and the rollups' write leaves behind
    /// (a row past the watermark, a re-reported row in the journal) is
    /// counted again, exactly once, when the store opens.
    #[tokio::test]
    async fn rollups_lost_in_a_crash_are_recomputed_from_raw_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        let now = 1_763_870_000_000i64;
        {
            let store = SqliteStore::open(&db).unwrap();
            for (id, cls) in [("pv-a", 0.05), ("pv-b", 0.3)] {
                store
                    .writer
                    .write(WriteOp::Beacon {
                        beacon: beacon(id, cls),
                        page_group: "/".into(),
                        received_ms: now,
                    })
                    .await
                    .unwrap();
            }
            // A read has the writer write the pending rollups first.
            store.read(|_| Ok(())).await.unwrap();
            assert!(!store.writer.stats.rollups_pending.load(Relaxed));
        }
        {
            // As if the writer had committed these and crashed before writing
            // their rollups: a new page view, and pv-a's CLS re-reported.
            let mut conn = Connection::open(&db).unwrap();
            let tx = conn.transaction().unwrap();
            let watermark: i64 = tx
                .query_row("SELECT rolled_up_through FROM rollup_state", [], |r| {
                    r.get(0)
                })
                .unwrap();
            let a = measurements::find(&tx, "pv-a", PAGE_VIEW_STEP)
                .unwrap()
                .unwrap();
            assert!(a.id <= watermark, "pv-a's rollups were written");
            measurements::journal(&tx, &a).unwrap();
            let mut row = a.row.clone();
            row.set(Metric::Cls, 0.12, a.row.attribution(Metric::Cls).as_ref());
            measurements::update(&tx, a.id, &row).unwrap();
            let mut c = Row::default();
            c.set(Metric::Cls, 0.01, None);
            measurements::insert(&tx, now, a.series, "pv-c", PAGE_VIEW_STEP, &c).unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&db).unwrap();
        // Over 7 hours the summary reads the rollups, not the raw rows.
        let (from, to) = (now - 3 * 3_600_000, now + 4 * 3_600_000);
        let rolled = store
            .read(move |c| query::summary(c, Metric::Cls, from, to, &Filter::default()))
            .await
            .unwrap();
        assert_eq!(rolled.resolution, "rollup");
        assert_eq!(rolled.count, 3, "pv-a once (re-reported), pv-b, pv-c");
        let exact = store
            .read(move |c| {
                query::summary(
                    c,
                    Metric::Cls,
                    now - 60_000,
                    now + 60_000,
                    &Filter::default(),
                )
            })
            .await
            .unwrap();
        assert_eq!(exact.count, 3);
        // Rating shares: pv-a now 0.12 (needs improvement), pv-b poor, pv-c good.
        assert!((rolled.good - 1.0 / 3.0).abs() < 1e-9, "{rolled:?}");
        assert!(
            (rolled.needs_improvement - 1.0 / 3.0).abs() < 1e-9,
            "{rolled:?}"
        );
        assert!((rolled.poor - 1.0 / 3.0).abs() < 1e-9, "{rolled:?}");
        let journal: i64 = Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM rollup_journal", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, 0);
    }
}
