//! The per-replica writer: a tokio task that owns one connection, takes the
//! page views and runs queued since its last batch, writes them in one
//! transaction and answers each caller only after the commit.
//!
//! A batch is a handful of statements whatever its size: raw rows go in and
//! are updated with `UNNEST` arrays, and rollup deltas are merged in memory
//! and upserted once per key (`count = count + excluded.count`), in key
//! order, so two replicas upserting the same keys wait for each other instead
//! of deadlocking. The dictionaries (series, attribution texts) are filled
//! before the batch's transaction, each with `INSERT … ON CONFLICT DO
//! NOTHING` and a read of the ids: an id this replica caches is committed,
//! whatever happens to the batch, and two replicas adding the same text at
//! once end with one id.
//!
//! Re-reports (CLS and INP grow while the page lives) replace values as the
//! SQLite backend does ([`merge_report`]), moving rollup and attribution
//! counts instead of adding. The identity `(origin_id, step_index)` cannot be
//! a unique index on the partitioned table, so the batch takes a
//! transaction-scoped advisory lock per identity, in sorted order, before it
//! looks rows up: two replicas given re-reports of one page view serialise.
//!
//! Raw rows live in daily partitions (`schema::partition_name`): created
//! ahead by [`maintain`] and on demand before a batch touches a day with
//! none; [`prune`] detaches (`CONCURRENTLY`, so ingest into the parent goes
//! on) and drops whole days.
//!
//! Connection loss fails the batch with [`StoreError::Unavailable`] (nothing
//! acknowledged) and the writer backs off, answering 503 at once meanwhile,
//! until a connection can be had again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_core::wire::ProbeRun;

use super::PgStore;
use super::schema::{DAY_MS, SCHEMA_LOCK, partition_name};
use crate::store::attribution::{
    AttributionDeltas, AttributionParts, Counted, MAX_TEXTS_PER_KIND, OVERFLOW, StoredAttribution,
    TextKind,
};
use crate::store::measurements::{PAGE_VIEW_STEP, Row, SeriesDims};
use crate::store::storage::{NewArtifact, NewPageView, NewRun};
use crate::store::writer::{Contributions, PRUNE_SLICE, WriterStats, merge_report, run_samples};
use crate::store::{StoreError, WriteOutcome, health};

/// Raw rows (page views, probe samples) in one transaction at most: bounds
/// the latency a burst adds and the size of the arrays sent.
const MAX_BATCH_ROWS: usize = 2048;
/// Jobs waiting for the writer; past this a write is refused with 503.
const QUEUE_CAPACITY: usize = 16 * 1024;
/// First wait after the database could not be reached, doubled each failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Series and texts cached per replica before the maps are dropped and refilled.
const MAX_CACHED_SERIES: usize = 100_000;
const MAX_CACHED_TEXT_BYTES: usize = 8 << 20;
/// Days of partitions [`maintain`] keeps ready after today.
const DAYS_AHEAD: i64 = 2;
const HOUR_MS: i64 = 3_600_000;

enum Op {
    PageViews(Vec<NewPageView>),
    Run(Box<NewRun>),
}

impl Op {
    fn rows(&self) -> usize {
        match self {
            Op::PageViews(v) => v.len(),
            Op::Run(r) => r.run.steps.len() + r.run.page_views.len(),
        }
    }
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// Days whose partition is known to exist, shared by the writer, `maintain`
/// and `prune` of one replica.
#[derive(Default)]
pub struct Partitions {
    days: Mutex<HashSet<i64>>,
}

impl Partitions {
    fn known(&self, day: i64) -> bool {
        self.days.lock().unwrap().contains(&day)
    }

    fn add(&self, day: i64) {
        self.days.lock().unwrap().insert(day);
    }

    fn forget(&self, day: i64) {
        self.days.lock().unwrap().remove(&day);
    }

    fn clear(&self) {
        self.days.lock().unwrap().clear();
    }
}

/// This replica's writer task: a bounded queue in front of it.
#[derive(Clone)]
pub struct PgWriter {
    queue: mpsc::Sender<Job>,
    pub stats: Arc<WriterStats>,
    pub partitions: Arc<Partitions>,
}

impl PgWriter {
    /// Start the writer task (on the current tokio runtime).
    pub fn start(pool: Pool) -> PgWriter {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        stats.alive.store(true, Relaxed);
        let partitions = Arc::new(Partitions::default());
        let task = Task {
            pool,
            client: None,
            series: SeriesCache::default(),
            texts: TextCache::default(),
            partitions: partitions.clone(),
            backoff: None,
        };
        let task_stats = stats.clone();
        tokio::spawn(async move {
            task.run(rx, &task_stats).await;
            task_stats.alive.store(false, Relaxed);
        });
        PgWriter {
            queue,
            stats,
            partitions,
        }
    }

    /// Queue a job and wait for its batch's commit. A full queue is refused
    /// at once (503): the database is not keeping up, and a client retrying
    /// later beats a request that hangs.
    async fn write(&self, op: Op) -> Result<WriteOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let result = match self.queue.try_send(Job { op, reply }) {
            Ok(()) => answer.await.unwrap_or(Err(StoreError::WriterGone)),
            Err(mpsc::error::TrySendError::Full(_)) => Err(StoreError::Unavailable(
                "the PostgreSQL write queue is full; retry later".into(),
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::WriterGone),
        };
        self.stats.health.record(&result);
        result
    }

    /// Store page views (one job: they share a batch and its commit).
    pub async fn append_page_views(&self, views: Vec<NewPageView>) -> Result<(), StoreError> {
        if views.is_empty() {
            return Ok(());
        }
        self.write(Op::PageViews(views)).await.map(|_| ())
    }

