//! Alerts on PostgreSQL: the engine's snapshot and evaluation writes, alert
//! states and transitions, acknowledgements, silences, the evaluator lease,
//! and the email outbox shared by replicas. The semantics are SQLite's
//! (`store/alerts.rs`, the alert parts of `store/views.rs`); what differs is
//! what several replicas on one database need:
//!
//! - **One evaluator.** The `alert_lease` row names the replica that
//!   evaluates and a `term` that grows by one at every change of holder.
//!   [`evaluator_lease`] takes the row when it is free or expired and renews
//!   it while this replica holds it; expiry is measured by the database's
//!   clock, so replicas with skewed clocks agree on it. [`record_evaluation`]
//!   locks the row (`FOR SHARE`) in its own transaction and writes only when
//!   this replica still holds it under the term the evaluation was made with:
//!   a replica that paused past its TTL (GC, a stalled VM) and lost the lease
//!   writes nothing, and while it writes nobody can take the lease (taking
//!   it updates the row, which waits for the share lock). No session advisory
//!   lock: PgBouncer's transaction pooling would hand it to another client.
//! - **A shared outbox.** [`claim_outbox`] locks due rows `FOR UPDATE SKIP
//!   LOCKED` and stamps `claimed_until_ms` ([`CLAIM_MS`] on): no other
//!   replica takes them until the claimant records the attempt
//!   ([`record_delivery`] clears the claim) or the claim expires, which is how
//!   a crashed sender's rows come back. Claims are made one at a time
//!   (a transaction-scoped advisory lock) and stop at the first pending row
//!   that is not due *or claimed by someone else*, so the queue's order holds
//!   across replicas as it does in SQLite: a resolved email never overtakes
//!   its firing one.
//!
//!   The crash window: a replica that is killed after the SMTP server
//!   accepted a message and before [`record_delivery`] committed leaves the
//!   row claimed; when the claim expires another replica sends it again.
//!   That second copy carries the same `Message-ID` (it is part of the stored
//!   message, rendered once by the evaluator, see `alerts/outbox.rs`), so
//!   mail clients and most servers show it once. In normal operation (no
//!   crash between the server's `250` and the commit) each email is sent once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use vitalsign_core::metric::{Metric, Source};
use vitalsign_core::wire::run::Outcome;

use super::PgStore;
use crate::alerts::engine::{Evaluation, RunRecord, Snapshot, alert_id};
use crate::alerts::rules::SeriesKey;
use crate::alerts::silences::{Matchers, Silence};
use crate::alerts::state::AlertRecord;
use crate::alerts::windows::HourHist;
use crate::store::alerts::{Delivery, OutboxRow, OutboxStats, StoredState, TransitionView};
use crate::store::flows::{Freshness, RECENT_RUNS};
use crate::store::{StoreError, WriteOutcome};

/// How long a claimed outbox row stays the claimant's: longer than a send
/// can take (`smtp.timeout_secs` is at most a minute or two in practice),
/// short enough that a crashed replica's emails go out soon after.
pub const CLAIM_MS: i64 = 120_000;

/// Key of the transaction-scoped advisory lock outbox claims serialise on
/// ("outbox" in ASCII), so two replicas never decide the queue's head at once.
const OUTBOX_LOCK: i64 = 0x6f75_7462_6f78;

/// The database's clock in Unix milliseconds, for lease expiry.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// What this replica last saw of the evaluator lease (holder, term), for
/// `/metrics`: refreshed by every [`evaluator_lease`] call.
#[derive(Debug, Default)]
pub struct LeaseState {
    seen: Mutex<Option<(String, i64)>>,
}

impl LeaseState {
    fn set(&self, seen: Option<(String, i64)>) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }

    pub fn get(&self) -> Option<(String, i64)> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} is unreadable: {e}"))
}

// ---- the evaluator lease ----

