//! Page views, re-reports and retention; and, on PostgreSQL alone, what
//! only a shared database has: two replicas writing the same page views, and
//! the database going away under the writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vitalsign_collector::clock::Clock;
use vitalsign_collector::store::attribution::AttributionKind;
use vitalsign_collector::store::query::Filter;
use vitalsign_collector::store::{NewRun, PgStore, Store, StoreError, WriteOutcome};
use vitalsign_core::metric::Metric;

use crate::*;

contract!(
    re_reports_replace_and_a_batch_is_stored_whole,
    pruning_deletes_raw_rows_and_runs_before_the_cut_only,
    a_batch_touching_days_never_written_before_is_stored,
    pruning_while_page_views_keep_coming_loses_none_of_them,
);

pub async fn re_reports_replace_and_a_batch_is_stored_whole(store: &Store) {
    let t = T0 + HOUR_MS;
    store
        .append_page_views(vec![page_view("pv-1", Metric::Cls, 0.05, t)])
        .await
        .unwrap();
    // CLS grows; the snippet reports it again for the same page view.
    store
        .append_page_views(vec![page_view("pv-1", Metric::Cls, 0.3, t)])
        .await
        .unwrap();
    assert_eq!(cls_values(store, t - HOUR_MS, t + HOUR_MS).await, [0.3]);
    // Several page views in one call, one of them a re-report again.
    store
        .append_page_views(vec![
            page_view("pv-2", Metric::Cls, 0.01, t),
            page_view("pv-3", Metric::Cls, 0.02, t + 1),
            page_view("pv-1", Metric::Cls, 0.4, t),
        ])
        .await
        .unwrap();
    assert_eq!(
        cls_values(store, t - HOUR_MS, t + HOUR_MS).await,
        [0.01, 0.02, 0.4]
    );
    let summary = store
        .summary(Metric::Cls, t - HOUR_MS, t + HOUR_MS, &Filter::default())
        .await
        .unwrap();
    assert_eq!(summary.count, 3);
    // Over more than a few hours the answer comes from the rollups, which
    // moved pv-1's count instead of adding to it.
    let rolled = store
        .summary(Metric::Cls, t - 2 * DAY_MS, t + DAY_MS, &Filter::default())
        .await
        .unwrap();
    assert_eq!((rolled.resolution, rolled.count), ("rollup", 3));
}

pub async fn pruning_deletes_raw_rows_and_runs_before_the_cut_only(store: &Store) {
    let cut = T0 + DAY_MS;
    store
        .append_page_views(vec![
            page_view("pv-old", Metric::Cls, 0.11, T0),
            page_view("pv-new", Metric::Cls, 0.12, cut + HOUR_MS),
        ])
        .await
        .unwrap();
    let mut old_run = fixture_run();
    old_run.run_id = "r-old".into();
    old_run.artifacts.clear();
    store
        .record_run(NewRun {
            run: old_run,
            page_view_groups: Vec::new(),
            received_ms: T0,
        })
        .await
        .unwrap();
    let before = cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS).await.len();
    assert!(before >= 1);
    let mut pruned = (0, 0);
    loop {
        match store.prune(cut).await.unwrap() {
            WriteOutcome::Pruned { rows, runs, more } => {
                pruned = (pruned.0 + rows, pruned.1 + runs);
                if !more {
                    break;
                }
            }
            other => panic!("prune answered {other:?}"),
        }
    }
    assert!(pruned.0 >= before && pruned.1 >= 1, "{pruned:?}");
    assert!(
        cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS)
            .await
            .is_empty()
    );
    assert_eq!(
        cls_values(store, cut, cut + 2 * HOUR_MS).await,
        [0.12],
        "rows after the cut stay"
    );
    assert_eq!(store.run("r-old").await.unwrap(), None);
}