    pub async fn record_run(&self, run: NewRun) -> Result<WriteOutcome, StoreError> {
        self.write(Op::Run(Box::new(run))).await
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// The same error for every job of a failed batch (`StoreError` is not `Clone`).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Postgres(m) => StoreError::Postgres(m.clone()),
        StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
        StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::WriterGone => StoreError::WriterGone,
        other => StoreError::Internal(other.to_string()),
    }
}

struct Task {
    pool: Pool,
    /// The writer's connection, taken from the pool when first needed and
    /// thrown away (not returned) when it failed.
    client: Option<Object>,
    series: SeriesCache,
    texts: TextCache,
    partitions: Arc<Partitions>,
    /// After a connection failure: until when jobs fail at once, the current
    /// wait, and why.
    backoff: Option<(Instant, Duration, String)>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>, stats: &WriterStats) {
        let mut batch: Vec<Job> = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut rows = first.op.rows();
            batch.push(first);
            while rows < MAX_BATCH_ROWS {
                match rx.try_recv() {
                    Ok(job) => {
                        rows += job.op.rows();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.series.trim();
            self.texts.trim();
            let started = Instant::now();
            let results = self.apply(&batch).await;
            stats.commit_seconds.observe(started.elapsed());
            stats.batches.fetch_add(1, Relaxed);
            stats.writes.fetch_add(rows as u64, Relaxed);
            stats.last_batch_size.store(rows as u64, Relaxed);
            stats.max_batch_size.fetch_max(rows as u64, Relaxed);
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
        }
    }

    /// Each job's answer: all committed, or all failed with the batch's error.
    async fn apply(&mut self, batch: &[Job]) -> Vec<Result<WriteOutcome, StoreError>> {
        if let Some((until, _, why)) = &self.backoff
            && Instant::now() < *until
        {
            let e = StoreError::Unavailable(format!(
                "PostgreSQL cannot be reached (retrying in {} ms): {why}",
                until.saturating_duration_since(Instant::now()).as_millis()
            ));
            return batch.iter().map(|_| Err(copy_error(&e))).collect();
        }
        match self.commit(batch).await {
            Ok(results) => {
                self.backoff = None;
                results
            }
            Err(e) => {
                if let StoreError::Unavailable(why) = &e {
                    // Drop the connection rather than return it to the pool,
                    // and wait before trying the database again.
                    if let Some(client) = self.client.take() {
                        drop(Object::take(client));
                    }
                    let wait = self
                        .backoff
                        .as_ref()
                        .map_or(BACKOFF_START, |(_, w, _)| (*w * 2).min(BACKOFF_MAX));
                    self.backoff = Some((Instant::now() + wait, wait, why.clone()));
                } else {
                    // A statement failed: perhaps a partition this replica
                    // knew was dropped by another's prune; look again.
                    self.partitions.clear();
                }
                health::error_limited(
                    "PostgreSQL batch failed; no write of this batch was acknowledged",
                    &e.to_string(),
                );
                batch.iter().map(|_| Err(copy_error(&e))).collect()
            }
        }
    }

    async fn commit(
        &mut self,
        batch: &[Job],
    ) -> Result<Vec<Result<WriteOutcome, StoreError>>, StoreError> {
        // What each job writes, checked before anything is written: a run
        // refused for its content fails alone.
        let mut results: Vec<Option<Result<WriteOutcome, StoreError>>> = Vec::new();
        let mut runs: Vec<(usize, &NewRun, Vec<Sample>)> = Vec::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut reports = Vec::new();
        for (index, job) in batch.iter().enumerate() {
            match &job.op {
                Op::PageViews(views) => {
                    for view in views {
                        samples.push(Sample::page_view(view, &mut reports));
                    }
                    results.push(Some(Ok(WriteOutcome::Stored)));
                }
                Op::Run(run) => match run_samples(&run.run, &run.page_view_groups) {
                    Ok(found) => {
                        let rows = found
                            .into_iter()
                            .map(|s| Sample {
                                ts_ms: s.ts_ms,
                                series: s.series,
                                origin_id: run.run.run_id.clone(),
                                step_index: s.step_index,
                                row: RowSource::Ready(Box::new(s.row)),
                            })
                            .collect();
                        runs.push((index, run, rows));
                        results.push(None);
                    }
                    Err(e) => results.push(Some(Err(e))),
                },
            }
        }
        // A connection the server closed while the writer was idle (a
        // restart, an administrator's pg_terminate_backend): nothing was
        // sent on it yet, so take another instead of failing the batch.
        if let Some(client) = self.client.take_if(|c| c.is_closed()) {
            drop(Object::take(client));
        }
        if self.client.is_none() {
            self.client = Some(self.pool.get().await.map_err(StoreError::from)?);
        }
        let client = self.client.as_mut().expect("connected above");

        // Dictionaries and partitions, each committed on its own.
        let mut all_series: Vec<&SeriesDims> = samples.iter().map(|s| &s.series).collect();
        all_series.extend(
            runs.iter()
                .flat_map(|(_, _, s)| s.iter().map(|s| &s.series)),
        );
        self.series.ensure(client, &all_series).await?;
        self.texts.ensure(client, &reports).await?;
        let mut days: Vec<i64> = samples
            .iter()
            .chain(runs.iter().flat_map(|(_, _, s)| s.iter()))
            .map(|s| s.ts_ms.div_euclid(DAY_MS))
            .collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            ensure_partition(client, &self.partitions, day).await?;
        }

        let tx = client.transaction().await.map_err(StoreError::from)?;
        // Runs in id order: two replicas storing the same runs wait for each
        // other on the primary key instead of deadlocking.
        runs.sort_by(|a, b| a.1.run.run_id.cmp(&b.1.run.run_id));
        let insert_run = tx
            .prepare_cached(
                "INSERT INTO runs (run_id, flow, location, outcome, started_at_ms, received_ms, document)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (run_id) DO NOTHING",
            )
            .await.map_err(StoreError::from)?;
        for (index, new, rows) in runs {
            let run: &ProbeRun = &new.run;
            let document = serde_json::to_string(run).expect("a ProbeRun always serialises");
            let inserted = tx
                .execute(
                    &insert_run,
                    &[
                        &run.run_id,
                        &run.flow,
                        &run.location,
                        &run.outcome.as_str(),
                        &(run.started_at_ms as i64),
                        &new.received_ms,
                        &document,
                    ],
                )
                .await
                .map_err(StoreError::from)?;
            results[index] = Some(Ok(if inserted == 0 {
                WriteOutcome::AlreadyStored
            } else {
                samples.extend(rows);
                WriteOutcome::Stored
            }));
        }

        // Samples as rows of dictionary ids.
        let mut rows = Vec::with_capacity(samples.len());
        for sample in samples {
            let series = self.series.id(&sample.series)?;
            let row = match sample.row {
                RowSource::Ready(row) => *row,
                RowSource::Reports(range) => {
                    let mut row = Row::default();
                    for (metric, value, parts) in &reports[range] {
                        let a = parts.stored(|kind, text| self.texts.id(kind, text));
                        row.navigation = Some(a.navigation);
                        row.connection = Some(a.connection);
                        row.set(*metric, *value, Some(&a));
                    }
                    row
                }
            };
            rows.push(Keyed {
                ts_ms: sample.ts_ms,
                series,
                origin_id: sample.origin_id,
                step_index: sample.step_index,
                row,
            });
        }

        if !rows.is_empty() {
            write_rows(&tx, rows, &mut self.series).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Internal("a job was not applied".into()))))
            .collect())
    }
}