/// Take the lease when it is free or expired (term + 1), or renew it when
/// this replica holds it, for `ttl_ms` of the database's clock. `Some(term)`:
/// this replica holds it under `term`; `None`: another replica does.
pub async fn evaluator_lease(s: &PgStore, ttl_ms: i64) -> Result<Option<i64>, StoreError> {
    let client = s.client().await?;
    // One statement: the upsert takes or renews; when its WHERE refuses
    // (someone else holds an unexpired lease) the second part reports who.
    // A renewal by the holder keeps its term even past expiry: nobody else
    // wrote under another term in between, or the holder would differ.
    let row = client
        .query_opt(
            &format!(
                "WITH taken AS (
                     INSERT INTO alert_lease AS l (id, holder, term, expires_ms)
                     VALUES (1, $1, 1, {DB_NOW_MS} + $2)
                     ON CONFLICT (id) DO UPDATE SET
                         holder = excluded.holder,
                         term = CASE WHEN l.holder = excluded.holder THEN l.term ELSE l.term + 1 END,
                         expires_ms = excluded.expires_ms
                     WHERE l.holder = excluded.holder OR l.expires_ms <= {DB_NOW_MS}
                     RETURNING holder, term
                 )
                 SELECT holder, term, true FROM taken
                 UNION ALL
                 SELECT holder, term, false FROM alert_lease
                 WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM taken)"
            ),
            &[&&*s.replica, &ttl_ms],
        )
        .await?;
    match row {
        Some(row) => {
            let (holder, term, held): (String, i64, bool) = (row.get(0), row.get(1), row.get(2));
            s.lease.set(Some((holder, term)));
            Ok(held.then_some(term))
        }
        // The row was inserted by another replica after this statement's
        // snapshot: it holds the lease; who, the next call says.
        None => Ok(None),
    }
}

/// Who holds the lease under which term, as this replica last saw it.
pub fn lease_holder(s: &PgStore) -> Option<(String, i64)> {
    s.lease.get()
}

// ---- the engine's reads and writes ----

pub async fn alert_records(s: &PgStore) -> Result<BTreeMap<String, AlertRecord>, StoreError> {
    let client = s.client().await?;
    let rows = client
        .query("SELECT key, record, acked_ms FROM alert_states", &[])
        .await?;
    let mut states = BTreeMap::new();
    for row in rows {
        let mut record: AlertRecord =
            serde_json::from_str(row.get(1)).map_err(|e| corrupt("alert state", e))?;
        record.acked_ms = row.get(2);
        states.insert(row.get(0), record);
    }
    Ok(states)
}

