//! What every storage backend must do, written against the `Storage` trait
//! alone (no SQL, no connection): each check takes a `Store` and knows
//! nothing of the backend behind it, so a second backend (PostgreSQL, issue
//! 16) runs the same functions. Today they run against SQLite.

use std::sync::Arc;

use vitalsign_collector::alerts::silences::{Matchers, Silence};
use vitalsign_collector::clock::Clock;
use vitalsign_collector::store::query::Filter;
use vitalsign_collector::store::{
    NewArtifact, NewPageView, NewRun, SqliteStore, Store, StoreError, WriteOutcome,
};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::{Beacon, ProbeRun};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The fixture run's start.
const T0: i64 = 1_763_870_000_000;

fn sqlite(dir: &tempfile::TempDir) -> Store {
    let backend = SqliteStore::open(&dir.path().join("conformance.db")).unwrap();
    Store::new(Arc::new(backend), Clock::fixed(T0))
}

fn page_view(id: &str, metric: Metric, value: f64, at_ms: i64) -> NewPageView {
    let beacon: Beacon = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "site": "shop", "page_view_id": id,
        "url": "https://shop.example/product/7", "navigation_type": "navigate",
        "device": "mobile", "snippet_version": "0.1.0",
        "reports": [{"metric": metric.as_str(), "value": value, "rating": metric.rate(value).as_str()}]
    }))
    .unwrap();
    NewPageView {
        beacon,
        page_group: "/product/:id".into(),
        received_ms: at_ms,
    }
}

/// A failed checkout run with one artifact whose content is `test`.
fn fixture_run() -> ProbeRun {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/run/valid/checkout-fail-with-screenshot.json"
    ))
    .unwrap();
    vitalsign_core::wire::parse_run(&text).unwrap()
}

fn artifact(run_id: &str, content: &[u8], sha256: &str) -> NewArtifact {
    NewArtifact {
        run_id: run_id.into(),
        name: "step-2-failure.png".into(),
        content_type: "image/png".into(),
        content: content.to_vec(),
        sha256: sha256.into(),
    }
}

/// sha256("test"), as the fixture run lists it.
const TEST_SHA256: &str = "9f86d081884c7d659a2feb1a0c55bf4b1f2b0b822cd15d6c15b0f00a08e2c4c1";

async fn cls_values(store: &Store, from_ms: i64, to_ms: i64) -> Vec<f64> {
    let mut values = store
        .raw_values(Metric::Cls, from_ms, to_ms, &Filter::default())
        .await
        .unwrap();
    values.sort_by(f64::total_cmp);
    values
}

async fn re_reports_replace_and_a_batch_is_stored_whole(store: &Store) {
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

async fn a_run_is_stored_once_and_its_artifact_round_trips(store: &Store) {
    let run = fixture_run();
    let id = run.run_id.clone();
    let new_run = || NewRun {
        run: run.clone(),
        page_view_groups: Vec::new(),
        received_ms: T0 + 5_000,
    };
    assert_eq!(
        store.record_run(new_run()).await.unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store.record_run(new_run()).await.unwrap(),
        WriteOutcome::AlreadyStored
    );
    let runs = store
        .recent_runs(Some("checkout".into()), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let (stored, received_ms) = store.run(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.run_id.as_str(), received_ms),
        (id.as_str(), T0 + 5_000)
    );

    // The artifact: refused before its run exists or with the wrong hash;
    // stored once; read back byte for byte.
    match store
        .record_artifact(artifact("r-none", b"test", TEST_SHA256))
        .await
    {
        Err(StoreError::NotFound(m)) => assert!(m.contains("upload the run first"), "{m}"),
        other => panic!("an artifact of an unknown run: {other:?}"),
    }
    match store.record_artifact(artifact(&id, b"tset", "00")).await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("does not match"), "{m}"),
        other => panic!("an artifact with the wrong hash: {other:?}"),
    }
    assert_eq!(
        store
            .record_artifact(artifact(&id, b"test", TEST_SHA256))
            .await
            .unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store
            .record_artifact(artifact(&id, b"test", TEST_SHA256))
            .await
            .unwrap(),
        WriteOutcome::AlreadyStored
    );
    assert_eq!(
        store.artifact(&id, "step-2-failure.png").await.unwrap(),
        Some(("image/png".to_string(), b"test".to_vec()))
    );
    assert_eq!(
        store.stored_artifacts(&id).await.unwrap(),
        [("step-2-failure.png".to_string(), "image/png".to_string(), 4)]
    );
    assert_eq!(store.artifact(&id, "other.png").await.unwrap(), None);
}

async fn pruning_deletes_raw_rows_and_runs_before_the_cut_only(store: &Store) {
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

async fn silences_and_acknowledgements_answer_with_typed_errors(store: &Store) {
    let silence = Silence {
        id: "s-1".into(),
        created_ms: T0,
        starts_ms: T0,
        ends_ms: T0 + HOUR_MS,
        matchers: Matchers {
            site: Some("shop".into()),
            ..Matchers::default()
        },
        comment: "deploy".into(),
        created_by: "ops".into(),
    };
    store.add_silence(silence.clone()).await.unwrap();
    assert_eq!(store.silences(T0 + 1).await.unwrap(), [silence]);
    assert!(store.silences(T0 + HOUR_MS).await.unwrap().is_empty());
    store.end_silence("s-1").await.unwrap();
    assert!(matches!(
        store.end_silence("s-1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.silences(T0 + 1).await.unwrap().is_empty());
    assert!(matches!(
        store.acknowledge("no-such-alert", "ops", T0).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.alert_states(None).await.unwrap().is_empty());
    assert!(store.claim_outbox(T0, 10).await.unwrap().is_empty());
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead, stats.sent), (0, 0, 0));
}

#[tokio::test]
async fn sqlite_keeps_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    assert_eq!(store.readiness(0), Ok(()));
    store.ping().await.unwrap();
    re_reports_replace_and_a_batch_is_stored_whole(&store).await;
    a_run_is_stored_once_and_its_artifact_round_trips(&store).await;
    pruning_deletes_raw_rows_and_runs_before_the_cut_only(&store).await;
    silences_and_acknowledgements_answer_with_typed_errors(&store).await;
    store.maintain().await.unwrap();
    // The dashboard's site choices come from field data with an LCP or FCP.
    assert!(store.dimensions().await.unwrap().sites.is_empty());
    store
        .append_page_views(vec![page_view(
            "pv-lcp",
            Metric::Lcp,
            1800.0,
            T0 + 2 * DAY_MS,
        )])
        .await
        .unwrap();
    assert_eq!(store.dimensions().await.unwrap().sites, ["shop"]);
}