/// One raw row to write, before dictionary ids are known.
struct Sample {
    ts_ms: i64,
    series: SeriesDims,
    origin_id: String,
    step_index: i64,
    row: RowSource,
}

enum RowSource {
    /// A probe step's values (no attribution).
    Ready(Box<Row>),
    /// A page view: its reports, by index into the batch's list.
    Reports(std::ops::Range<usize>),
}

type Report<'a> = (Metric, f64, AttributionParts<'a>);

impl Sample {
    fn page_view<'a>(view: &'a NewPageView, reports: &mut Vec<Report<'a>>) -> Sample {
        let b = &view.beacon;
        let start = reports.len();
        for report in &b.reports {
            reports.push((report.metric, report.value, AttributionParts::of(b, report)));
        }
        Sample {
            ts_ms: view.received_ms,
            series: SeriesDims {
                site: b.site.clone(),
                page_group: view.page_group.clone(),
                device: b.device.map_or("unknown", |d| d.as_str()).to_string(),
                source: "rum".into(),
                flow: String::new(),
                step: String::new(),
                location: String::new(),
            },
            origin_id: b.page_view_id.clone(),
            step_index: PAGE_VIEW_STEP,
            row: RowSource::Reports(start..reports.len()),
        }
    }
}

/// A raw row with its series id and identity.
struct Keyed {
    ts_ms: i64,
    series: i64,
    origin_id: String,
    step_index: i64,
    row: Row,
}

/// A stable 64-bit hash of a row's identity (FNV-1a): every replica must
/// compute the same advisory lock key.
fn identity_key(origin_id: &str, step_index: i64) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in origin_id
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(&step_index.to_le_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

const VALUE_COLUMNS: &str = "lcp, cls, inp, fcp, ttfb, tbt, navigation, connection, lcp_element, \
     lcp_resource, inp_target, cls_source, inp_input_delay, inp_processing, inp_presentation";

/// Column arrays of raw rows for `UNNEST`.
#[derive(Default)]
struct Columns {
    values: [Vec<Option<f64>>; 6],
    ids: [Vec<Option<i32>>; 6],
    split: [Vec<Option<f64>>; 3],
}

impl Columns {
    fn push(&mut self, row: &Row) {
        for (column, value) in self.values.iter_mut().zip(row.values) {
            column.push(value);
        }
        let ids = [
            row.navigation,
            row.connection,
            row.lcp_element,
            row.lcp_resource,
            row.inp_target,
            row.cls_source,
        ];
        for (column, id) in self.ids.iter_mut().zip(ids) {
            column.push(id.map(|v| v as i32));
        }
        for (i, column) in self.split.iter_mut().enumerate() {
            column.push(row.inp_split.map(|s| s[i]));
        }
    }

    /// The arrays in [`VALUE_COLUMNS`] order.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(15);
        p.extend(self.values.iter().map(|c| c as &(dyn ToSql + Sync)));
        p.extend(self.ids.iter().map(|c| c as &(dyn ToSql + Sync)));
        p.extend(self.split.iter().map(|c| c as &(dyn ToSql + Sync)));
        p
    }
}

