//! The on-disk spool: every result is here before anything tries to send it,
//! and leaves only when the collector has acknowledged it.
//!
//! Layout under the spool directory:
//! - `runs/<run_id>.json` — one pending result; its presence is the commit point
//!   (written to a temp file, fsynced, renamed, directory fsynced).
//! - `artifacts/<run_id>/<name>` — files the result references (screenshots),
//!   copied in before the run file appears.
//! - `rejected/<run_id>.json` + `.reason.txt` — results the collector refused as
//!   invalid (a 4xx that retrying cannot fix): kept for a human, never dropped.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use vitalsign_core::wire::ProbeRun;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spool file {path} is not a run: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// A pending result as found on disk.
#[derive(Debug)]
pub struct Pending {
    pub run: ProbeRun,
    /// Artifact name → spooled file.
    pub artifacts: Vec<(String, PathBuf)>,
}

impl Spool {
    pub fn open(root: &Path) -> Result<Spool, SpoolError> {
        for sub in ["runs", "artifacts", "rejected"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let spool = Spool {
            root: root.to_path_buf(),
        };
        // A crash between write and rename leaves a temp file; it was never
        // committed, so nothing was acknowledged to anyone for it.
        let runs = spool.runs_dir();
        for entry in fs::read_dir(&runs).map_err(io(&runs))? {
            let path = entry.map_err(io(&runs))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(spool)
    }

    fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    fn artifacts_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("artifacts").join(run_id)
    }

    /// Durably store a result and copies of its artifact files.
    pub fn put(
        &self,
        run: &ProbeRun,
        artifact_files: &[(String, PathBuf)],
    ) -> Result<(), SpoolError> {
        if !artifact_files.is_empty() {
            let dir = self.artifacts_dir(&run.run_id);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            for (name, source) in artifact_files {
                let target = dir.join(name);
                fs::copy(source, &target).map_err(io(source))?;
                File::open(&target)
                    .and_then(|f| f.sync_all())
                    .map_err(io(&target))?;
            }
            sync_dir(&dir)?;
        }
        let runs = self.runs_dir();
        let final_path = runs.join(format!("{}.json", run.run_id));
        let temp_path = runs.join(format!("{}.json.tmp", run.run_id));
        let body = serde_json::to_vec(run).expect("a ProbeRun always serialises");
        let mut file = File::create(&temp_path).map_err(io(&temp_path))?;
        file.write_all(&body).map_err(io(&temp_path))?;
        file.sync_all().map_err(io(&temp_path))?;
        drop(file);
        fs::rename(&temp_path, &final_path).map_err(io(&final_path))?;
        sync_dir(&runs)
    }

    /// Pending results, oldest first (run ids start with their creation time).
    pub fn pending_ids(&self) -> Result<Vec<String>, SpoolError> {
        let runs = self.runs_dir();
        let mut ids: Vec<String> = fs::read_dir(&runs)
            .map_err(io(&runs))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn depth(&self) -> usize {
        self.pending_ids().map_or(0, |ids| ids.len())
    }

    pub fn load(&self, run_id: &str) -> Result<Pending, SpoolError> {
        let path = self.runs_dir().join(format!("{run_id}.json"));
        let bytes = fs::read(&path).map_err(io(&path))?;
        let run: ProbeRun =
            serde_json::from_slice(&bytes).map_err(|source| SpoolError::Corrupt {
                path: path.clone(),
                source,
            })?;
        let dir = self.artifacts_dir(run_id);
        let artifacts = run
            .artifacts
            .iter()
            .map(|a| (a.name.clone(), dir.join(&a.name)))
            .filter(|(_, p)| p.is_file())
            .collect();
        Ok(Pending { run, artifacts })
    }

    /// The collector acknowledged the result: forget it.
    pub fn remove(&self, run_id: &str) -> Result<(), SpoolError> {
        let path = self.runs_dir().join(format!("{run_id}.json"));
        fs::remove_file(&path).map_err(io(&path))?;
        sync_dir(&self.runs_dir())?;
        let dir = self.artifacts_dir(run_id);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(())
    }

    /// The collector refused the result for good: keep it aside with the reason.
    pub fn reject(&self, run_id: &str, reason: &str) -> Result<(), SpoolError> {
        let from = self.runs_dir().join(format!("{run_id}.json"));
        let rejected = self.root.join("rejected");
        let to = rejected.join(format!("{run_id}.json"));
        fs::rename(&from, &to).map_err(io(&from))?;
        let reason_path = rejected.join(format!("{run_id}.reason.txt"));
        fs::write(&reason_path, reason).map_err(io(&reason_path))?;
        sync_dir(&rejected)?;
        sync_dir(&self.runs_dir())
    }

    pub fn rejected_count(&self) -> usize {
        fs::read_dir(self.root.join("rejected")).map_or(0, |d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
    }
}

/// A rename is durable only once its directory is synced.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_run(id: &str) -> ProbeRun {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/run/valid/checkout-fail-with-screenshot.json"),
        )
        .unwrap();
        let mut run: ProbeRun = serde_json::from_str(&text).unwrap();
        run.run_id = id.to_string();
        run
    }

    #[test]
    fn put_survives_reopen_and_remove_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let shot = dir.path().join("shot.png");
        std::fs::write(&shot, b"\x89PNG fake bytes").unwrap();
        let spool = Spool::open(&dir.path().join("spool")).unwrap();
        spool
            .put(
                &sample_run("r-2"),
                &[("step-2-failure.png".into(), shot.clone())],
            )
            .unwrap();
        spool.put(&sample_run("r-1"), &[]).unwrap();
        std::fs::write(dir.path().join("spool/runs/r-3.json.tmp"), b"{").unwrap();

        let reopened = Spool::open(&dir.path().join("spool")).unwrap();
        assert_eq!(reopened.pending_ids().unwrap(), vec!["r-1", "r-2"]);
        let pending = reopened.load("r-2").unwrap();
        assert_eq!(pending.run.run_id, "r-2");
        assert_eq!(pending.artifacts.len(), 1);
        assert_eq!(
            std::fs::read(&pending.artifacts[0].1).unwrap(),
            b"\x89PNG fake bytes"
        );

        reopened.remove("r-2").unwrap();
        reopened
            .reject("r-1", "400 steps[0].name: must not be empty")
            .unwrap();
        assert_eq!(reopened.depth(), 0);
        assert_eq!(reopened.rejected_count(), 1);
        assert!(!dir.path().join("spool/artifacts/r-2").exists());
    }
}
