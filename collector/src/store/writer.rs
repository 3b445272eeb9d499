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
use vitalsign_core::wire::run::MAX_STEPS;
use vitalsign_core::wire::{Beacon, ProbeRun};

use super::StoreError;
use super::attribution::{AttributionDeltas, Counted, Dictionary, StoredAttribution};
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
    /// A write of another module (the alert engine's states, transitions and
    /// outbox rows) applied in its own savepoint of the batch, so everything
    /// the closure writes commits together or not at all.
    Exec(ExecFn),
}

pub type ExecFn = Box<dyn FnOnce(&Connection) -> Result<WriteOutcome, StoreError> + Send>;

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Stored,
    /// Idempotent retry: the document was already stored; nothing changed.
    AlreadyStored,
    Pruned {
        samples: usize,
        runs: usize,
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
    // Lives as long as the thread: a selector seen before costs no SQL.
    let mut dictionary = Dictionary::default();
    while let Some(first) = rx.blocking_recv() {
        dictionary.trim();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let results = apply_batch(&mut conn, &mut batch, &mut dictionary);
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

/// Apply every job inside one transaction, each in its own savepoint so one
/// bad write does not undo the others. If the commit itself fails, every job
/// gets the error: nothing is acknowledged that is not on disk.
fn apply_batch(
    conn: &mut Connection,
    batch: &mut [Job],
    dictionary: &mut Dictionary,
) -> Vec<Result<WriteOutcome, StoreError>> {
    let commit = (|| -> Result<Vec<Result<WriteOutcome, StoreError>>, rusqlite::Error> {
        let mut tx = conn.transaction()?;
        let mut deltas = Deltas::default();
        let mut results = Vec::with_capacity(batch.len());
        for job in batch.iter_mut() {
            let mut sp = tx.savepoint()?;
            let mut local = Deltas::default();
            let result = match &mut job.op {
                WriteOp::Exec(f) => {
                    let f = std::mem::replace(
                        f,
                        Box::new(|_| Err(StoreError::Conflict("write already applied".into()))),
                    );
                    f(&sp)
                }
                op => apply(&sp, op, &mut local, dictionary),
            };
            if result.is_ok() {
                sp.commit()?;
                deltas.absorb(local);
            } else {
                sp.rollback()?;
            }
            dictionary.job_done(result.is_ok());
            results.push(result);
        }
        deltas.flush(&mut tx)?;
        tx.commit()?;
        Ok(results)
    })();
    match commit {
        Ok(results) => results,
        Err(e) => {
            dictionary.batch_failed();
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

/// A sample as stored: every dimension a query can filter on.
struct Sample<'a> {
    ts_ms: i64,
    site: &'a str,
    page_group: &'a str,
    metric: Metric,
    value: f64,
    device: &'a str,
    source: &'static str,
    flow: &'a str,
    step: &'a str,
    location: &'a str,
    origin_id: &'a str,
    step_index: i64,
    /// RUM only: what the report said about its cause, as dictionary ids.
    attribution: Option<StoredAttribution>,
}

/// Everything a batch changes besides the rows it writes.
#[derive(Default)]
struct Deltas {
    rollups: RollupDeltas,
    attribution: AttributionDeltas,
}

impl Deltas {
    fn absorb(&mut self, other: Deltas) {
        self.rollups.absorb(other.rollups);
        self.attribution.absorb(other.attribution);
    }

    fn flush(self, tx: &mut Transaction) -> rusqlite::Result<()> {
        self.rollups.flush(tx)?;
        self.attribution.flush(tx)
    }
}

fn apply(
    tx: &Connection,
    op: &WriteOp,
    deltas: &mut Deltas,
    dictionary: &mut Dictionary,
) -> Result<WriteOutcome, StoreError> {
    match op {
        WriteOp::Beacon {
            beacon,
            page_group,
            received_ms,
        } => {
            let device = beacon.device.map_or("unknown", |d| d.as_str());
            for report in &beacon.reports {
                upsert_sample(
                    tx,
                    &Sample {
                        ts_ms: *received_ms,
                        site: &beacon.site,
                        page_group,
                        metric: report.metric,
                        value: report.value,
                        device,
                        source: "rum",
                        flow: "",
                        step: "",
                        location: "",
                        origin_id: &beacon.page_view_id,
                        step_index: 0,
                        attribution: Some(dictionary.resolve(tx, beacon, report)?),
                    },
                    deltas,
                )?;
            }
            Ok(WriteOutcome::Stored)
        }
        WriteOp::Run {
            run,
            page_view_groups,
            received_ms,
        } => {
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
            // Validation bounds these, but a wrapped sum would store samples at a
            // time nobody sent; refuse instead of wrapping.
            let overflow =
                || StoreError::Conflict("started_at_ms: step start times overflow".into());
            let mut step_start = i64::try_from(run.started_at_ms).map_err(|_| overflow())?;
            let mut step_starts = Vec::with_capacity(run.steps.len());
            for (index, step) in run.steps.iter().enumerate() {
                step_starts.push(step_start);
                for (metric, value) in step.vitals.present() {
                    upsert_sample(
                        tx,
                        &Sample {
                            ts_ms: step_start,
                            site: "",
                            page_group: "",
                            metric,
                            value,
                            device,
                            source: "synthetic",
                            flow: &run.flow,
                            step: &step.name,
                            location: &run.location,
                            origin_id: &run.run_id,
                            step_index: index as i64,
                            attribution: None,
                        },
                        deltas,
                    )?;
                }
                step_start = step_start
                    .checked_add(step.duration_ms as i64)
                    .ok_or_else(overflow)?;
            }
            // Page views are synthetic series of their own beside the steps
            // (named `page view NAME`, indexed after every possible step so
            // the identity never collides), tagged with their page group so
            // lab and field numbers of one page group sit side by side.
            for (index, view) in run.page_views.iter().enumerate() {
                let series = view.series_name();
                let page_group = page_view_groups.get(index).map_or("", String::as_str);
                let ts_ms = step_starts
                    .get(view.step)
                    .copied()
                    .unwrap_or(run.started_at_ms as i64);
                for (metric, value) in view.vitals.present() {
                    upsert_sample(
                        tx,
                        &Sample {
                            ts_ms,
                            site: "",
                            page_group,
                            metric,
                            value,
                            device,
                            source: "synthetic",
                            flow: &run.flow,
                            step: &series,
                            location: &run.location,
                            origin_id: &run.run_id,
                            step_index: (MAX_STEPS + index) as i64,
                            attribution: None,
                        },
                        deltas,
                    )?;
                }
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
            let run: ProbeRun =
                serde_json::from_str(&document).map_err(|e| StoreError::Conflict(e.to_string()))?;
            let Some(listed) = run.artifacts.iter().find(|a| &a.name == name) else {
                return Err(StoreError::NotFound(format!(
                    "run {run_id} lists no artifact named {name:?}"
                )));
            };
            if !listed.sha256.eq_ignore_ascii_case(sha256) {
                return Err(StoreError::Conflict(format!(
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
            // Rollups keep the history; only raw rows and run documents go.
            let samples = tx.execute("DELETE FROM samples WHERE ts_ms < ?1", [before_ms])?;
            let runs = tx.execute(
                "DELETE FROM artifacts WHERE run_id IN (SELECT run_id FROM runs WHERE started_at_ms < ?1)",
                [before_ms],
            )
            .and_then(|_| tx.execute("DELETE FROM runs WHERE started_at_ms < ?1", [before_ms]))?;
            Ok(WriteOutcome::Pruned { samples, runs })
        }
        // Taken out and run by `apply_batch`, which owns the closure.
        WriteOp::Exec(_) => Err(StoreError::Conflict("write already applied".into())),
    }
}

/// Insert a sample, or replace the value of the same (source, origin, step,
/// metric): CLS and INP are re-reported as they grow, and only the latest
/// counts. A re-report's attribution replaces the old one too: the count moves
/// to the new item instead of adding a second one.
fn upsert_sample(tx: &Connection, s: &Sample, deltas: &mut Deltas) -> Result<(), StoreError> {
    let a = s.attribution.as_ref();
    let split = |i: usize| a.and_then(|a| a.split).map(|split| split[i]);
    // Most samples are new: try the insert first and look for the stored one
    // only when the identity index says it exists (a re-report).
    let inserted = tx
        .prepare_cached(
            "INSERT INTO samples (ts_ms, site, page_group, metric, value, device, source, flow, step, location, origin_id, step_index,
                                  attr_navigation, attr_connection, attr_target, attr_resource,
                                  attr_input_delay, attr_processing, attr_presentation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT (source, origin_id, step_index, metric) DO NOTHING",
        )?
        .execute(params![
            s.ts_ms,
            s.site,
            s.page_group,
            s.metric.as_str(),
            s.value,
            s.device,
            s.source,
            s.flow,
            s.step,
            s.location,
            s.origin_id,
            s.step_index,
            a.map(|a| a.navigation),
            a.map(|a| a.connection),
            a.and_then(|a| a.target),
            a.and_then(|a| a.resource),
            split(0),
            split(1),
            split(2)
        ])?;
    let previous: Option<(i64, f64, i64, Option<StoredAttribution>)> =
        if inserted == 1 {
            None
        } else {
            tx.prepare_cached(
            "SELECT id, value, ts_ms, attr_navigation, attr_connection, attr_target, attr_resource,
                    attr_input_delay, attr_processing, attr_presentation
             FROM samples WHERE source = ?1 AND origin_id = ?2 AND step_index = ?3 AND metric = ?4",
        )?
        .query_row(params![s.source, s.origin_id, s.step_index, s.metric.as_str()], |r| {
            // NULL ids: a synthetic sample, or one stored before attribution
            // was kept; either way it added nothing to take back.
            let navigation: Option<i64> = r.get(3)?;
            let connection: Option<i64> = r.get(4)?;
            let split: [Option<f64>; 3] = [r.get(7)?, r.get(8)?, r.get(9)?];
            let old = match (navigation, connection) {
                (Some(navigation), Some(connection)) => Some(StoredAttribution {
                    navigation,
                    connection,
                    target: r.get(5)?,
                    resource: r.get(6)?,
                    split: match split {
                        [Some(d), Some(p), Some(s)] => Some([d, p, s]),
                        _ => None,
                    },
                }),
                _ => None,
            };
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, old))
        })
        .optional()?
        };
    let key = |ts_ms: i64| RollupKey {
        hour: ts_ms.div_euclid(3_600_000),
        site: s.site.to_string(),
        page_group: s.page_group.to_string(),
        metric: s.metric,
        device: s.device.to_string(),
        source: s.source,
        flow: s.flow.to_string(),
        step: s.step.to_string(),
        location: s.location.to_string(),
    };
    let counted = |ts_ms: i64| Counted {
        metric: s.metric,
        ts_ms,
        site: s.site,
        page_group: s.page_group,
        device: s.device,
    };
    match previous {
        Some((id, old_value, old_ts, old_attribution)) => {
            tx.prepare_cached(
                "UPDATE samples SET value = ?1, attr_navigation = ?2, attr_connection = ?3, attr_target = ?4,
                                    attr_resource = ?5, attr_input_delay = ?6, attr_processing = ?7,
                                    attr_presentation = ?8
                 WHERE id = ?9",
            )?
            .execute(params![
                s.value,
                a.map(|a| a.navigation),
                a.map(|a| a.connection),
                a.and_then(|a| a.target),
                a.and_then(|a| a.resource),
                split(0),
                split(1),
                split(2),
                id
            ])?;
            // The sample keeps its first timestamp (the page view's hour).
            deltas.rollups.add(key(old_ts), old_value, -1);
            deltas.rollups.add(key(old_ts), s.value, 1);
            if let Some(old) = &old_attribution {
                deltas.attribution.add(&counted(old_ts), old, old_value, -1);
            }
            if let Some(new) = a {
                deltas.attribution.add(&counted(old_ts), new, s.value, 1);
            }
        }
        None if inserted == 1 => {
            deltas.rollups.add(key(s.ts_ms), s.value, 1);
            if let Some(new) = a {
                deltas.attribution.add(&counted(s.ts_ms), new, s.value, 1);
            }
        }
        None => {
            return Err(StoreError::Conflict(format!(
                "sample {} {} {} {} neither inserted nor found",
                s.source, s.origin_id, s.step_index, s.metric
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RollupKey {
    hour: i64,
    site: String,
    page_group: String,
    metric: Metric,
    device: String,
    source: &'static str,
    flow: String,
    step: String,
    location: String,
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

    fn absorb(&mut self, other: RollupDeltas) {
        for (key, mut changes) in other.deltas {
            self.deltas.entry(key).or_default().append(&mut changes);
        }
    }

    /// Write the hourly rollups, then the same changes into the daily ones
    /// (`rollups_daily`, what long ranges read: a 30-day view merges 30 rows
    /// per series instead of 720).
    fn flush(self, tx: &mut Transaction) -> rusqlite::Result<()> {
        let mut daily: HashMap<RollupKey, Vec<(f64, i64)>> = HashMap::new();
        for (k, changes) in &self.deltas {
            let day = RollupKey {
                hour: k.hour.div_euclid(24),
                ..k.clone()
            };
            daily.entry(day).or_default().extend_from_slice(changes);
        }
        write_rollups(tx, "rollups", "hour", self.deltas)?;
        write_rollups(tx, "rollups_daily", "day", daily)
    }
}

/// Merge changes into one rollup table; `unit` names its time column (the
/// key's `hour` field holds an hour or a day number accordingly).
fn write_rollups(
    tx: &Transaction,
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
        let key = params![
            k.metric.as_str(),
            k.site,
            k.page_group,
            k.device,
            k.source,
            k.flow,
            k.step,
            k.location,
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
            k.site,
            k.page_group,
            k.device,
            k.source,
            k.flow,
            k.step,
            k.location,
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