/// `$first::float8[], …` for the 15 value columns.
fn value_casts(first: usize) -> String {
    (0..15)
        .map(|i| {
            let t = if (6..12).contains(&i) {
                "int4"
            } else {
                "float8"
            };
            format!("${}::{t}[]", first + i)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored row the batch changes.
struct Found {
    /// `None`: inserted by this batch.
    id: Option<i64>,
    ts_ms: i64,
    series: i64,
    row: Row,
    changed: bool,
}

/// Insert new rows and merge re-reports into stored ones, under the
/// identities' advisory locks, collecting the rollup deltas.
async fn write_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: Vec<Keyed>,
    series: &mut SeriesCache,
) -> Result<(), StoreError> {
    let mut deltas = Deltas::default();
    let mut keys: Vec<i64> = rows
        .iter()
        .map(|r| identity_key(&r.origin_id, r.step_index))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // Sorted in the subquery, so locks are taken in key order.
    let lock = tx
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(k)
             FROM (SELECT k FROM unnest($1::int8[]) AS k ORDER BY k) AS sorted",
        )
        .await
        .map_err(StoreError::from)?;
    let mut origins: Vec<&str> = rows.iter().map(|r| r.origin_id.as_str()).collect();
    origins.sort_unstable();
    origins.dedup();
    let lookup = tx
        .prepare_cached(&format!(
            "SELECT id, ts_ms, series, origin_id, step_index, {VALUE_COLUMNS}
             FROM measurements WHERE origin_id = ANY($1::text[])"
        ))
        .await
        .map_err(StoreError::from)?;
    let wanted: HashSet<(&str, i64)> = rows
        .iter()
        .map(|r| (r.origin_id.as_str(), r.step_index))
        .collect();
    // Sent together: the server runs the lookup after the locks are held,
    // and its snapshot is taken then, so it sees what their last holder
    // committed.
    let (_, stored) = {
        let (lock_params, lookup_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
            ([&keys], [&origins]);
        tokio::try_join!(
            tx.execute(&lock, &lock_params),
            tx.query(&lookup, &lookup_params)
        )
        .map_err(StoreError::from)?
    };
    let mut found: HashMap<(String, i64), Found> = HashMap::new();
    for r in stored {
        let origin: String = r.get(3);
        let step: i32 = r.get(4);
        if !wanted.contains(&(origin.as_str(), i64::from(step))) {
            continue;
        }
        let id = |i: usize| r.get::<_, Option<i32>>(i).map(i64::from);
        let split: [Option<f64>; 3] = [r.get(17), r.get(18), r.get(19)];
        let row = Row {
            values: [r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)],
            navigation: id(11),
            connection: id(12),
            lcp_element: id(13),
            lcp_resource: id(14),
            inp_target: id(15),
            cls_source: id(16),
            inp_split: match split {
                [Some(d), Some(p), Some(s)] => Some([d, p, s]),
                _ => None,
            },
        };
        found.insert(
            (origin, i64::from(step)),
            Found {
                id: Some(r.get(0)),
                ts_ms: r.get(1),
                series: i64::from(r.get::<_, i32>(2)),
                row,
                changed: false,
            },
        );
    }

    // In the order the reports came: a re-report later in the batch merges
    // into what an earlier one left.
    let mut inserts: Vec<(String, i64)> = Vec::new();
    for r in rows {
        let key = (r.origin_id, r.step_index);
        match found.get_mut(&key) {
            Some(stored) => {
                stored.row = merge_report(
                    stored.series,
                    stored.ts_ms,
                    &stored.row,
                    &r.row,
                    &mut deltas,
                );
                stored.changed = true;
            }
            None => {
                for (metric, value) in r.row.present() {
                    deltas.add(
                        r.series,
                        r.ts_ms,
                        metric,
                        value,
                        r.row.attribution(metric).as_ref(),
                        1,
                    );
                }
                inserts.push(key.clone());
                found.insert(
                    key,
                    Found {
                        id: None,
                        ts_ms: r.ts_ms,
                        series: r.series,
                        row: r.row,
                        changed: true,
                    },
                );
            }
        }
    }

    let (mut ts, mut series_ids, mut origin, mut step) = (vec![], vec![], vec![], vec![]);
    let mut new_columns = Columns::default();
    for key in &inserts {
        let f = &found[key];
        ts.push(f.ts_ms);
        series_ids.push(f.series as i32);
        origin.push(key.0.as_str());
        step.push(key.1 as i32);
        new_columns.push(&f.row);
    }
    let insert = async {
        if inserts.is_empty() {
            return Ok(0);
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO measurements (ts_ms, series, origin_id, step_index, {VALUE_COLUMNS})
                 SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::int4[], {})",
                value_casts(5)
            ))
            .await?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ts, &series_ids, &origin, &step];
        params.extend(new_columns.params());
        tx.execute(&insert, &params).await
    };

    let (mut ids, mut stored_ts) = (vec![], vec![]);
    let mut columns = Columns::default();
    for f in found.values().filter(|f| f.changed) {
        if let Some(id) = f.id {
            ids.push(id);
            stored_ts.push(f.ts_ms);
            columns.push(&f.row);
        }
    }
    let update = async {
        if ids.is_empty() {
            return Ok(0);
        }
        let set = VALUE_COLUMNS
            .split(", ")
            .map(|c| format!("{c} = u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let update = tx
            .prepare_cached(&format!(
                "UPDATE measurements AS m SET {set}
                 FROM unnest($1::int8[], $2::int8[], {}) AS u(id, ts_ms, {VALUE_COLUMNS})
                 WHERE m.id = u.id AND m.ts_ms = u.ts_ms",
                value_casts(3)
            ))
            .await?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids, &stored_ts];
        params.extend(columns.params());
        tx.execute(&update, &params).await
    };
    // Rows and rollups in one round trip (pipelined on the connection).
    tokio::try_join!(
        async { insert.await.map_err(StoreError::from) },
        async { update.await.map_err(StoreError::from) },
        deltas.write(tx, series)
    )?;
    Ok(())
}

