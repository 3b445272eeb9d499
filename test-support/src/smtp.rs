//! A real SMTP server on loopback: Python's aiosmtpd running
//! `test-support/smtp_sink.py`, from the venv `./test.sh` creates
//! (`VITALSIGN_TEST_AIOSMTPD`, else `target/test-venv`). Each accepted message
//! becomes `<n>.json` in its directory (subject, threading headers, text and
//! HTML parts); the file `mode` there decides the answer (`ok`, `4xx`, `5xx`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{HeldPort, Process, workspace_root};

/// The SMTP sink, killed on drop.
pub struct SmtpSink {
    pub process: Process,
    pub port: u16,
    pub dir: PathBuf,
}

/// The venv's Python, or a failure that says how to get it: never a skip.
fn python() -> PathBuf {
    let python = match std::env::var_os("VITALSIGN_TEST_AIOSMTPD") {
        Some(aiosmtpd) => PathBuf::from(aiosmtpd).with_file_name("python"),
        None => workspace_root().join("target/test-venv/bin/python"),
    };
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh once (it creates target/test-venv with aiosmtpd==1.4.6)",
        python.display()
    );
    python
}

impl SmtpSink {
    /// Start on a port of its own, writing messages into `dir` (created if missing).
    pub fn start(dir: &Path) -> SmtpSink {
        Self::start_on(HeldPort::new(), dir)
    }

    /// Start listening on `port`, held until now (so a client configured with
    /// it was refused until this moment).
    pub fn start_on(port: HeldPort, dir: &Path) -> SmtpSink {
        std::fs::create_dir_all(dir).unwrap();
        let number = port.port();
        let mut command = Command::new(python());
        command
            .arg(workspace_root().join("test-support/smtp_sink.py"))
            .arg(format!("fd:{}", port.fd()))
            .arg(dir);
        let mut process = Process::spawn_holding("smtp sink", command, port);
        process.wait_for_line("READY", Duration::from_secs(20));
        SmtpSink {
            process,
            port: number,
            dir: dir.to_path_buf(),
        }
    }

    /// How the sink answers the next message: `ok`, `4xx` (451) or `5xx` (550).
    pub fn set_mode(dir: &Path, mode: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("mode"), mode).unwrap();
    }

    /// The messages accepted so far, in arrival order.
    pub fn received(&self) -> Vec<serde_json::Value> {
        received(&self.dir)
    }
}

/// The messages a sink writing into `dir` accepted so far, in arrival order
/// (also after the sink stopped).
pub fn received(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}
