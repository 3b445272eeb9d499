//! Probe runs, artifacts and each flow's health, read as the SQLite backend
//! reads them (`store::query`, `store::views`, `store::flows` are the
//! specification; the usual interval and staleness are `store::flows`' own
//! pure code).
//!
//! Orders that SQLite takes byte by byte (run ids breaking ties of start
//! time, flows and locations) are `COLLATE "C"` here, so a database created
//! with another collation lists the same runs in the same order.

use std::collections::BTreeMap;

use tokio_postgres::Client;
use vitalsign_core::wire::ProbeRun;

use super::PgStore;
use super::read::Bound;
use crate::store::StoreError;
use crate::store::flows::{FlowHealth, FlowKey, Freshness, RECENT_RUNS};

fn parse_run(document: &str) -> Result<ProbeRun, StoreError> {
    serde_json::from_str(document)
        .map_err(|e| StoreError::Corrupt(format!("stored run is unreadable: {e}")))
}

fn limit_param(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

fn documents(rows: &[tokio_postgres::Row]) -> Result<Vec<ProbeRun>, StoreError> {
    rows.iter().map(|r| parse_run(r.get(0))).collect()
}

/// Runs, newest first, matching the given fields.
pub(super) async fn recent_runs_on(
    c: &Client,
    flow: Option<String>,
    location: Option<String>,
    outcome: Option<String>,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    let mut b = Bound::default();
    let mut sql = String::from("SELECT document FROM runs WHERE true");
    for (column, value) in [("flow", flow), ("location", location), ("outcome", outcome)] {
        if let Some(v) = value {
            let at = b.bind(v);
            sql.push_str(&format!(" AND {column} = {at}"));
        }
    }
    if let Some(since) = since_ms {
        let at = b.bind(since);
        sql.push_str(&format!(" AND started_at_ms >= {at}"));
    }
    let lim = b.bind(limit_param(limit));
    sql.push_str(&format!(
        " ORDER BY started_at_ms DESC, run_id COLLATE \"C\" DESC LIMIT {lim}"
    ));
    documents(&c.query(&sql, &b.refs()).await?)
}

/// An artifact's content type and bytes.
pub(super) async fn artifact_on(
    c: &Client,
    run_id: &str,
    name: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(c.query_opt(
        "SELECT content_type, content FROM artifacts WHERE run_id = $1 AND name = $2",
        &[&run_id, &name],
    )
    .await?
    .map(|r| (r.get(0), r.get(1))))
}

/// One page of runs (a flow's, at a location, or all), newest first, and
/// whether another page follows.
pub(super) async fn runs_page_on(
    c: &Client,
    flow: Option<String>,
    location: Option<String>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<ProbeRun>, bool), StoreError> {
    let rows = c
        .query(
            "SELECT document FROM runs
             WHERE ($1::text IS NULL OR flow = $1) AND ($2::text IS NULL OR location = $2)
             ORDER BY started_at_ms DESC, run_id COLLATE \"C\" DESC LIMIT $3 OFFSET $4",
            &[
                &flow,
                &location,
                &limit_param(limit).saturating_add(1),
                &limit_param(offset),
            ],
        )
        .await?;
    let more = rows.len() > limit;
    let runs = documents(&rows[..rows.len().min(limit)])?;
    Ok((runs, more))
}

pub(super) async fn count_runs_on(
    c: &Client,
    flow: Option<String>,
    location: Option<String>,
) -> Result<u64, StoreError> {
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM runs
             WHERE ($1::text IS NULL OR flow = $1) AND ($2::text IS NULL OR location = $2)",
            &[&flow, &location],
        )
        .await?
        .get(0);
    Ok(n as u64)
}

/// A run and when the collector received it.
pub(super) async fn run_on(
    c: &Client,
    run_id: &str,
) -> Result<Option<(ProbeRun, i64)>, StoreError> {
    c.query_opt(
        "SELECT document, received_ms FROM runs WHERE run_id = $1",
        &[&run_id],
    )
    .await?
    .map(|r| Ok((parse_run(r.get(0))?, r.get(1))))
    .transpose()
}

