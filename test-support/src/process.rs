//! A child process whose output is kept (captured line by line, or written to
//! a file) and which is killed when its handle drops, pass or fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ports::HeldPort;
use crate::wait::wait_until;

/// Spawns of this process take turns, so a descriptor made inheritable for
/// one child ([`Process::spawn_holding`]) is never inherited by another.
static SPAWN: Mutex<()> = Mutex::new(());

enum Log {
    Captured(Arc<Mutex<Vec<String>>>),
    File(PathBuf),
}

/// A child process with its combined output kept; SIGKILLed on drop.
pub struct Process {
    pub child: Child,
    log: Log,
    name: String,
}

impl Process {
    /// Start `command` with stdout and stderr captured (echoed when
    /// `TEST_LOG` is set) and `NO_COLOR=1`.
    pub fn spawn(name: &str, command: Command) -> Process {
        Self::start(name, command, None)
    }

    /// Like [`Process::spawn`], and the child inherits `port`'s bound socket
    /// (its descriptor number is [`HeldPort::fd`]); ours is closed after the
    /// spawn, so from then on the child alone holds the port.
    pub fn spawn_holding(name: &str, command: Command, port: HeldPort) -> Process {
        Self::start(name, command, Some(port))
    }

    fn start(name: &str, mut command: Command, port: Option<HeldPort>) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        let mut child = spawn_locked(name, &mut command, port);
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
            log: Log::Captured(log),
            name: name.to_string(),
        }
    }

    /// Start `command` with stdout and stderr both written to the file `log`,
    /// as a service manager or `./demo.sh` would (no terminal, no pipes).
    pub fn spawn_to_file(name: &str, mut command: Command, log: &Path) -> Process {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Process {
            child: spawn_locked(name, &mut command, None),
            log: Log::File(log.to_path_buf()),
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The output so far, one entry a line.
    pub fn log(&self) -> Vec<String> {
        match &self.log {
            Log::Captured(lines) => lines.lock().unwrap().clone(),
            Log::File(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect(),
        }
    }

    /// Wait for a log line containing `needle`; returns that line. Fails
    /// early, with the log, when the child exits first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let mut found = None;
        wait_until(&format!("{} to log {needle:?}", self.name), timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before logging {needle:?}; its log:\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            found = self.log().into_iter().find(|l| l.contains(needle));
            found.is_some()
        });
        found.unwrap()
    }

    /// SIGKILL: no chance to flush or clean up, as in a crash or OOM kill.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for a graceful exit; returns whether it
    /// exited in time (if not, it is killed).
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited =
            crate::wait::poll_until(within, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !exited {
            self.kill_hard();
        }
        exited
    }

    /// [`Process::terminate`], failing the test (with the log) when the child
    /// does not exit within `within` or exits unsuccessfully.
    pub fn stop(&mut self, within: Duration) {
        assert!(
            self.terminate(within),
            "{} did not stop within {within:?} of SIGTERM; its log:\n{}",
            self.name,
            self.log().join("\n")
        );
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM; its log:\n{}",
            self.name,
            self.log().join("\n")
        );
    }
}

fn spawn_locked(name: &str, command: &mut Command, port: Option<HeldPort>) -> Child {
    let _turn = SPAWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(port) = &port {
        port.inheritable(true);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    // Our copy closes when `port` drops here; the child's copy keeps the port.
    drop(port);
    child
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// The address after `listening on http://` in a log line (the collector
/// and the agent's metrics server log it once bound).
pub fn listening_addr(line: &str) -> std::net::SocketAddr {
    // Text logs end the address with a space, JSON logs with a quote.
    line.split("listening on http://")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
                .next()
        })
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address after `listening on http://` in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_text_and_json_log_lines() {
        let addr: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
        for line in [
            "2026-12-07T13:00:00Z INFO vitalsign_collector::app: listening on http://127.0.0.1:40123",
            "INFO listening on http://127.0.0.1:40123 more",
            r#"{"fields":{"message":"listening on http://127.0.0.1:40123"},"target":"vitalsign_collector::app"}"#,
        ] {
            assert_eq!(listening_addr(line), addr, "{line}");
        }
    }
}
