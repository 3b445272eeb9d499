//! `vitalsign-collector backup`: a consistent copy of a live database with
//! SQLite's online backup API, while the collector keeps writing.
//!
//! The copy is made in one backup step, inside one read transaction of the
//! source: in WAL mode that reader never blocks the collector's writer, and
//! the copy is the database as of the moment the step began (every write
//! committed, and so every request acknowledged, before then is in it). A
//! stepwise copy would restart whenever the writer committed, which under a
//! steady beacon load could mean it never finishes.
//!
//! The copy is written to `FILE.partial`, checked with `PRAGMA
//! integrity_check`, switched to a rollback journal so it is one
//! self-contained file, and only then renamed to `FILE`: a file at the target
//! name is always a whole, checked backup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// What a finished backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// The schema version (`PRAGMA user_version`) of the copy.
    pub schema_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} does not exist: give the collector's database with --db or `db` in the config")]
    NoSource(PathBuf),
    #[error(
        "{0} already exists; a backup never overwrites a file, so remove it or choose another name"
    )]
    TargetExists(PathBuf),
    #[error("the database stayed busy for {0:?}; try again when it is less loaded")]
    Busy(Duration),
    #[error("the copy failed its integrity check: {0}")]
    Corrupt(String),
    #[error("while backing up: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("while writing the backup file: {0}")]
    Io(#[from] std::io::Error),
}

/// Copy the database at `db` to `to` (which must not exist yet).
pub fn backup(db: &Path, to: &Path) -> Result<BackupReport, BackupError> {
    if !db.exists() {
        return Err(BackupError::NoSource(db.to_path_buf()));
    }
    if to.exists() {
        return Err(BackupError::TargetExists(to.to_path_buf()));
    }
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    // A partial file is what an interrupted earlier run left: never a backup.
    remove_if_present(&partial)?;
    let schema_version = match copy_and_check(db, &partial) {
        Ok(version) => version,
        Err(e) => {
            let _ = remove_if_present(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, to)?;
    Ok(BackupReport {
        path: to.to_path_buf(),
        bytes: std::fs::metadata(to)?.len(),
        schema_version,
    })
}

fn remove_if_present(path: &Path) -> Result<(), std::io::Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Copy into `partial` and check it; returns the copy's schema version.
fn copy_and_check(db: &Path, partial: &Path) -> Result<i64, BackupError> {
    // Read-only: a backup must never create, migrate or checkpoint the source.
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(5))?;
    let mut dest = Connection::open(partial)?;
    {
        let backup = Backup::new(&source, &mut dest)?;
        let patience = Duration::from_secs(30);
        let started = Instant::now();
        loop {
            // -1: every page in one step, so the copy is one snapshot.
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => continue,
                // Busy or locked: a checkpoint or migration holds a lock for a moment.
                _ if started.elapsed() < patience => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => return Err(BackupError::Busy(patience)),
            }
        }
    }
    drop(source);
    let verdict: String = dest.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(BackupError::Corrupt(verdict));
    }
    // The pages came from a WAL database; one file is easier to move and restore.
    let mode: String = dest.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(BackupError::Corrupt(format!(
            "the copy stayed in journal mode {mode}"
        )));
    }
    let version = dest.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    dest.close().map_err(|(_, e)| e)?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(dir: &Path) -> PathBuf {
        let db = dir.join("live.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3); PRAGMA user_version = 7;",
        )
        .unwrap();
        // Left open: the rows may still be in the WAL only, as in a running collector.
        std::mem::forget(conn);
        db
    }

    #[test]
    fn copies_what_is_committed_into_one_checked_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = seeded(dir.path());
        let to = dir.path().join("copy.db");
        let report = backup(&db, &to).unwrap();
        assert_eq!(report.schema_version, 7);
        assert!(report.bytes > 0);
        assert!(!dir.path().join("copy.db.partial").exists());
        assert!(
            !dir.path().join("copy.db-wal").exists(),
            "one self-contained file"
        );
        let copy = Connection::open(&to).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn refuses_to_overwrite_and_names_a_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        let db = seeded(dir.path());
        let existing = dir.path().join("old.db");
        std::fs::write(&existing, b"keep me").unwrap();
        let e = backup(&db, &existing).unwrap_err();
        assert!(matches!(e, BackupError::TargetExists(_)), "{e}");
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
        // The database itself exists, so it is never a target.
        assert!(matches!(
            backup(&db, &db).unwrap_err(),
            BackupError::TargetExists(_)
        ));
        let e = backup(&dir.path().join("nope.db"), &dir.path().join("x.db")).unwrap_err();
        assert!(e.to_string().contains("nope.db does not exist"), "{e}");
    }
}