/// A batch's rollup changes, merged in memory and kept in key order.
#[derive(Default)]
struct Deltas {
    /// (metric, hour, series) → count, good, needs improvement, poor.
    rollups: BTreeMap<(&'static str, i64, i64), [i64; 4]>,
    /// (metric, hour, series, bucket) → count.
    buckets: BTreeMap<(&'static str, i64, i64, i16), i64>,
    attribution: AttributionDeltas,
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
        let hour = ts_ms.div_euclid(HOUR_MS);
        let counts = self
            .rollups
            .entry((metric.as_str(), hour, series))
            .or_default();
        counts[0] += sign;
        counts[match metric.rate(value) {
            Rating::Good => 1,
            Rating::NeedsImprovement => 2,
            Rating::Poor => 3,
        }] += sign;
        *self
            .buckets
            .entry((
                metric.as_str(),
                hour,
                series,
                crate::histogram::bucket_of(value),
            ))
            .or_default() += sign;
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

impl Deltas {
    /// Upsert every non-zero change, one statement per table, in key order:
    /// the hourly rollups, the same merged per UTC day, and attribution.
    /// The five statements are sent together (tokio-postgres pipelines
    /// queries polled at once on one connection): one round trip, not five.
    async fn write(
        self,
        tx: &deadpool_postgres::Transaction<'_>,
        series: &mut SeriesCache,
    ) -> Result<(), StoreError> {
        // Attribution rows need the dimensions of their series.
        let needed: Vec<i64> = self.attribution.entries().map(|e| e.2).collect();
        series.load_dims(tx, &needed).await?;
        let series = &*series;
        // The same deltas per UTC day, for the daily tables (merged before
        // zeros are dropped: moves within a day cancel out).
        let mut daily_rollups: BTreeMap<(&'static str, i64, i64), [i64; 4]> = BTreeMap::new();
        for ((m, h, s), c) in &self.rollups {
            let total = daily_rollups.entry((*m, h.div_euclid(24), *s)).or_default();
            for (t, v) in total.iter_mut().zip(c) {
                *t += v;
            }
        }
        let mut daily_buckets: BTreeMap<(&'static str, i64, i64, i16), i64> = BTreeMap::new();
        for ((m, h, s, b), c) in &self.buckets {
            *daily_buckets
                .entry((*m, h.div_euclid(24), *s, *b))
                .or_default() += c;
        }
        let rollups = upsert_rollups(tx, RollupTable::HOURLY, &self.rollups);
        let daily = upsert_rollups(tx, RollupTable::DAILY, &daily_rollups);
        let buckets = upsert_buckets(tx, RollupTable::HOURLY, &self.buckets);
        let daily_buckets = upsert_buckets(tx, RollupTable::DAILY, &daily_buckets);

        // Attribution rows are keyed by site, page group and device, which
        // several series may share: merged again under that key.
        type Key<'a> = (
            &'static str,
            &'static str,
            i32,
            &'a str,
            &'a str,
            &'a str,
            i32,
        );
        let mut merged: BTreeMap<Key, crate::store::attribution::Sums> = BTreeMap::new();
        for (m, h, s, kind, item, sums) in self.attribution.entries() {
            let d = series.dims(s)?;
            let key = (
                m.as_str(),
                kind.as_str(),
                h as i32,
                d.site.as_str(),
                d.page_group.as_str(),
                d.device.as_str(),
                item as i32,
            );
            let total = merged.entry(key).or_default();
            total.count += sums.count;
            total.value += sums.value;
            total.split_count += sums.split_count;
            for (t, p) in total.split.iter_mut().zip(sums.split) {
                *t += p;
            }
        }
        // metric, kind, site, page group, device; hour and item.
        let mut texts: [Vec<&str>; 5] = Default::default();
        let (mut a_hour, mut item) = (vec![], vec![]);
        let (mut n, mut value, mut split_n) = (vec![], vec![], vec![]);
        let mut split: [Vec<f64>; 3] = Default::default();
        for ((m, k, h, site, pg, dev, i), s) in &merged {
            for (column, text) in texts.iter_mut().zip([*m, *k, *site, *pg, *dev]) {
                column.push(text);
            }
            a_hour.push(*h);
            item.push(*i);
            n.push(s.count);
            value.push(s.value);
            split_n.push(s.split_count);
            for (c, v) in split.iter_mut().zip(s.split) {
                c.push(v);
            }
        }
        let attribution = async {
            if merged.is_empty() {
                return Ok(0);
            }
            let upsert = tx
            .prepare_cached(
                "INSERT INTO attribution_rollups AS r (metric, kind, hour, site, page_group, device, item,
                     count, value_sum, split_count, input_delay_sum, processing_sum, presentation_sum)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[],
                                      $6::text[], $7::int4[], $8::int8[], $9::float8[], $10::int8[],
                                      $11::float8[], $12::float8[], $13::float8[])
                 ON CONFLICT (metric, kind, hour, site, page_group, device, item) DO UPDATE SET
                     count = r.count + excluded.count,
                     value_sum = r.value_sum + excluded.value_sum,
                     split_count = r.split_count + excluded.split_count,
                     input_delay_sum = r.input_delay_sum + excluded.input_delay_sum,
                     processing_sum = r.processing_sum + excluded.processing_sum,
                     presentation_sum = r.presentation_sum + excluded.presentation_sum",
            )
            .await?;
            tx.execute(
                &upsert,
                &[
                    &texts[0], &texts[1], &a_hour, &texts[2], &texts[3], &texts[4], &item, &n,
                    &value, &split_n, &split[0], &split[1], &split[2],
                ],
            )
            .await
        };
        tokio::try_join!(rollups, daily, buckets, daily_buckets, attribution)
            .map_err(StoreError::from)?;
        Ok(())
    }
}

/// A pair of rollup tables of one grain: counts and histogram buckets, and
/// the name of their time column.
#[derive(Clone, Copy)]
struct RollupTable {
    counts: &'static str,
    buckets: &'static str,
    time: &'static str,
}

impl RollupTable {
    /// Keyed by hour (ts_ms / 3_600_000).
    const HOURLY: RollupTable = RollupTable {
        counts: "rollups",
        buckets: "rollup_buckets",
        time: "hour",
    };
    /// Keyed by UTC day (ts_ms / 86_400_000).
    const DAILY: RollupTable = RollupTable {
        counts: "rollups_daily",
        buckets: "rollup_buckets_daily",
        time: "day",
    };
}

/// Add the non-zero `deltas` ((metric, time, series) → count, good, needs
/// improvement, poor) to `table`'s counts: one statement, rows in key order.
async fn upsert_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    table: RollupTable,
    deltas: &BTreeMap<(&'static str, i64, i64), [i64; 4]>,
) -> Result<u64, tokio_postgres::Error> {
    let (mut metric, mut time, mut ser) = (vec![], vec![], vec![]);
    let mut counts: [Vec<i64>; 4] = Default::default();
    for ((m, t, s), c) in deltas.iter().filter(|(_, c)| **c != [0; 4]) {
        metric.push(*m);
        time.push(*t as i32);
        ser.push(*s as i32);
        for (column, v) in counts.iter_mut().zip(c) {
            column.push(*v);
        }
    }
    if metric.is_empty() {
        return Ok(0);
    }
    let RollupTable {
        counts: name,
        time: unit,
        ..
    } = table;
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {name} AS r (metric, {unit}, series, count, good, needs_improvement, poor)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::int8[], $5::int8[],
                                  $6::int8[], $7::int8[])
             ON CONFLICT (metric, {unit}, series) DO UPDATE SET
                 count = r.count + excluded.count,
                 good = r.good + excluded.good,
                 needs_improvement = r.needs_improvement + excluded.needs_improvement,
                 poor = r.poor + excluded.poor"
        ))
        .await?;
    tx.execute(
        &upsert,
        &[
            &metric, &time, &ser, &counts[0], &counts[1], &counts[2], &counts[3],
        ],
    )
    .await
}