pub async fn alert_snapshot(
    s: &PgStore,
    hours: Option<(i64, i64)>,
    runs_since_ms: i64,
) -> Result<Snapshot, StoreError> {
    let client = s.client().await?;
    let mut snapshot = Snapshot::default();
    if let Some((from, to)) = hours {
        // One row per series and hour with its buckets in order; the series'
        // dimensions come from the dictionary in the same statement. Rows of
        // one series come together, so its key is built once.
        let rows = client
            .query(
                "SELECT b.metric, s.site, s.page_group, s.device, s.source, s.flow, s.step,
                        s.location, b.hour::bigint,
                        array_agg(b.bucket ORDER BY b.bucket), array_agg(b.count ORDER BY b.bucket),
                        b.series
                 FROM rollup_buckets b JOIN series s ON s.id = b.series
                 WHERE b.hour >= $1::bigint AND b.hour < $2::bigint AND b.count > 0
                 GROUP BY b.metric, b.series, b.hour, s.id
                 ORDER BY b.metric, b.series, b.hour",
                &[&from, &to],
            )
            .await?;
        // (series id, metric, key, hours) of the series being read.
        type Current = (i32, String, SeriesKey, BTreeMap<i64, HourHist>);
        let mut current: Option<Current> = None;
        let mut flush = |current: Option<Current>| {
            if let Some((_, _, key, hours)) = current {
                snapshot.series.entry(key).or_default().extend(hours);
            }
        };
        for row in rows {
            let metric_text: &str = row.get(0);
            let series_id: i32 = row.get(11);
            let same = current
                .as_ref()
                .is_some_and(|(id, m, _, _)| *id == series_id && m == metric_text);
            if !same {
                flush(current.take());
                let (Some(metric), Some(source)) =
                    (Metric::parse(metric_text), Source::parse(row.get(4)))
                else {
                    continue;
                };
                let key = SeriesKey {
                    metric,
                    site: row.get(1),
                    page_group: row.get(2),
                    device: row.get(3),
                    source,
                    flow: row.get(5),
                    step: row.get(6),
                    location: row.get(7),
                };
                current = Some((series_id, metric_text.to_string(), key, BTreeMap::new()));
            }
            let Some((_, _, _, hours)) = current.as_mut() else {
                continue;
            };
            let hour: i64 = row.get(8);
            let buckets: Vec<i16> = row.get(9);
            let counts: Vec<i64> = row.get(10);
            let mut hist = HourHist::default();
            for (bucket, n) in buckets.into_iter().zip(counts) {
                let n = u32::try_from(n).map_err(|e| corrupt("rollup bucket count", e))?;
                hist.pairs.push((bucket, n));
                hist.count += u64::from(n);
            }
            if hist.count > 0 {
                hours.insert(hour, hist);
            }
        }
        flush(current.take());
    }
    let rows = client
        .query(
            "SELECT flow, location, started_at_ms, run_id, outcome,
                    document::jsonb -> 'failure' ->> 'reason'
             FROM runs WHERE started_at_ms > $1 ORDER BY started_at_ms, run_id COLLATE \"C\"",
            &[&runs_since_ms],
        )
        .await?;
    for row in rows {
        let outcome = match row.get::<_, &str>(4) {
            "pass" => Outcome::Pass,
            "fail" => Outcome::Fail,
            "error" => Outcome::Error,
            _ => Outcome::Skipped,
        };
        snapshot
            .runs
            .entry((row.get(0), row.get(1)))
            .or_default()
            .push(RunRecord {
                started_ms: row.get(2),
                run_id: row.get(3),
                outcome,
                reason: row.get(5),
            });
    }
    snapshot.freshness = freshness(&client).await?;
    Ok(snapshot)
}

/// Every flow × location's latest run, latest arrival among its
/// [`RECENT_RUNS`] newest, and their start times (what SQLite's
/// `flows::freshness` reads): the pairs by a skip scan along
/// `runs_flow_outcome` (one index seek each), then the newest runs of each.
async fn freshness(
    client: &tokio_postgres::Client,
) -> Result<BTreeMap<(String, String), Freshness>, StoreError> {
    let rows = client
        .query(
            "WITH RECURSIVE pairs AS (
                 (SELECT flow, location FROM runs ORDER BY flow, location LIMIT 1)
                 UNION ALL
                 SELECT n.flow, n.location FROM pairs p, LATERAL (
                     SELECT flow, location FROM runs
                     WHERE (flow, location) > (p.flow, p.location)
                     ORDER BY flow, location LIMIT 1
                 ) n
             )
             SELECT p.flow, p.location, r.run_id, r.outcome, r.started_at_ms, r.received_ms
             FROM pairs p, LATERAL (
                 SELECT run_id, outcome, started_at_ms, received_ms FROM runs
                 WHERE flow = p.flow AND location = p.location
                 ORDER BY started_at_ms DESC LIMIT $1
             ) r",
            &[&(RECENT_RUNS as i64)],
        )
        .await?;
    let mut out: BTreeMap<(String, String), Freshness> = BTreeMap::new();
    for row in rows {
        let f = out.entry((row.get(0), row.get(1))).or_default();
        let started: i64 = row.get(4);
        let received: i64 = row.get(5);
        if f.recent_starts_ms.is_empty() {
            f.last_run_id = row.get(2);
            f.last_outcome = row.get(3);
            f.last_started_ms = started;
            f.last_received_ms = received;
        }
        f.last_received_ms = f.last_received_ms.max(received);
        f.recent_starts_ms.push(started);
    }
    Ok(out)
}