pub async fn a_batch_touching_days_never_written_before_is_stored(store: &Store) {
    // PostgreSQL keeps raw rows in daily partitions: these days have none
    // until the batch needs them (a run's steps may be days old, a clock ahead).
    let (ahead, behind) = (T0 + 40 * DAY_MS, T0 - 3 * DAY_MS);
    store
        .append_page_views(vec![
            page_view("pv-ahead", Metric::Cls, 0.21, ahead),
            page_view("pv-behind", Metric::Cls, 0.22, behind),
            page_view("pv-now", Metric::Cls, 0.23, T0),
        ])
        .await
        .unwrap();
    // A re-report lands on the row in the day it was first stored in.
    store
        .append_page_views(vec![page_view("pv-ahead", Metric::Cls, 0.31, ahead + 1)])
        .await
        .unwrap();
    assert_eq!(
        cls_values(store, ahead - HOUR_MS, ahead + HOUR_MS).await,
        [0.31]
    );
    assert_eq!(
        cls_values(store, behind - HOUR_MS, behind + HOUR_MS).await,
        [0.22]
    );
    assert_eq!(cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS).await, [0.23]);
}

pub async fn pruning_while_page_views_keep_coming_loses_none_of_them(store: &Store) {
    let cut = T0 + DAY_MS;
    let old: Vec<_> = (0..300)
        .map(|i| page_view(&format!("old-{i}"), Metric::Cls, 0.05, T0 + i))
        .collect();
    store.append_page_views(old).await.unwrap();
    // A writer appends page views after the cut while the prune runs; every
    // batch it got an answer for must be there afterwards.
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut started_tx = Some(started_tx);
            let mut acknowledged = 0usize;
            let mut slowest = Duration::ZERO;
            for k in 0..40i64 {
                let batch: Vec<_> = (0..25i64)
                    .map(|j| {
                        let at = cut + HOUR_MS + k * 25 + j;
                        page_view(&format!("new-{k}-{j}"), Metric::Cls, 0.07, at)
                    })
                    .collect();
                let asked = Instant::now();
                store.append_page_views(batch).await.unwrap();
                slowest = slowest.max(asked.elapsed());
                acknowledged += 25;
                if let Some(tx) = started_tx.take() {
                    let _ = tx.send(());
                }
            }
            (acknowledged, slowest)
        })
    };
    started.await.unwrap();
    let mut pruned_rows = 0;
    loop {
        match store.prune(cut).await.unwrap() {
            WriteOutcome::Pruned { rows, more, .. } => {
                pruned_rows += rows;
                if !more {
                    break;
                }
            }
            other => panic!("prune answered {other:?}"),
        }
    }
    let (acknowledged, slowest) = writer.await.unwrap();
    assert_eq!(pruned_rows, 300, "the day before the cut held the old rows");
    assert!(
        slowest < Duration::from_secs(5),
        "an append waited {slowest:?} while the prune ran"
    );
    assert!(
        cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS)
            .await
            .is_empty()
    );
    let kept = cls_values(store, cut + HOUR_MS, cut + 2 * HOUR_MS).await;
    assert_eq!(
        kept.len(),
        acknowledged,
        "every acknowledged page view is stored"
    );
}

// ---- PostgreSQL only: replicas on one database, and losing the database ----

/// `n` replicas (each `PgStore::connect` is one) on one fresh database.
async fn replicas(n: usize) -> (Vec<Store>, vitalsign_test_support::pg::TestDb) {
    let db = vitalsign_test_support::pg::test_db();
    let mut stores = Vec::new();
    for _ in 0..n {
        let backend = PgStore::connect(&db.url).await.unwrap();
        stores.push(Store::new(Arc::new(backend), Clock::fixed(T0)));
    }
    (stores, db)
}

