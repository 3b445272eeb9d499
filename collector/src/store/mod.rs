//! Storage: the [`Storage`] trait the rest of the collector calls, and its
//! SQLite backend (WAL mode, one writer thread, a pool of readers).
//!
//! - [`storage`]: the trait, with batch-shaped methods over plain domain
//!   types; [`Store`] is what the collector holds: `Arc<dyn Storage>` and the clock.
//! - [`sqlite`]: the SQLite backend ([`SqliteStore`]): opening, migrating,
//!   pooled reads, and the trait implemented over the modules below.
//! - [`alerts`]: the alert tables: the engine's snapshot and evaluation
//!   writes, the email outbox, silences and acknowledgements.
//! - [`migrations`]: numbered schema migrations.
//! - [`measurements`]: the raw rows, one per page view or probe step with a
//!   column per metric, their series dictionary, and the raw-row reads.
//! - [`writer`]: the single writer that commits queued writes in batches and
//!   answers each request only after its batch is on disk.
//! - [`query`]: percentiles, series, top pages and runs, from rollups or raw rows.
//! - [`attribution`]: LCP element/resource, INP target and split, CLS source,
//!   navigation and connection type, dictionary-encoded at ingest and ranked
//!   from hourly counts.
//! - [`views`]: what the dashboard reads besides those: filter choices, runs by
//!   page and id, distributions.
//! - [`backup`]: a consistent copy of the live database (online backup API).
//! - [`health`]: readiness (failing writes, low disk), limited error logs, WAL checkpoints.
//! - [`flows`]: each flow × location's last result, pass rate, usual interval
//!   and whether it is stale (the dashboard and the `flow_stale` alert rule).
//!
//! - [`pg`]: the PostgreSQL backend ([`PgStore`]) for replicated collectors
//!   on one shared database: partitioned raw rows, rollups merged in SQL, an
//!   evaluator lease and an outbox shared by replicas.
//!
//! Every SQL statement and every `rusqlite` type stays in this module
//! (`collector/tests/store_boundary.rs` checks it), so a PostgreSQL backend
//! for scaled-out collectors is a second implementation of [`Storage`].

pub mod alerts;
pub mod attribution;
pub mod backup;
pub mod flows;
pub mod health;
pub(crate) mod measurements;
pub mod migrations;
pub mod pg;
pub mod query;
pub mod sqlite;
pub mod storage;
pub mod views;
pub mod writer;

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;

pub use pg::PgStore;
pub use sqlite::SqliteStore;
pub use storage::{NewArtifact, NewPageView, NewRun, PoolUse, Storage};
pub use writer::{WriteOutcome, Writer};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}, newer than this collector's {supported}: upgrade vitalsign-collector or use another --db"
    )]
    TooNew { found: i64, supported: i64 },
    /// PostgreSQL refused a statement (the connection itself is fine).
    #[error("database: {0}")]
    Postgres(String),
    /// The database cannot be reached (connection lost, pool exhausted): 503.
    #[error("{0}")]
    Unavailable(String),
    #[error("the database writer has stopped")]
    WriterGone,
    /// What was sent cannot be stored as it is (the client's mistake): 400.
    #[error("{0}")]
    Invalid(String),
    /// What was asked contradicts what is stored (acknowledging an alert
    /// that is not firing): 409.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// A stored row could not be read back: the operator's problem, 500.
    #[error("{0}")]
    Corrupt(String),
    /// A broken invariant of the store itself: 500.
    #[error("{0}")]
    Internal(String),
}

/// What the collector holds: a storage backend behind [`Storage`], chosen
/// when the collector starts, and the clock. It dereferences to the backend,
/// so `store.summary(…)` calls the trait and `store.clock` is "now".
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Storage>,
    /// "Now" for everything that has the store.
    pub clock: Clock,
}

impl Store {
    /// Open the SQLite database at `path` (creating and migrating it).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_clock(path, Clock::system())
    }

    /// [`Store::open`] with a given clock (tests fix it).
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(SqliteStore::open(path)?), clock))
    }

    /// Open the configured database: a SQLite file, or PostgreSQL (retried
    /// with backoff for up to `wait` while the server cannot be reached, so
    /// collectors started beside their database wait for it instead of
    /// failing; errors name the database with its password redacted).
    pub async fn connect(
        db: &crate::config::Database,
        clock: Clock,
        wait: std::time::Duration,
    ) -> Result<Store, StoreError> {
        match db {
            crate::config::Database::Sqlite(path) => {
                let path = path.clone();
                let clock2 = clock.clone();
                tokio::task::spawn_blocking(move || Store::open_with_clock(&path, clock2))
                    .await
                    .map_err(|_| StoreError::Internal("opening the database panicked".into()))?
            }
            crate::config::Database::Postgres(url) => {
                let deadline = std::time::Instant::now() + wait;
                let mut pause = std::time::Duration::from_millis(250);
                loop {
                    match PgStore::connect(url.expose()).await {
                        Ok(backend) => return Ok(Store::new(Arc::new(backend), clock)),
                        Err(StoreError::Unavailable(why))
                            if std::time::Instant::now() + pause < deadline =>
                        {
                            tracing::warn!(db = %db, error = %why, retry_in = ?pause, "PostgreSQL is not reachable yet");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(std::time::Duration::from_secs(5));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// A store over any backend.
    pub fn new(backend: Arc<dyn Storage>, clock: Clock) -> Store {
        Store { backend, clock }
    }

    /// The backend, to hand to something that needs no clock.
    pub fn backend(&self) -> &Arc<dyn Storage> {
        &self.backend
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Storage;

    fn deref(&self) -> &(dyn Storage + 'static) {
        self.backend.as_ref()
    }
}
