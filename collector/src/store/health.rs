//! Is storage healthy enough to take writes: for `/readyz`, which must not say
//! ready while every write fails (a full disk) or the disk is nearly full;
//! errors that repeat logged once per interval with a count; the WAL kept
//! bounded by periodic truncating checkpoints.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::sqlite::{SqliteStore, open_connection};
use super::{StoreError, WriteOutcome};

/// A failure older than this with none since no longer makes `/readyz` fail:
/// without traffic there is nothing to learn that the disk recovered.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);
/// The same error is logged at most once per this interval, with a count.
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Cap on the WAL file once a checkpoint resets it (`journal_size_limit`).
pub const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Recent storage failures of the writer.
#[derive(Debug, Default)]
pub struct WriteHealth {
    state: Mutex<Failing>,
}

#[derive(Debug, Default)]
struct Failing {
    since: Option<Instant>,
    last: Option<Instant>,
    count: u64,
    error: String,
}

impl WriteHealth {
    /// Called with every write's result. Only storage errors count; a write
    /// refused for its content (conflict, not found) says nothing about the disk.
    pub fn record(&self, result: &Result<WriteOutcome, StoreError>) {
        let mut state = self.state.lock().unwrap();
        match result {
            Ok(_) => *state = Failing::default(),
            Err(StoreError::Invalid(_) | StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
            Err(e) => {
                let now = Instant::now();
                state.since.get_or_insert(now);
                state.last = Some(now);
                state.count += 1;
                state.error = e.to_string();
            }
        }
    }

    /// Why writes are failing, if they are.
    pub fn failing(&self) -> Option<String> {
        let state = self.state.lock().unwrap();
        let last = state.last?;
        if last.elapsed() > FAILURE_MEMORY {
            return None;
        }
        Some(format!(
            "writes failing: {} of them in the last {} s, the latest: {}",
            state.count,
            state.since.map_or(0, |s| s.elapsed().as_secs()),
            state.error
        ))
    }
}

/// When each (what, error) pair was last logged, and how many were held back since.
type Seen = HashMap<(&'static str, String), (Instant, u64)>;

/// Log `error` under `what` at ERROR, but the same pair at most once per
/// [`LOG_INTERVAL`]: the next line after a quiet spell carries how many were
/// held back. A full disk fails every request; one line a minute says so.
pub fn error_limited(what: &'static str, error: &str) {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap();
    if seen.len() > 1_000 {
        seen.retain(|_, (at, _)| at.elapsed() < LOG_INTERVAL);
    }
    let now = Instant::now();
    match seen.get_mut(&(what, error.to_string())) {
        Some((at, held)) if now.duration_since(*at) < LOG_INTERVAL => *held += 1,
        Some((at, held)) => {
            tracing::error!(
                error,
                repeated = *held,
                "{what} (repeated {held} times in the last interval)"
            );
            *at = now;
            *held = 0;
        }
        None => {
            tracing::error!(error, "{what}");
            seen.insert((what, error.to_string()), (now, 0));
        }
    }
}

/// Free bytes on the file system that holds `path`'s directory.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    // fsblkcnt_t and c_ulong are u64 on 64-bit Linux, narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (
        u64::from(stat.blocks_available()),
        u64::from(stat.fragment_size()),
    );
    Some(blocks.saturating_mul(size))
}

impl SqliteStore {
    /// `Ok` when the collector can take writes; otherwise the reason, for the
    /// body of a 503 from `/readyz`.
    pub fn readiness(&self, min_free_bytes: u64) -> Result<(), String> {
        if !self.writer.is_alive() {
            return Err("writer stopped".into());
        }
        if let Some(reason) = self.writer.stats.health.failing() {
            return Err(reason);
        }
        if let Some(free) = free_bytes(&self.path)
            && free < min_free_bytes
        {
            return Err(format!(
                "low disk: {} MiB free where the database lives, below the {} MiB of min_free_disk_mb",
                free / (1024 * 1024),
                min_free_bytes / (1024 * 1024)
            ));
        }
        Ok(())
    }

    /// Whether a read connection answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .map(|_| ())
    }

    /// Copy the WAL into the database and truncate it to zero bytes. SQLite's
    /// automatic checkpoints are passive: while readers keep old snapshots
    /// they never finish, and the WAL grew until the disk was full.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = open_connection(&self.path, false)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_writes_and_low_disk_are_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        assert_eq!(store.readiness(0), Ok(()));
        let low = store.readiness(u64::MAX).unwrap_err();
        assert!(low.starts_with("low disk: "), "{low}");
        let health = &store.writer.stats.health;
        health.record(&Err(StoreError::Invalid("a bad run".into())));
        assert_eq!(
            store.readiness(0),
            Ok(()),
            "a refused write is not a storage failure"
        );
        health.record(&Err(StoreError::WriterGone));
        health.record(&Err(StoreError::WriterGone));
        let failing = store.readiness(0).unwrap_err();
        assert!(
            failing.starts_with("writes failing: 2 of them")
                && failing.contains("writer has stopped"),
            "{failing}"
        );
        health.record(&Ok(WriteOutcome::Stored));
        assert_eq!(store.readiness(0), Ok(()));
        store.checkpoint().unwrap();
    }
}