/// Runs of one flow × location started at or before `before_ms`, newest
/// first: what a run's page compares its steps with.
pub(super) async fn runs_before_on(
    c: &Client,
    flow: &str,
    location: &str,
    before_ms: i64,
    limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    let rows = c
        .query(
            "SELECT document FROM runs WHERE flow = $1 AND location = $2 AND started_at_ms <= $3
             ORDER BY started_at_ms DESC, run_id COLLATE \"C\" DESC LIMIT $4",
            &[&flow, &location, &before_ms, &limit_param(limit)],
        )
        .await?;
    documents(&rows)
}

/// The latest run of every flow × location: one index probe per pair.
pub(super) async fn latest_runs_on(c: &Client, limit: usize) -> Result<Vec<ProbeRun>, StoreError> {
    let rows = c
        .query(
            &format!(
                "WITH {PAIRS}
                 SELECT r.document FROM pairs AS p
                 JOIN LATERAL (SELECT max(started_at_ms) AS last FROM runs
                               WHERE flow = p.flow AND location = p.location) AS l ON true
                 JOIN runs AS r
                   ON r.flow = p.flow AND r.location = p.location AND r.started_at_ms = l.last
                 ORDER BY r.flow COLLATE \"C\", r.location COLLATE \"C\" LIMIT $1"
            ),
            &[&limit_param(limit)],
        )
        .await?;
    documents(&rows)
}

/// A run's artifacts: name, content type, size in bytes.
pub(super) async fn stored_artifacts_on(
    c: &Client,
    run_id: &str,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    Ok(c.query(
        "SELECT name, content_type, length(content)::bigint FROM artifacts WHERE run_id = $1
             ORDER BY name COLLATE \"C\"",
        &[&run_id],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
    .collect())
}

/// `pairs`: every (flow, location) that has runs, walked along the
/// `runs_flow_outcome (flow, location, …)` index a pair at a time (a loose
/// index scan; PostgreSQL 15 has no skip scan, and a `DISTINCT` would read
/// every run). The row comparison starts each step past all of the current
/// pair's runs.
const PAIRS: &str = "RECURSIVE pairs (flow, location) AS (
        (SELECT flow, location FROM runs ORDER BY flow, location LIMIT 1)
        UNION ALL
        SELECT n.flow, n.location FROM pairs AS p
        CROSS JOIN LATERAL (SELECT flow, location FROM runs
                            WHERE (flow, location) > (p.flow, p.location)
                            ORDER BY flow, location LIMIT 1) AS n
    )";