/// Good, needs-improvement and poor counts of CLS in `[from, to)`.
async fn cls_ratings(store: &Store, from: i64, to: i64) -> (u64, [u64; 3], &'static str) {
    let s = store
        .summary(Metric::Cls, from, to, &Filter::default())
        .await
        .unwrap();
    let n = s.count as f64;
    let count = |share: f64| (share * n).round() as u64;
    (
        s.count,
        [count(s.good), count(s.needs_improvement), count(s.poor)],
        s.resolution,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_re_reporting_the_same_page_views_at_once_keep_one_row_and_exact_counts() {
    let (stores, _db) = replicas(2).await;
    const VIEWS: i64 = 200;
    let t = T0 + HOUR_MS;
    // Both replicas get every page view, five times over, with different
    // values, from two callers each, all at once.
    let mut tasks = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for caller in 0..2i64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..5i64 {
                    for chunk in (0..VIEWS).collect::<Vec<_>>().chunks(20) {
                        let batch = chunk
                            .iter()
                            .map(|i| {
                                // Spread over all three ratings.
                                let value = 0.02 * ((i + round + caller + r as i64) % 20) as f64;
                                page_view(&format!("pv-{i}"), Metric::Cls, value, t + round)
                            })
                            .collect();
                        store.append_page_views(batch).await.unwrap();
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (a, b) = (&stores[0], &stores[1]);
    let raw = cls_ratings(a, t - HOUR_MS, t + HOUR_MS).await;
    let rolled = cls_ratings(b, t - 2 * DAY_MS, t + DAY_MS).await;
    assert_eq!(raw.0, VIEWS as u64, "one raw row per page view: {raw:?}");
    assert_eq!((raw.2, rolled.2), ("raw", "rollup"));
    assert_eq!(
        (rolled.0, rolled.1),
        (raw.0, raw.1),
        "the rollups count exactly what the raw rows hold"
    );

    // Then one last report of each, through the other replica: exact values.
    let last: Vec<_> = (0..VIEWS)
        .map(|i| page_view(&format!("pv-{i}"), Metric::Cls, 0.001 * i as f64, t + 9))
        .collect();
    b.append_page_views(last).await.unwrap();
    let expected: Vec<f64> = (0..VIEWS).map(|i| 0.001 * i as f64).collect();
    assert_eq!(cls_values(a, t - HOUR_MS, t + HOUR_MS).await, expected);
    // CLS 0.1 is the good threshold's edge: 0..=0.1 good, the rest needs improvement.
    let good = expected.iter().filter(|v| **v <= 0.1).count() as u64;
    assert_eq!(
        cls_ratings(a, t - 2 * DAY_MS, t + DAY_MS).await,
        (VIEWS as u64, [good, VIEWS as u64 - good, 0], "rollup")
    );
    let navigations = a
        .top_attribution(
            Metric::Cls,
            AttributionKind::NavigationType,
            t - 2 * DAY_MS,
            t + DAY_MS,
            &Filter::default(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        navigations
            .iter()
            .map(|r| (r.item.as_str(), r.count))
            .collect::<Vec<_>>(),
        [("navigate", VIEWS as u64)],
        "attribution counts moved with the re-reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_with_503_while_the_database_is_unreachable_and_resume_after() {
    let (stores, db) = replicas(1).await;
    let store = &stores[0];
    let name = db.url.rsplit('/').next().unwrap().to_string();
    store
        .append_page_views(vec![page_view("pv-before", Metric::Cls, 0.01, T0)])
        .await
        .unwrap();
    // No new connection to the database, and every open one cut.
    db.cluster
        .psql(
            "postgres",
            &format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
                 SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{name}'"
            ),
        )
        .unwrap();
    for attempt in 0..3 {
        match store
            .append_page_views(vec![page_view("pv-lost", Metric::Cls, 0.02, T0)])
            .await
        {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("write {attempt} with the database gone: {other:?}"),
        }
    }
    assert!(store.readiness(0).is_err(), "/readyz says writes fail");
    db.cluster
        .psql(
            "postgres",
            &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
        )
        .unwrap();
    // The writer waits out its backoff (at most 5 s), then connects again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store
            .append_page_views(vec![page_view("pv-after", Metric::Cls, 0.03, T0)])
            .await
        {
            Ok(()) => break,
            Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the writer did not recover: {e}"),
        }
    }
    // What was acknowledged is there; what was refused is not.
    assert_eq!(
        cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS).await,
        [0.01, 0.03]
    );
    assert!(store.readiness(0).is_ok());
}