/// Write an evaluation (states, transitions, outbox rows) in one
/// transaction, only while this replica holds the evaluator lease under
/// `term`; otherwise nothing is written and the answer is `Conflict`.
pub async fn record_evaluation(
    s: &PgStore,
    evaluation: Evaluation,
    now_ms: i64,
    term: i64,
) -> Result<WriteOutcome, StoreError> {
    let mut client = s.client().await?;
    let tx = client.transaction().await?;
    // The share lock keeps the lease from changing hands until this commits.
    let lease = tx
        .query_opt(
            "SELECT holder, term FROM alert_lease WHERE id = 1 FOR SHARE",
            &[],
        )
        .await?;
    let held = lease
        .as_ref()
        .is_some_and(|r| r.get::<_, &str>(0) == &*s.replica && r.get::<_, i64>(1) == term);
    if !held {
        let now = lease.map_or_else(
            || "nobody holds it".to_string(),
            |r| {
                format!(
                    "{} holds it under term {}",
                    r.get::<_, &str>(0),
                    r.get::<_, i64>(1)
                )
            },
        );
        return Err(StoreError::Conflict(format!(
            "this replica no longer holds the alert evaluator lease under term {term} ({now}); \
             the evaluation was not written"
        )));
    }

    // States in key order, so the rows are locked in one order everywhere.
    let mut records: Vec<&AlertRecord> = evaluation.records.iter().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut keys = Vec::with_capacity(records.len());
    let mut ids = Vec::with_capacity(records.len());
    let mut rules = Vec::with_capacity(records.len());
    let mut kinds = Vec::with_capacity(records.len());
    let mut sites = Vec::with_capacity(records.len());
    let mut states = Vec::with_capacity(records.len());
    let mut since = Vec::with_capacity(records.len());
    let mut jsons = Vec::with_capacity(records.len());
    for r in records {
        keys.push(r.key.as_str());
        ids.push(alert_id(&r.key));
        rules.push(r.rule.as_str());
        kinds.push(r.kind.as_str());
        sites.push(r.site.as_str());
        states.push(r.state.as_str());
        since.push(r.since_ms);
        jsons.push(serde_json::to_string(r).expect("a record always serialises"));
    }
    if !keys.is_empty() {
        tx.execute(
            "INSERT INTO alert_states (key, id, rule, kind, site, state, since_ms, record, updated_ms)
             SELECT k, i, r, kd, st, sa, sm, rec, $9
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $8::text[]) AS u(k, i, r, kd, st, sa, sm, rec)
             ON CONFLICT (key) DO UPDATE SET rule = excluded.rule, state = excluded.state,
                 since_ms = excluded.since_ms, record = excluded.record,
                 updated_ms = excluded.updated_ms,
                 acked_ms = CASE WHEN excluded.state = 'firing' THEN alert_states.acked_ms END,
                 acked_by = CASE WHEN excluded.state = 'firing' THEN alert_states.acked_by END",
            &[
                &keys, &ids, &rules, &kinds, &sites, &states, &since, &jsons, &now_ms,
            ],
        )
        .await?;
    }

    let ts = &evaluation.transitions;
    if !ts.is_empty() {
        let keys: Vec<&str> = ts.iter().map(|t| t.key.as_str()).collect();
        let rules: Vec<&str> = ts.iter().map(|t| t.rule.as_str()).collect();
        let at: Vec<i64> = ts.iter().map(|t| t.at_ms).collect();
        let from: Vec<&str> = ts.iter().map(|t| t.from.as_str()).collect();
        let to: Vec<&str> = ts.iter().map(|t| t.to.as_str()).collect();
        let numbers: Vec<String> = ts
            .iter()
            .map(|t| serde_json::to_string(&t.numbers).expect("numbers serialise"))
            .collect();
        // `ORDER BY n`: sequence numbers follow the engine's order, as SQLite's do.
        tx.execute(
            "INSERT INTO alert_transitions (alert_key, rule, at_ms, from_state, to_state, numbers)
             SELECT k, r, a, f, t, nb
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                  WITH ORDINALITY AS u(k, r, a, f, t, nb, n)
             ORDER BY n",
            &[&keys, &rules, &at, &from, &to, &numbers],
        )
        .await?;
    }

    let ms = &evaluation.outbox;
    if !ms.is_empty() {
        let message_ids: Vec<&str> = ms.iter().map(|m| m.message_id.as_str()).collect();
        let kinds: Vec<String> = ms
            .iter()
            .map(|m| {
                serde_json::to_value(m.kind)
                    .expect("kind serialises")
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let created: Vec<i64> = ms.iter().map(|m| m.created_ms).collect();
        let routes: Vec<&str> = ms.iter().map(|m| m.route.as_str()).collect();
        let messages: Vec<String> = ms
            .iter()
            .map(|m| serde_json::to_string(m).expect("message serialises"))
            .collect();
        tx.execute(
            "INSERT INTO outbox (message_id, kind, created_ms, route, message, status, next_attempt_ms)
             SELECT mid, k, c, r, msg, 'pending', c
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
                  WITH ORDINALITY AS u(mid, k, c, r, msg, n)
             ORDER BY n",
            &[&message_ids, &kinds, &created, &routes, &messages],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(WriteOutcome::Stored)
}

/// Forget delivered emails and ended silences older than `before_ms`; dead
/// letters, states and transitions stay (as in SQLite).
pub async fn prune_alerts(s: &PgStore, before_ms: i64) -> Result<WriteOutcome, StoreError> {
    let mut client = s.client().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "DELETE FROM outbox WHERE status = 'sent' AND done_ms < $1",
        &[&before_ms],
    )
    .await?;
    tx.execute("DELETE FROM silences WHERE ends_ms < $1", &[&before_ms])
        .await?;
    tx.commit().await?;
    Ok(WriteOutcome::Stored)
}

// ---- alert states, as the API and the dashboard read them ----

fn stored_state(row: &Row) -> Result<StoredState, StoreError> {
    let acked_ms: Option<i64> = row.get(1);
    let mut record: AlertRecord =
        serde_json::from_str(row.get(3)).map_err(|e| corrupt("alert state", e))?;
    record.acked_ms = acked_ms;
    Ok(StoredState {
        id: row.get(0),
        acked_ms,
        acked_by: row.get(2),
        record,
    })
}

/// SQLite orders text by its bytes; `COLLATE "C"` does the same whatever
/// the database's locale, so both backends list alerts in one order.
const STATE_ORDER: &str = "ORDER BY site COLLATE \"C\", rule COLLATE \"C\", key COLLATE \"C\"";

pub async fn alert_states(
    s: &PgStore,
    state: Option<String>,
) -> Result<Vec<StoredState>, StoreError> {
    let client = s.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, acked_ms, acked_by, record FROM alert_states
                 WHERE $1::text IS NULL OR state = $1 {STATE_ORDER}"
            ),
            &[&state],
        )
        .await?;
    rows.iter().map(stored_state).collect()
}