/// Every (flow, location) that has runs.
pub(super) async fn pairs(c: &Client) -> Result<Vec<FlowKey>, StoreError> {
    Ok(c.query(
        &format!("WITH {PAIRS} SELECT flow, location FROM pairs"),
        &[],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// Freshness of every flow × location that has runs (its newest
/// [`RECENT_RUNS`] runs), in one statement. Also what the alert snapshot
/// needs for the `flow_stale` rule.
pub(super) async fn freshness(c: &Client) -> Result<BTreeMap<FlowKey, Freshness>, StoreError> {
    let rows = c
        .query(
            &format!(
                "WITH {PAIRS}
                 SELECT p.flow, p.location, r.run_id, r.outcome, r.started_at_ms, r.received_ms
                 FROM pairs AS p
                 CROSS JOIN LATERAL (SELECT run_id, outcome, started_at_ms, received_ms FROM runs
                                     WHERE flow = p.flow AND location = p.location
                                     ORDER BY started_at_ms DESC, run_id COLLATE \"C\" DESC
                                     LIMIT $1) AS r"
            ),
            &[&(RECENT_RUNS as i64)],
        )
        .await?;
    let mut out: BTreeMap<FlowKey, Freshness> = BTreeMap::new();
    // Rows come pair by pair, each pair's newest first.
    for r in rows {
        let f = out.entry((r.get(0), r.get(1))).or_default();
        let started: i64 = r.get(4);
        let received: i64 = r.get(5);
        if f.recent_starts_ms.is_empty() {
            f.last_run_id = r.get(2);
            f.last_outcome = r.get(3);
            f.last_started_ms = started;
            f.last_received_ms = received;
        }
        f.last_received_ms = f.last_received_ms.max(received);
        f.recent_starts_ms.push(started);
    }
    Ok(out)
}

/// Health of every flow × location that has runs, by flow then location;
/// pass rates over the runs started since `since_ms`.
pub(super) async fn flow_health_on(
    c: &Client,
    now_ms: i64,
    since_ms: i64,
) -> Result<Vec<FlowHealth>, StoreError> {
    let fresh = freshness(c).await?;
    // The window's counts of every pair in one statement, from the index
    // (flow, location, started_at_ms, outcome) alone.
    let mut window: BTreeMap<FlowKey, (i64, i64)> = c
        .query(
            "SELECT flow, location, count(*), count(*) FILTER (WHERE outcome = 'pass')
             FROM runs WHERE started_at_ms >= $1 GROUP BY flow, location",
            &[&since_ms],
        )
        .await?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    Ok(fresh
        .into_iter()
        .map(|((flow, location), f)| {
            let (runs, passes) = window
                .remove(&(flow.clone(), location.clone()))
                .unwrap_or((0, 0));
            FlowHealth {
                median_gap_ms: f.interval_ms(),
                silent_ms: now_ms - f.last_received_ms,
                stale: f.stale_at(now_ms, i64::MIN) == Some(true),
                pass_rate: (runs > 0).then(|| passes as f64 / runs as f64),
                runs: runs as u64,
                passes: passes as u64,
                flow,
                location,
                last_run_id: f.last_run_id,
                last_outcome: f.last_outcome,
                last_started_ms: f.last_started_ms,
                last_received_ms: f.last_received_ms,
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The backend's entry points: a pooled connection each.

pub async fn recent_runs(
    s: &PgStore,
    flow: Option<String>,
    location: Option<String>,
    outcome: Option<String>,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    let client = s.client().await?;
    recent_runs_on(&client, flow, location, outcome, since_ms, limit).await
}

pub async fn artifact(
    s: &PgStore,
    run_id: &str,
    name: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    artifact_on(&*s.client().await?, run_id, name).await
}

pub async fn runs_page(
    s: &PgStore,
    flow: Option<String>,
    location: Option<String>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<ProbeRun>, bool), StoreError> {
    runs_page_on(&*s.client().await?, flow, location, offset, limit).await
}

pub async fn count_runs(
    s: &PgStore,
    flow: Option<String>,
    location: Option<String>,
) -> Result<u64, StoreError> {
    count_runs_on(&*s.client().await?, flow, location).await
}

pub async fn run(s: &PgStore, run_id: &str) -> Result<Option<(ProbeRun, i64)>, StoreError> {
    run_on(&*s.client().await?, run_id).await
}

pub async fn runs_before(
    s: &PgStore,
    flow: &str,
    location: &str,
    before_ms: i64,
    limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    runs_before_on(&*s.client().await?, flow, location, before_ms, limit).await
}

pub async fn latest_runs(s: &PgStore, limit: usize) -> Result<Vec<ProbeRun>, StoreError> {
    latest_runs_on(&*s.client().await?, limit).await
}

pub async fn stored_artifacts(
    s: &PgStore,
    run_id: &str,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    stored_artifacts_on(&*s.client().await?, run_id).await
}

pub async fn flow_health(
    s: &PgStore,
    now_ms: i64,
    since_ms: i64,
) -> Result<Vec<FlowHealth>, StoreError> {
    flow_health_on(&*s.client().await?, now_ms, since_ms).await
}

/// The same runs recorded by the SQLite backend and written here as rows:
/// every read of runs answers the same (the conformance suite runs the same
/// reads over the PostgreSQL writer).
#[cfg(test)]
mod tests {
    use vitalsign_core::wire::run::Outcome;

    use super::*;
    use crate::store::SqliteStore;
    use crate::store::pg::read::tests::connect;
    use crate::store::storage::{NewRun, Storage};

    const T0: i64 = 1_763_870_000_000;

    /// (id, flow, location, outcome, started, received): steady runs, a tie
    /// of start times, a retried failure, a spool delivered late.
    fn runs() -> Vec<(String, &'static str, &'static str, Outcome, i64, i64)> {
        let mut out = Vec::new();
        for i in 0..30i64 {
            let outcome = if i % 7 == 3 {
                Outcome::Fail
            } else {
                Outcome::Pass
            };
            out.push((
                format!("c-{i:02}"),
                "checkout",
                "eu-west",
                outcome,
                T0 + i * 20_000,
                T0 + i * 20_000 + 900,
            ));
        }
        out.push((
            "c-tie".into(),
            "checkout",
            "eu-west",
            Outcome::Pass,
            T0 + 20_000,
            T0 + 21_000,
        ));
        out.push((
            "c-retry".into(),
            "checkout",
            "eu-west",
            Outcome::Error,
            T0 + 602_000,
            T0 + 603_000,
        ));
        for (i, (started, received)) in [
            (0, 2_000),
            (10_000, 12_000),
            (20_000, 300_000),
            (30_000, 290_000),
        ]
        .into_iter()
        .enumerate()
        {
            out.push((
                format!("s-{i}"),
                "search",
                "us-east",
                Outcome::Pass,
                T0 + started,
                T0 + received,
            ));
        }
        out.push((
            "a-0".into(),
            "Zeta",
            "office",
            Outcome::Skipped,
            T0 + 5,
            T0 + 6,
        ));
        out
    }

    fn document(id: &str, flow: &str, location: &str, outcome: Outcome, started: i64) -> ProbeRun {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/run/valid/checkout-fail-with-screenshot.json"
        ))
        .unwrap();
        let mut run = vitalsign_core::wire::parse_run(&text).unwrap();
        run.run_id = id.into();
        run.flow = flow.into();
        run.location = location.into();
        run.outcome = outcome;
        run.started_at_ms = started as u64;
        run.finished_at_ms = started as u64 + 4_200;
        run
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_read_of_runs_answers_as_sqlite_does() {
        let dir = tempfile::tempdir().unwrap();
        let lite = SqliteStore::open(&dir.path().join("runs.db")).unwrap();
        let db = vitalsign_test_support::pg::test_db();
        let c = connect(&db.url).await;
        for (id, flow, location, outcome, started, received) in runs() {
            let run = document(&id, flow, location, outcome, started);
            c.execute(
                "INSERT INTO runs (run_id, flow, location, outcome, started_at_ms, received_ms, document)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&id, &flow, &location, &outcome.as_str(), &started, &received,
                  &serde_json::to_string(&run).unwrap()],
            )
            .await
            .unwrap();
            lite.record_run(NewRun {
                run,
                page_view_groups: Vec::new(),
                received_ms: received,
            })
            .await
            .unwrap();
        }
        c.execute(
            "INSERT INTO artifacts (run_id, name, content_type, sha256, content)
             VALUES ('c-00', 'b.png', 'image/png', '', '\\x0102'::bytea),
                    ('c-00', 'a.har', 'application/json', '', '\\x'::bytea)",
            &[],
        )
        .await
        .unwrap();
        let ids = |runs: Vec<ProbeRun>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        let some = |s: &str| Some(s.to_string());
        for (flow, location) in [
            (None, None),
            (some("checkout"), None),
            (None, some("us-east")),
            (some("checkout"), some("office")),
        ] {
            for outcome in [None, some("pass"), some("fail")] {
                for since in [None, Some(T0 + 20_000)] {
                    for limit in [0, 3, 100] {
                        assert_eq!(
                            ids(recent_runs_on(
                                &c,
                                flow.clone(),
                                location.clone(),
                                outcome.clone(),
                                since,
                                limit
                            )
                            .await
                            .unwrap()),
                            ids(lite
                                .recent_runs(
                                    flow.clone(),
                                    location.clone(),
                                    outcome.clone(),
                                    since,
                                    limit
                                )
                                .await
                                .unwrap()),
                            "recent runs {flow:?} {location:?} {outcome:?} {since:?} {limit}"
                        );
                    }
                }
            }
            for (offset, limit) in [(0, 5), (5, 5), (30, 5), (0, 100)] {
                let (got, more) = runs_page_on(&c, flow.clone(), location.clone(), offset, limit)
                    .await
                    .unwrap();
                let (want, want_more) = lite
                    .runs_page(flow.clone(), location.clone(), offset, limit)
                    .await
                    .unwrap();
                assert_eq!(
                    (ids(got), more),
                    (ids(want), want_more),
                    "page {flow:?} {location:?} {offset}"
                );
            }
            assert_eq!(
                count_runs_on(&c, flow.clone(), location.clone())
                    .await
                    .unwrap(),
                lite.count_runs(flow.clone(), location.clone())
                    .await
                    .unwrap()
            );
        }
        for before in [T0 - 1, T0 + 20_000, T0 + 1_000_000] {
            assert_eq!(
                ids(runs_before_on(&c, "checkout", "eu-west", before, 4)
                    .await
                    .unwrap()),
                ids(lite
                    .runs_before("checkout", "eu-west", before, 4)
                    .await
                    .unwrap()),
                "before {before}"
            );
        }
        for limit in [1, 2, 10] {
            assert_eq!(
                ids(latest_runs_on(&c, limit).await.unwrap()),
                ids(lite.latest_runs(limit).await.unwrap())
            );
        }
        let (got, want) = (
            run_on(&c, "s-2").await.unwrap(),
            lite.run("s-2").await.unwrap(),
        );
        assert_eq!(
            got.map(|(r, at)| (r.run_id, at)),
            want.map(|(r, at)| (r.run_id, at))
        );
        assert!(run_on(&c, "nope").await.unwrap().is_none());
        for (now, since) in [
            (T0 + 700_000, T0),
            (T0 + 900_000, T0 + 300_000),
            (T0 + 10_000_000, T0 + 10_000_000),
        ] {
            assert_eq!(
                flow_health_on(&c, now, since).await.unwrap(),
                lite.flow_health(now, since).await.unwrap(),
                "health at {now} since {since}"
            );
        }
        let health = flow_health_on(&c, T0 + 700_000, T0).await.unwrap();
        assert_eq!(health.len(), 3);
        assert_eq!(health[1].median_gap_ms, Some(20_000));
        assert_eq!(
            stored_artifacts_on(&c, "c-00").await.unwrap(),
            [
                ("a.har".to_string(), "application/json".to_string(), 0),
                ("b.png".to_string(), "image/png".to_string(), 2)
            ]
        );
        assert_eq!(
            artifact_on(&c, "c-00", "b.png").await.unwrap(),
            Some(("image/png".to_string(), vec![1, 2]))
        );
        assert_eq!(artifact_on(&c, "c-00", "c.png").await.unwrap(), None);
        let dims = super::super::read::dimensions_on(&c).await.unwrap();
        let want = lite.dimensions().await.unwrap();
        assert_eq!(
            (&dims.flows, &dims.locations),
            (&want.flows, &want.locations)
        );
        assert_eq!(dims.flows, ["Zeta", "checkout", "search"]);
    }
}
