//! End-to-end fixtures: start the real `vitalsign-collector` and
//! `vitalsign-agent` binaries on loopback, wait until they are ready, and kill
//! them (and anything they started) when the test ends, pass or fail.
//!
//! # Layout
//! - [`workspace_root`], [`binary`]: where the repository and built binaries are.
//! - [`Process`]: a child process whose log is captured and which dies on `Drop`.
//! - [`CollectorProcess`]: a collector on a port chosen by the OS, with its own temp database.
//! - [`SmtpSink`]: a real SMTP server (aiosmtpd) on loopback that keeps what it accepts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A built binary of the workspace: `$VITALSIGN_<NAME>_BIN` or `target/debug/<name>`.
/// `test.sh` builds them before the tests run.
pub fn binary(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Ok(path) = std::env::var(&var) {
        return PathBuf::from(path);
    }
    let path = workspace_root().join("target/debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (test.sh does)",
        path.display()
    );
    path
}

/// A child process with its combined output captured line by line.
pub struct Process {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let log = log.clone();
            // Draining both pipes keeps the child from blocking on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("TEST_LOG").is_some() {
                        eprintln!("{line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        Process {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait for a log line containing `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before logging {needle:?}; its log:\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {needle:?} within {timeout:?}; its log:\n{}",
                self.name,
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or clean up, as in a crash or OOM kill.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for a graceful exit; returns whether it exited in time.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_hard();
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// A collector started from its real binary on `127.0.0.1:0`.
pub struct CollectorProcess {
    pub process: Process,
    pub base_url: String,
    pub db: PathBuf,
}

impl CollectorProcess {
    /// Start with `config` (TOML text) written next to `db`.
    pub fn start(dir: &Path, config: &str) -> CollectorProcess {
        Self::start_on(dir, config, "127.0.0.1:0")
    }

    pub fn start_on(dir: &Path, config: &str, listen: &str) -> CollectorProcess {
        Self::start_binary(&binary("vitalsign-collector"), dir, config, listen)
    }

    /// Start a given collector binary (the benchmarks use a release build).
    pub fn start_binary(bin: &Path, dir: &Path, config: &str, listen: &str) -> CollectorProcess {
        let db = dir.join("collector.db");
        let config_path = dir.join("collector.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(listen)
            .arg("--db")
            .arg(&db)
            .current_dir(dir);
        let mut process = Process::spawn("vitalsign-collector", command);
        let line = process.wait_for_line("listening on http://", Duration::from_secs(30));
        let addr = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("address after `listening on http://`")
            .trim_end_matches(['"', ',', '}'])
            .to_string();
        CollectorProcess {
            process,
            base_url: format!("http://{addr}"),
            db,
        }
    }

    pub fn addr(&self) -> &str {
        self.base_url.trim_start_matches("http://")
    }
}

/// A port on 127.0.0.1 that was free a moment ago (for servers that must be
/// told their port, like the SMTP sink).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// A real SMTP server on loopback: Python's aiosmtpd running
/// `collector/tests/smtp_sink.py`, from the venv `./test.sh` creates
/// (`VITALSIGN_TEST_AIOSMTPD`, else `target/test-venv`). Each accepted message
/// becomes `<n>.json` in its directory (subject, threading headers, text and
/// HTML parts). Killed on drop.
pub struct SmtpSink {
    pub process: Process,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpSink {
    /// Start on a free port, writing messages into `dir` (created if missing).
    pub fn start(dir: &Path) -> SmtpSink {
        let python = match std::env::var_os("VITALSIGN_TEST_AIOSMTPD") {
            Some(aiosmtpd) => PathBuf::from(aiosmtpd).with_file_name("python"),
            None => workspace_root().join("target/test-venv/bin/python"),
        };
        assert!(
            python.exists(),
            "{} is missing: run ./test.sh once (it creates target/test-venv with aiosmtpd==1.4.6)",
            python.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut command = Command::new(python);
        command
            .arg(workspace_root().join("collector/tests/smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir);
        let mut process = Process::spawn("smtp sink", command);
        process.wait_for_line("READY", Duration::from_secs(20));
        SmtpSink {
            process,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The messages accepted so far, in arrival order.
    pub fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
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
}