/// Add the non-zero `deltas` ((metric, time, series, bucket) → count) to
/// `table`'s histogram buckets: one statement, rows in key order.
async fn upsert_buckets(
    tx: &deadpool_postgres::Transaction<'_>,
    table: RollupTable,
    deltas: &BTreeMap<(&'static str, i64, i64, i16), i64>,
) -> Result<u64, tokio_postgres::Error> {
    let (mut metric, mut time, mut ser, mut bucket, mut count) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((m, t, s, b), c) in deltas.iter().filter(|(_, c)| **c != 0) {
        metric.push(*m);
        time.push(*t as i32);
        ser.push(*s as i32);
        bucket.push(*b);
        count.push(*c);
    }
    if metric.is_empty() {
        return Ok(0);
    }
    let RollupTable {
        buckets: name,
        time: unit,
        ..
    } = table;
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {name} AS r (metric, {unit}, series, bucket, count)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::int2[], $5::int8[])
             ON CONFLICT (metric, {unit}, series, bucket) DO UPDATE SET
                 count = r.count + excluded.count"
        ))
        .await?;
    tx.execute(&upsert, &[&metric, &time, &ser, &bucket, &count])
        .await
}

/// This replica's view of `series`: ids by dimensions and back.
#[derive(Default)]
struct SeriesCache {
    ids: HashMap<SeriesDims, i64>,
    dims: HashMap<i64, SeriesDims>,
}

impl SeriesCache {
    fn trim(&mut self) {
        if self.ids.len() > MAX_CACHED_SERIES || self.dims.len() > MAX_CACHED_SERIES {
            *self = SeriesCache::default();
        }
    }

    fn id(&self, dims: &SeriesDims) -> Result<i64, StoreError> {
        self.ids
            .get(dims)
            .copied()
            .ok_or_else(|| StoreError::Internal("a series was used before it was stored".into()))
    }

    fn dims(&self, id: i64) -> Result<&SeriesDims, StoreError> {
        self.dims
            .get(&id)
            .ok_or_else(|| StoreError::Internal(format!("series {id} is not stored")))
    }

    fn remember(&mut self, id: i64, dims: SeriesDims) {
        self.ids.insert(dims.clone(), id);
        self.dims.insert(id, dims);
    }

    /// Store the series not seen before (committed at once) and learn their ids.
    async fn ensure(&mut self, client: &Object, wanted: &[&SeriesDims]) -> Result<(), StoreError> {
        let mut missing: Vec<&SeriesDims> = wanted
            .iter()
            .copied()
            .filter(|d| !self.ids.contains_key(*d))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // Sorted: two replicas adding the same series lock them in one order.
        missing.sort_by(|a, b| a.as_ref().parts().cmp(&b.as_ref().parts()));
        missing.dedup();
        let mut columns: [Vec<&str>; 7] = Default::default();
        for d in &missing {
            let parts = [
                &d.site,
                &d.page_group,
                &d.device,
                &d.source,
                &d.flow,
                &d.step,
                &d.location,
            ];
            for (c, part) in columns.iter_mut().zip(parts) {
                c.push(part.as_str());
            }
        }
        let params: Vec<&(dyn ToSql + Sync)> =
            columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        let insert = client
            .prepare_cached(
                "INSERT INTO series (site, page_group, device, source, flow, step, location)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(StoreError::from)?;
        client
            .execute(&insert, &params)
            .await
            .map_err(StoreError::from)?;
        let read = client
            .prepare_cached(
                "SELECT s.id, s.site, s.page_group, s.device, s.source, s.flow, s.step, s.location
                 FROM series AS s
                 JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[]) AS u(site, page_group, device, source, flow, step, location)
                   USING (site, page_group, device, source, flow, step, location)",
            )
            .await.map_err(StoreError::from)?;
        for r in client
            .query(&read, &params)
            .await
            .map_err(StoreError::from)?
        {
            self.remember(i64::from(r.get::<_, i32>(0)), dims_from(&r, 1));
        }
        Ok(())
    }