pub async fn alert_counts(s: &PgStore) -> Result<Vec<(String, u64)>, StoreError> {
    let client = s.client().await?;
    let rows = client
        .query(
            "SELECT state, count(*) FROM alert_states GROUP BY state ORDER BY state COLLATE \"C\"",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
        .collect())
}

pub async fn alerts_in_state(
    s: &PgStore,
    state: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<StoredState>, StoreError> {
    let client = s.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, acked_ms, acked_by, record FROM alert_states WHERE state = $1
                 {STATE_ORDER} LIMIT $2 OFFSET $3"
            ),
            &[&state, &(limit as i64), &(offset as i64)],
        )
        .await?;
    rows.iter().map(stored_state).collect()
}

pub async fn alert(s: &PgStore, id: &str) -> Result<Option<StoredState>, StoreError> {
    let client = s.client().await?;
    let row = client
        .query_opt(
            "SELECT id, acked_ms, acked_by, record FROM alert_states WHERE id = $1",
            &[&id],
        )
        .await?;
    row.as_ref().map(stored_state).transpose()
}

pub async fn transitions(
    s: &PgStore,
    alert: Option<String>,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<TransitionView>, StoreError> {
    let client = s.client().await?;
    let rows = client
        .query(
            "SELECT t.seq, s.id, t.rule, t.at_ms, t.from_state, t.to_state, t.numbers
             FROM alert_transitions t JOIN alert_states s ON s.key = t.alert_key
             WHERE ($1::text IS NULL OR s.id = $1) AND t.at_ms >= $2
             ORDER BY t.seq DESC LIMIT $3",
            &[&alert, &since_ms, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TransitionView {
                seq: r.get(0),
                alert_id: r.get(1),
                rule: r.get(2),
                at_ms: r.get(3),
                from: r.get(4),
                to: r.get(5),
                numbers: serde_json::from_str(r.get(6)).map_err(|e| corrupt("transition", e))?,
            })
        })
        .collect()
}

