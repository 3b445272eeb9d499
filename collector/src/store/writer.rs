//! The single writer: a thread that owns the write connection, takes whatever
//! writes are queued, applies them in one transaction, commits, and only then
//! answers each request. Many concurrent beacons cost one fsync.
//!
//! Rollups (value histograms, attribution counts) change in memory over a
//! batch and are written once at its end, one row per touched series.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_core::wire::{Beacon, ProbeRun};

use super::StoreError;
use super::alerts::{self, Delivery};
use super::attribution::{AttributionDeltas, Counted, Dictionary, StoredAttribution};
use super::measurements::{self, PAGE_VIEW_STEP, Row, SeriesIds, SeriesRef};
use crate::alerts::engine::Evaluation;
use crate::alerts::silences::Silence;
use crate::histogram::Histogram;

/// Most writes in one transaction: bounds the latency a big burst adds.
const MAX_BATCH: usize = 1024;
const QUEUE_CAPACITY: usize = 16 * 1024;

pub enum WriteOp {
    Beacon {
        beacon: Beacon,
        page_group: String,
        received_ms: i64,
    },
    Run {
        run: ProbeRun,
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
    pub commit_micros_sum: AtomicU64,
    pub last_batch_size: AtomicU64,
    pub max_batch_size: AtomicU64,
    pub alive: std::sync::atomic::AtomicBool,
    /// Recent storage failures, for `/readyz`.
    pub health: super::health::WriteHealth,
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

    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    pub fn is_alive(&self) -> bool {
        self.stats.alive.load(Relaxed) && !self.queue.is_closed()
    }
}

/// The writer loop ends when every sender is gone (shutdown): by then every
/// queued job has been committed and answered.
fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, stats: &WriterStats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Live as long as the thread: a selector or series seen before costs no SQL.
    let mut caches = Caches::default();
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
        let results = apply_batch(&mut conn, &mut batch, &mut caches);
        let micros = started.elapsed().as_micros() as u64;
        stats.batches.fetch_add(1, Relaxed);
        stats.writes.fetch_add(batch.len() as u64, Relaxed);
        stats.commit_micros_sum.fetch_add(micros, Relaxed);
        stats.last_batch_size.store(batch.len() as u64, Relaxed);
        stats.max_batch_size.fetch_max(batch.len() as u64, Relaxed);
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
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

/// Apply every job inside one transaction. Beacons, runs, artifacts and
/// prunes check everything they can refuse before they write, so they need no
/// savepoint: a refused job wrote nothing, and a failing statement (I/O, a
/// full disk) fails the whole batch. Only the alert writes, which may refuse
/// after writing, run in a savepoint each (rare: a few per minute). If the commit itself
/// fails, every job gets the error: nothing is acknowledged that is not on disk.
fn apply_batch(
    conn: &mut Connection,
    batch: &mut [Job],
    caches: &mut Caches,
) -> Vec<Result<WriteOutcome, StoreError>> {
    let commit = (|| -> Result<Vec<Result<WriteOutcome, StoreError>>, rusqlite::Error> {
        let mut tx = conn.transaction()?;
        let mut deltas = Deltas::default();
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
                op => match apply(&tx, op, &mut deltas, caches) {
                    // A statement failed: the transaction may be half applied.
                    Err(StoreError::Sqlite(e)) => return Err(e),
                    other => other,
                },
            };
            caches.dictionary.job_done(true);
            results.push(result);
        }
        deltas.flush(&mut tx, &mut caches.series)?;
        tx.commit()?;
        Ok(results)
    })();
    match commit {
        Ok(results) => results,
        Err(e) => {
            caches.batch_failed();
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
}

/// Most raw rows one prune deletes: a day of raw rows goes in slices between
/// ingest batches instead of one long transaction that stalls the writer.
pub const PRUNE_SLICE: usize = 5_000;

fn apply(
    tx: &Connection,
    op: &WriteOp,
    deltas: &mut Deltas,
    caches: &mut Caches,
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
            )?;
            Ok(WriteOutcome::Stored)
        }
        WriteOp::Run { run, received_ms } => {
            // Validation bounds these, but a wrapped sum would store samples at a
            // time nobody sent; refuse (before writing anything) instead of wrapping.
            let overflow =
                || StoreError::Invalid("started_at_ms: step start times overflow".into());
            let mut step_starts = Vec::with_capacity(run.steps.len());
            let mut step_start = i64::try_from(run.started_at_ms).map_err(|_| overflow())?;
            for step in &run.steps {
                step_starts.push(step_start);
                step_start = step_start
                    .checked_add(step.duration_ms as i64)
                    .ok_or_else(overflow)?;
            }
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
            let device = run.profile.as_deref().unwrap_or("desktop");
            for (index, (step, start)) in run.steps.iter().zip(step_starts).enumerate() {
                let mut row = Row::default();
                for (metric, value) in step.vitals.present() {
                    row.set(metric, value, None);
                }
                if row.present().next().is_none() {
                    continue;
                }
                let series = caches.series.id(
                    tx,
                    &SeriesRef {
                        site: "",
                        page_group: "",
                        device,
                        source: "synthetic",
                        flow: &run.flow,
                        step: &step.name,
                        location: &run.location,
                    },
                )?;
                write_row(tx, start, series, &run.run_id, index as i64, row, deltas)?;
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
        | WriteOp::Prune { .. } => Err(StoreError::Internal(
            "an ingest write was routed to the alert writes".into(),
        )),
    }
}