    /// Read the dimensions of series ids this replica has not cached (rows
    /// another replica stored).
    async fn load_dims(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        ids: &[i64],
    ) -> Result<(), StoreError> {
        let mut missing: Vec<i32> = ids
            .iter()
            .filter(|id| !self.dims.contains_key(id))
            .map(|id| *id as i32)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        let read = tx
            .prepare_cached(
                "SELECT id, site, page_group, device, source, flow, step, location
                 FROM series WHERE id = ANY($1::int4[])",
            )
            .await
            .map_err(StoreError::from)?;
        for r in tx
            .query(&read, &[&missing])
            .await
            .map_err(StoreError::from)?
        {
            self.remember(i64::from(r.get::<_, i32>(0)), dims_from(&r, 1));
        }
        Ok(())
    }
}

fn dims_from(r: &tokio_postgres::Row, first: usize) -> SeriesDims {
    SeriesDims {
        site: r.get(first),
        page_group: r.get(first + 1),
        device: r.get(first + 2),
        source: r.get(first + 3),
        flow: r.get(first + 4),
        step: r.get(first + 5),
        location: r.get(first + 6),
    }
}

/// This replica's view of `attribution_texts`.
#[derive(Default)]
struct TextCache {
    ids: HashMap<(TextKind, String), i64>,
    bytes: usize,
    /// Rows per capped section (selectors, URLs), read when first needed;
    /// another replica's inserts are seen when it is read again.
    stored: Option<HashMap<TextKind, i64>>,
}

impl TextCache {
    fn trim(&mut self) {
        if self.bytes > MAX_CACHED_TEXT_BYTES {
            *self = TextCache::default();
        }
    }

    /// A text's id; [`OVERFLOW`] for one the full dictionary refused.
    fn id(&self, kind: TextKind, text: &str) -> i64 {
        // A borrowed key would need a map per kind; texts are short.
        self.ids
            .get(&(kind, text.to_string()))
            .copied()
            .unwrap_or(OVERFLOW)
    }