/// Acknowledge a firing alert: the row is locked while its state is
/// checked, so an evaluation resolving it at the same moment either comes
/// first (and the acknowledgement is a `Conflict`) or clears it after.
pub async fn acknowledge(
    s: &PgStore,
    id: &str,
    by: &str,
    now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    let mut client = s.client().await?;
    let tx = client.transaction().await?;
    let state: Option<String> = tx
        .query_opt(
            "SELECT state FROM alert_states WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .map(|r| r.get(0));
    match state.as_deref() {
        None => Err(StoreError::NotFound(format!("no alert with id {id:?}"))),
        Some("firing") => {
            tx.execute(
                "UPDATE alert_states SET acked_ms = $2, acked_by = $3 WHERE id = $1",
                &[&id, &now_ms, &by],
            )
            .await?;
            tx.commit().await?;
            Ok(WriteOutcome::Stored)
        }
        Some(other) => Err(StoreError::Conflict(format!(
            "alert {id} is {other}; only a firing alert can be acknowledged"
        ))),
    }
}

// ---- silences ----

pub async fn silences(s: &PgStore, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    let client = s.client().await?;
    let rows = client
        .query(
            "SELECT id, created_ms, starts_ms, ends_ms, matchers, comment, created_by
             FROM silences WHERE ends_ms > $1 ORDER BY starts_ms, id COLLATE \"C\"",
            &[&now_ms],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let matchers: Matchers =
                serde_json::from_str(r.get(4)).map_err(|e| corrupt("silence", e))?;
            Ok(Silence {
                id: r.get(0),
                created_ms: r.get(1),
                starts_ms: r.get(2),
                ends_ms: r.get(3),
                matchers,
                comment: r.get(5),
                created_by: r.get(6),
            })
        })
        .collect()
}

pub async fn add_silence(s: &PgStore, silence: Silence) -> Result<WriteOutcome, StoreError> {
    let client = s.client().await?;
    client
        .execute(
            "INSERT INTO silences (id, created_ms, starts_ms, ends_ms, matchers, comment, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &silence.id,
                &silence.created_ms,
                &silence.starts_ms,
                &silence.ends_ms,
                &serde_json::to_string(&silence.matchers).expect("matchers serialise"),
                &silence.comment,
                &silence.created_by,
            ],
        )
        .await?;
    Ok(WriteOutcome::Stored)
}

pub async fn end_silence(s: &PgStore, id: &str) -> Result<WriteOutcome, StoreError> {
    let client = s.client().await?;
    if client
        .execute("DELETE FROM silences WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Err(StoreError::NotFound(format!("no silence with id {id:?}")));
    }
    Ok(WriteOutcome::Stored)
}

// ---- the outbox ----

const OUTBOX_COLUMNS: &str = "seq, status, attempts, next_attempt_ms, last_error, done_ms, message";

fn outbox_row(r: &Row) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        seq: r.get(0),
        status: r.get(1),
        attempts: i64::from(r.get::<_, i32>(2)),
        next_attempt_ms: r.get(3),
        last_error: r.get(4),
        done_ms: r.get(5),
        message: serde_json::from_str(r.get(6)).map_err(|e| corrupt("outbox message", e))?,
    })
}