/// Insert a raw row, or merge it into the stored row with the same key: the
/// values it carries replace the stored ones of the same metrics (CLS and INP
/// are re-reported as they grow, and only the latest counts), the others stay.
/// A replaced value's rollup and attribution contributions are taken back in
/// the stored row's hour and series, so a re-report moves counts instead of
/// adding them.
fn write_row(
    tx: &Connection,
    ts_ms: i64,
    series: i64,
    origin_id: &str,
    step_index: i64,
    row: Row,
    deltas: &mut Deltas,
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
    let old = &stored.row;
    let mut merged = old.clone();
    // A page view's navigation and connection type are its latest report's
    // (the connection can change while the page lives), for all its metrics:
    // the ones this report does not carry move their counts over.
    merged.navigation = row.navigation.or(old.navigation);
    merged.connection = row.connection.or(old.connection);
    for (metric, value) in old.present() {
        if row.value(metric).is_some() {
            continue;
        }
        let (before, after) = (old.attribution(metric), merged.attribution(metric));
        if before != after {
            deltas.attribute(
                stored.series,
                stored.ts_ms,
                metric,
                value,
                before.as_ref(),
                -1,
            );
            deltas.attribute(
                stored.series,
                stored.ts_ms,
                metric,
                value,
                after.as_ref(),
                1,
            );
        }
    }
    for (metric, value) in row.present() {
        if let Some(old_value) = old.value(metric) {
            deltas.add(
                stored.series,
                stored.ts_ms,
                metric,
                old_value,
                old.attribution(metric).as_ref(),
                -1,
            );
        }
        merged.set(metric, value, row.attribution(metric).as_ref());
        deltas.add(
            stored.series,
            stored.ts_ms,
            metric,
            value,
            merged.attribution(metric).as_ref(),
            1,
        );
    }
    measurements::update(tx, stored.id, &merged)?;
    Ok(())
}

impl Deltas {
    /// Add (`sign` 1) or take back (`sign` -1) one sample's contributions.
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

    /// The attribution part of [`Deltas::add`] alone.
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

/// Changes to hourly rollups collected over a batch and written once at its end.
#[derive(Default)]
struct RollupDeltas {
    deltas: HashMap<RollupKey, Vec<(f64, i64)>>,
}

impl RollupDeltas {
    fn add(&mut self, key: RollupKey, value: f64, count: i64) {
        self.deltas.entry(key).or_default().push((value, count));
    }

    /// Write the hourly rollups, then the same changes into the daily ones
    /// (`rollups_daily`, what long ranges read: a 30-day view merges 30 rows
    /// per series instead of 720).
    fn flush(self, tx: &mut Transaction, series: &mut SeriesIds) -> rusqlite::Result<()> {
        let mut daily: HashMap<RollupKey, Vec<(f64, i64)>> = HashMap::new();
        for (k, changes) in &self.deltas {
            let day = RollupKey {
                hour: k.hour.div_euclid(24),
                ..*k
            };
            daily.entry(day).or_default().extend_from_slice(changes);
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
    deltas: HashMap<RollupKey, Vec<(f64, i64)>>,
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
    for (k, changes) in deltas {
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
        for (value, delta) in changes {
            histogram.add(value, delta);
            count += delta;
            match k.metric.rate(value) {
                Rating::Good => good += delta,
                Rating::NeedsImprovement => ni += delta,
                Rating::Poor => poor += delta,
            }
        }
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
