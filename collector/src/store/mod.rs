//! Storage: SQLite in WAL mode behind one writer thread and a pool of readers.
//!
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
//! Everything SQLite-specific stays in this module, so a PostgreSQL backend for
//! scaled-out collectors is a second implementation of the same functions.

pub mod alerts;
pub mod attribution;
pub mod backup;
pub mod flows;
pub mod health;
pub(crate) mod measurements;
pub mod migrations;
pub mod query;
mod sqlite;
pub mod storage;
pub mod views;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::clock::Clock;

pub use storage::{NewArtifact, NewPageView, NewRun, Storage};
pub use writer::{WriteOutcome, Writer};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}, newer than this collector's {supported}: upgrade vitalsign-collector or use another --db"
    )]
    TooNew { found: i64, supported: i64 },
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

/// Open a connection with the settings every connection needs.
fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // With WAL, NORMAL syncs at checkpoints only and can lose the last commits
        // on power loss; FULL syncs each commit, which is what "acknowledged means
        // on disk" requires. Group commit keeps the cost per request small.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A checkpoint that resets the WAL also shrinks it to this size.
        conn.pragma_update(None, "journal_size_limit", health::JOURNAL_SIZE_LIMIT)?;
        // The writer's working set (index pages of the current hour, rollup
        // rows): with SQLite's default 2 MB cache it re-read them from the
        // file every batch (a profile showed a fifth of its time in the
        // kernel's read copies). 32 MB bounds what it adds to the RSS.
        conn.pragma_update(None, "cache_size", -32_768)?;
    }
    Ok(conn)
}

/// The storage handle shared by request handlers and background tasks.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    pub writer: Writer,
    /// "Now" for everything that has the store.
    pub clock: Clock,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl Store {
    /// Open (creating and migrating as needed) and start the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_clock(path, Clock::system())
    }

    /// [`Store::open`] with a given clock (tests fix it).
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Store, StoreError> {
        let mut conn = open_connection(path, false)?;
        migrations::migrate(&mut conn)?;
        // Rollup changes a crash kept from being written: from the raw rows.
        let recovered = writer::recover_rollups(&mut conn)?;
        if recovered > 0 {
            tracing::info!(
                rows = recovered,
                "rollups recomputed for raw rows stored since their last write"
            );
        }
        let writer = Writer::start(conn);
        Ok(Store {
            path: path.to_path_buf(),
            writer,
            clock,
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read on a pooled read-only connection, off the async runtime.
    /// Rollup changes the writer still holds are written first, so a read
    /// sees every acknowledged write in the rollups too.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self
            .writer
            .stats
            .rollups_pending
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // A failed write shows in `/readyz`; the read still answers.
            let _ = self.writer.write(writer::WriteOp::WriteRollups).await;
        }
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.lock().unwrap().pop() {
                Some(c) => c,
                None => open_connection(&path, true)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap();
            if pool.len() < 8 {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Size of the database and its WAL in bytes.
    pub fn size_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}