    async fn ensure(&mut self, client: &Object, reports: &[Report<'_>]) -> Result<(), StoreError> {
        let mut missing: BTreeMap<TextKind, Vec<&str>> = BTreeMap::new();
        for (_, _, parts) in reports {
            for (kind, text) in parts.texts() {
                if let Some(text) = text
                    && !self.ids.contains_key(&(kind, text.to_string()))
                {
                    missing.entry(kind).or_default().push(text);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if self.stored.is_none() {
            let mut counts = HashMap::new();
            for r in client
                .query(
                    "SELECT kind, count(*) FROM attribution_texts GROUP BY kind",
                    &[],
                )
                .await
                .map_err(StoreError::from)?
            {
                let kind: String = r.get(0);
                if let Some(k) = [TextKind::Selector, TextKind::Url]
                    .into_iter()
                    .find(|k| k.as_str() == kind)
                {
                    counts.insert(k, r.get::<_, i64>(1));
                }
            }
            self.stored = Some(counts);
        }
        let insert = client
            .prepare_cached(
                "INSERT INTO attribution_texts (kind, text)
                 SELECT $1, t FROM unnest($2::text[]) AS t ORDER BY t
                 ON CONFLICT (kind, text) DO NOTHING",
            )
            .await
            .map_err(StoreError::from)?;
        let read = client
            .prepare_cached(
                "SELECT id, text FROM attribution_texts WHERE kind = $1 AND text = ANY($2::text[])",
            )
            .await
            .map_err(StoreError::from)?;
        for (kind, mut texts) in missing {
            texts.sort_unstable();
            texts.dedup();
            let stored = self.stored.as_mut().expect("read above");
            // Past the cap new texts count as "(other)" (not cached, so the
            // map does not grow with what the table refused); a text stored
            // meanwhile, by this replica or another, keeps its id.
            let full = kind.capped() && *stored.get(&kind).unwrap_or(&0) >= MAX_TEXTS_PER_KIND;
            if !full {
                let added = client
                    .execute(&insert, &[&kind.as_str(), &texts])
                    .await
                    .map_err(StoreError::from)?;
                *stored.entry(kind).or_default() += added as i64;
            }
            for r in client
                .query(&read, &[&kind.as_str(), &texts])
                .await
                .map_err(StoreError::from)?
            {
                let text: String = r.get(1);
                self.bytes += text.len() + 48;
                self.ids.insert((kind, text), i64::from(r.get::<_, i32>(0)));
            }
        }
        Ok(())
    }
}

/// Make sure `day`'s partition exists: created in its own short transaction
/// under the schema lock, so replicas creating it at the same moment take
/// turns and the second finds it. Created as a plain table and then attached:
/// `CREATE TABLE … PARTITION OF` would take an ACCESS EXCLUSIVE lock on
/// `measurements` and queue every replica's inserts behind the longest read,
/// while `ATTACH PARTITION` takes SHARE UPDATE EXCLUSIVE, which inserts and
/// reads pass (the new table is empty, so its bounds are checked at once).
async fn ensure_partition(
    client: &mut Object,
    partitions: &Partitions,
    day: i64,
) -> Result<(), StoreError> {
    if partitions.known(day) {
        return Ok(());
    }
    let name = partition_name(day);
    let attached = "SELECT EXISTS (SELECT 1 FROM pg_inherits
                     WHERE inhrelid = to_regclass($1) AND NOT inhdetachpending)";
    let ready: bool = client
        .query_one(attached, &[&name])
        .await
        .map_err(StoreError::from)?
        .get(0);
    if !ready {
        let tx = client.transaction().await.map_err(StoreError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(StoreError::from)?;
        // Again under the lock: another replica may have made it meanwhile.
        if !tx
            .query_one(attached, &[&name])
            .await
            .map_err(StoreError::from)?
            .get::<_, bool>(0)
        {
            // The name and bounds are built from integers, not from input. A
            // table of that name left detached (a prune between its detach
            // and its drop) is attached again: its rows are not yet pruned.
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {name} (LIKE measurements INCLUDING DEFAULTS);
                 ALTER TABLE measurements ATTACH PARTITION {name}
                     FOR VALUES FROM ({}) TO ({})",
                day * DAY_MS,
                (day + 1) * DAY_MS
            ))
            .await
            .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
    }
    partitions.add(day);
    Ok(())
}

pub async fn record_artifact(s: &PgStore, a: NewArtifact) -> Result<WriteOutcome, StoreError> {
    let result = store_artifact(s, a).await;
    s.writer.stats.health.record(&result);
    result
}

async fn store_artifact(s: &PgStore, a: NewArtifact) -> Result<WriteOutcome, StoreError> {
    let client = s.client().await?;
    let document: Option<String> = client
        .query_opt("SELECT document FROM runs WHERE run_id = $1", &[&a.run_id])
        .await
        .map_err(StoreError::from)?
        .map(|r| r.get(0));
    let run_id = &a.run_id;
    let Some(document) = document else {
        return Err(StoreError::NotFound(format!(
            "run {run_id} is not stored; upload the run first"
        )));
    };
    let run: ProbeRun = serde_json::from_str(&document)
        .map_err(|e| StoreError::Corrupt(format!("stored run {run_id} is unreadable: {e}")))?;
    let Some(listed) = run.artifacts.iter().find(|l| l.name == a.name) else {
        return Err(StoreError::NotFound(format!(
            "run {run_id} lists no artifact named {:?}",
            a.name
        )));
    };
    if !listed.sha256.eq_ignore_ascii_case(&a.sha256) {
        return Err(StoreError::Invalid(format!(
            "content sha256 {} does not match the run's artifacts entry {}",
            a.sha256, listed.sha256
        )));
    }
    let inserted = client
        .execute(
            "INSERT INTO artifacts (run_id, name, content_type, sha256, content)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, name) DO NOTHING",
            &[&a.run_id, &a.name, &a.content_type, &a.sha256, &a.content],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(if inserted == 0 {
        WriteOutcome::AlreadyStored
    } else {
        WriteOutcome::Stored
    })
}

/// Drop the partitions of raw rows that end at or before `before_ms`, and a
/// slice of the runs (with their artifacts) started before it. Rollups stay.
/// Raw rows of the day `before_ms` falls in stay until that whole day is
/// past the cut: retention is by whole days.
pub async fn prune(s: &PgStore, before_ms: i64) -> Result<WriteOutcome, StoreError> {
    let result = prune_now(s, before_ms).await;
    s.writer.stats.health.record(&result);
    result
}

async fn prune_now(s: &PgStore, before_ms: i64) -> Result<WriteOutcome, StoreError> {
    let client = s.client().await?;
    // Every day table, attached or left detached by a prune that stopped
    // between its detach and its drop.
    let tables = client
        .query(
            "SELECT c.relname, i.inhdetachpending
             FROM pg_class AS c
             LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid
             WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
               AND c.relname ~ '^measurements_d[0-9]+$'",
            &[],
        )
        .await
        .map_err(StoreError::from)?;
    let mut doomed: Vec<(i64, String, Option<bool>)> = tables
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            let day: i64 = name.strip_prefix("measurements_d")?.parse().ok()?;
            ((day + 1) * DAY_MS <= before_ms).then(|| (day, name, r.get(1)))
        })
        .collect();
    doomed.sort();
    let mut rows = 0usize;
    for (day, name, attached) in doomed {
        s.writer.partitions.forget(day);
        let counted = client
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await;
        let held = match counted {
            Ok(r) => r.get::<_, i64>(0) as usize,
            // Another replica dropped it meanwhile.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                continue;
            }
            Err(e) => return Err(StoreError::from(e)),
        };
        // DETACH … CONCURRENTLY takes only a SHARE UPDATE EXCLUSIVE lock on
        // `measurements`, so inserts go on while it waits for readers of the
        // partition; FINALIZE completes one a crash interrupted. Outside a
        // transaction block, hence one simple-protocol statement each.
        let detach = match attached {
            Some(false) => Some("CONCURRENTLY"),
            Some(true) => Some("FINALIZE"),
            None => None,
        };
        if let Some(how) = detach
            && let Err(e) = client
                .batch_execute(&format!(
                    "ALTER TABLE measurements DETACH PARTITION {name} {how}"
                ))
                .await
        {
            // Detached or dropped by another replica in the meantime.
            let gone = matches!(
                e.code(),
                Some(c) if *c == tokio_postgres::error::SqlState::UNDEFINED_TABLE
                    || *c == tokio_postgres::error::SqlState::WRONG_OBJECT_TYPE
                    || *c == tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
            );
            if !gone {
                return Err(StoreError::from(e));
            }
        }
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .await
            .map_err(StoreError::from)?;
        rows += held;
    }
    // Runs go in slices (the oldest first), their artifacts with them.
    let runs = client
        .execute(
            "WITH doomed AS (
                 SELECT run_id FROM runs WHERE started_at_ms < $1
                 ORDER BY started_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED),
             gone AS (DELETE FROM artifacts WHERE run_id IN (SELECT run_id FROM doomed))
             DELETE FROM runs WHERE run_id IN (SELECT run_id FROM doomed)",
            &[&before_ms, &(PRUNE_SLICE as i64)],
        )
        .await
        .map_err(StoreError::from)? as usize;
    Ok(WriteOutcome::Pruned {
        rows,
        runs,
        more: runs == PRUNE_SLICE,
    })
}

/// Keep today's partition and the next [`DAYS_AHEAD`] days' ready, so
/// ingest rarely creates one on its path.
pub async fn maintain(s: &PgStore) -> Result<(), StoreError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let today = now_ms.div_euclid(DAY_MS);
    let mut client = s.client().await?;
    for day in today..=today + DAYS_AHEAD {
        ensure_partition(&mut client, &s.writer.partitions, day).await?;
    }
    Ok(())
}