async fn outbox_query(
    s: &PgStore,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<OutboxRow>, StoreError> {
    let client = s.client().await?;
    let rows = client.query(sql, params).await?;
    rows.iter().map(outbox_row).collect()
}

/// Claim the pending rows due at `now_ms` in queue order, up to the first
/// that is not due or is claimed by another sender (see the module's notes):
/// each is this caller's until it records the attempt or [`CLAIM_MS`] pass.
pub async fn claim_outbox(
    s: &PgStore,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut client = s.client().await?;
    let tx = client.transaction().await?;
    // Serialise the decision of where the head is: a second replica's claim
    // then sees the first one's rows claimed (and stops before them) instead
    // of skipping them and sending later rows first.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_LOCK])
        .await?;
    let rows = tx
        .query(
            &format!(
                "WITH head AS (
                     SELECT min(seq) AS stop FROM outbox
                     WHERE status = 'pending'
                       AND (next_attempt_ms > $1 OR coalesce(claimed_until_ms > $1, false))
                 ),
                 due AS (
                     SELECT seq FROM outbox
                     WHERE status = 'pending' AND next_attempt_ms <= $1
                       AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
                       AND seq < coalesce((SELECT stop FROM head), 9223372036854775807)
                     ORDER BY seq LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE outbox o SET claimed_until_ms = $1 + $3
                 FROM due WHERE o.seq = due.seq
                 RETURNING {}",
                OUTBOX_COLUMNS
                    .split(", ")
                    .map(|c| format!("o.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&now_ms, &limit, &CLAIM_MS],
        )
        .await?;
    tx.commit().await?;
    let mut claimed = rows.iter().map(outbox_row).collect::<Result<Vec<_>, _>>()?;
    // RETURNING has no order of its own.
    claimed.sort_by_key(|r| r.seq);
    Ok(claimed)
}

/// Record a delivery attempt and release the row's claim.
pub async fn record_delivery(
    s: &PgStore,
    seq: i64,
    outcome: Delivery,
    now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    let client = s.client().await?;
    match &outcome {
        Delivery::Sent => {
            client
                .execute(
                    "UPDATE outbox SET status = 'sent', attempts = attempts + 1, done_ms = $2,
                         last_error = NULL, claimed_until_ms = NULL
                     WHERE seq = $1",
                    &[&seq, &now_ms],
                )
                .await?
        }
        Delivery::Retry {
            next_attempt_ms,
            error,
        } => {
            client
                .execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $2,
                         last_error = $3, claimed_until_ms = NULL
                     WHERE seq = $1",
                    &[&seq, next_attempt_ms, error],
                )
                .await?
        }
        Delivery::Dead { error } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_ms = $2,
                         last_error = $3, claimed_until_ms = NULL
                     WHERE seq = $1",
                    &[&seq, &now_ms, error],
                )
                .await?
        }
    };
    Ok(WriteOutcome::Stored)
}

pub async fn dead_letters(s: &PgStore, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    outbox_query(
        s,
        &format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY seq DESC LIMIT $1"
        ),
        &[&limit],
    )
    .await
}

pub async fn outbox_for_alert(
    s: &PgStore,
    alert_id: &str,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    // A JSON array contains a string when one of its elements is that string.
    outbox_query(
        s,
        &format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox
             WHERE (message::jsonb -> 'alerts') @> to_jsonb($1::text)
             ORDER BY seq LIMIT $2"
        ),
        &[&alert_id, &(limit as i64)],
    )
    .await
}

pub async fn outbox_all(s: &PgStore) -> Result<Vec<OutboxRow>, StoreError> {
    outbox_query(
        s,
        &format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY seq"),
        &[],
    )
    .await
}

pub async fn outbox_stats(s: &PgStore) -> Result<OutboxStats, StoreError> {
    let client = s.client().await?;
    let r = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'),
                    min(created_ms) FILTER (WHERE status = 'pending'),
                    count(*) FILTER (WHERE status = 'dead'),
                    count(*) FILTER (WHERE status = 'sent')
             FROM outbox",
            &[],
        )
        .await?;
    Ok(OutboxStats {
        pending: r.get(0),
        oldest_pending_ms: r.get(1),
        dead: r.get(2),
        sent: r.get(3),
    })
}
