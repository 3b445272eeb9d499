//! What every storage backend must do, written against the `Storage` trait
//! alone (no SQL, no connection). Each check is an `async fn(&Store)` that
//! knows nothing of the backend behind it; [`contract!`] runs it twice, on a
//! fresh SQLite file and on a fresh database of the test process's own
//! PostgreSQL cluster (`vitalsign_test_support::pg`), as `<check>::sqlite`
//! and `<check>::postgres`. A missing PostgreSQL fails the `postgres` half.
//!
//! Layout: [`ingest`] (page views, re-reports, pruning), [`runs`] (runs and
//! artifacts), [`read`] (queries and the dashboard's reads), [`alerts`]
//! (alert states, silences, the outbox, the evaluator lease).

use std::sync::Arc;

use vitalsign_collector::clock::Clock;
use vitalsign_collector::store::query::Filter;
use vitalsign_collector::store::{NewArtifact, NewPageView, PgStore, SqliteStore, Store};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::{Beacon, ProbeRun};

mod alerts;
mod ingest;
mod read;
mod runs;

/// A fresh store and what keeps its database alive (a temporary directory
/// or a database on the shared cluster).
pub struct Backend {
    pub store: Store,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Backend {
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteStore::open(&dir.path().join("conformance.db")).unwrap();
        Backend {
            store: Store::new(Arc::new(backend), Clock::fixed(T0)),
            _guard: Box::new(dir),
        }
    }

    pub async fn postgres() -> Backend {
        let db = vitalsign_test_support::pg::test_db();
        let backend = PgStore::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
        Backend {
            store: Store::new(Arc::new(backend), Clock::fixed(T0)),
            _guard: Box::new(db),
        }
    }
}

/// Run each named check (`async fn(&Store)` in the calling module) on both backends.
#[macro_export]
macro_rules! contract {
    ($($check:ident),* $(,)?) => { $(
        mod $check {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let backend = $crate::Backend::sqlite();
                super::$check(&backend.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let backend = $crate::Backend::postgres().await;
                super::$check(&backend.store).await;
            }
        }
    )* };
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The fixture run's start.
pub const T0: i64 = 1_763_870_000_000;

pub fn page_view(id: &str, metric: Metric, value: f64, at_ms: i64) -> NewPageView {
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
pub fn fixture_run() -> ProbeRun {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/run/valid/checkout-fail-with-screenshot.json"
    ))
    .unwrap();
    vitalsign_core::wire::parse_run(&text).unwrap()
}

pub fn artifact(run_id: &str, content: &[u8], sha256: &str) -> NewArtifact {
    NewArtifact {
        run_id: run_id.into(),
        name: "step-2-failure.png".into(),
        content_type: "image/png".into(),
        content: content.to_vec(),
        sha256: sha256.into(),
    }
}

/// sha256("test"), as the fixture run lists it.
pub const TEST_SHA256: &str = "9f86d081884c7d659a2feb1a0c55bf4b1f2b0b822cd15d6c15b0f00a08e2c4c1";

pub async fn cls_values(store: &Store, from_ms: i64, to_ms: i64) -> Vec<f64> {
    let mut values = store
        .raw_values(Metric::Cls, from_ms, to_ms, &Filter::default())
        .await
        .unwrap();
    values.sort_by(f64::total_cmp);
    values
}
