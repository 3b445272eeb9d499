//! Shared by the agent benchmarks: release builds of the real binaries, a
//! collector and an agent started on loopback, the collector's stored runs,
//! and /proc readings. Every Chromium the agent started is killed at the end.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vitalsign_tests::{CollectorProcess, Process, workspace_root};

pub const AGENT_TOKEN: &str = "bench-agent-token";

/// Release binaries, built here unless `VITALSIGN_AGENT_BIN` and
/// `VITALSIGN_COLLECTOR_BIN` name them (cargo's lock is free while a bench runs).
pub fn release_binaries() -> (PathBuf, PathBuf) {
    if let (Ok(agent), Ok(collector)) = (
        std::env::var("VITALSIGN_AGENT_BIN"),
        std::env::var("VITALSIGN_COLLECTOR_BIN"),
    ) {
        return (agent.into(), collector.into());
    }
    let root = workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "vitalsign-agent",
            "-p",
            "vitalsign-collector",
            "--bins",
        ])
        .current_dir(&root)
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the release binaries failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    (
        target.join("release/vitalsign-agent"),
        target.join("release/vitalsign-collector"),
    )
}

pub type Collector = CollectorProcess;

/// A collector on `127.0.0.1:0` with its own database in `dir`, serving the
/// bundled demo site at `/demo/` and accepting its beacons.
pub fn start_collector(bin: &Path, dir: &Path) -> Collector {
    let config = format!(
        "agent_tokens = [\"{AGENT_TOKEN}\"]\nquery_tokens = [\"bench-query-token\"]\n\
         demo_site_dir = \"{}\"\nrate_limit_per_second = 1000.0\nrate_limit_burst = 1000.0\n\
         [sites.demo]\norigins = [\"*\"]\n",
        workspace_root().join("deploy/demo-site").display()
    );
    CollectorProcess::start_binary(bin, dir, &config, "127.0.0.1:0")
}

/// The demo flow (deploy/flows/demo.toml) pointed at the collector at
/// `collector_url` (which serves the site at `/demo/`), with `schedule`.
pub fn demo_flow(collector_url: &str, name: &str, schedule: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("deploy/flows/demo.toml")).unwrap();
    text.replace("http://127.0.0.1:8080", collector_url)
        .replace("name = \"demo-shop\"", &format!("name = \"{name}\""))
        .replace("schedule = \"20s\"", &format!("schedule = \"{schedule}\""))
}

pub struct Agent {
    pub process: Process,
    pub pid: u32,
}

/// `vitalsign-agent run` with the flows in `dir/flows`, no start jitter.
pub fn start_agent(bin: &Path, dir: &Path, collector_url: &str, concurrency: usize) -> Agent {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "collector_url = \"{collector_url}\"\ntoken = \"{AGENT_TOKEN}\"\nlocation = \"bench\"\n\
             flows_dir = \"{}\"\nspool_dir = \"{}\"\nconcurrency = {concurrency}\n\
             max_jitter_secs = 0\nshutdown_grace_secs = 5\nlog_format = \"json\"\n",
            dir.join("flows").display(),
            dir.join("spool").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(bin);
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .current_dir(dir);
    let mut process = Process::spawn("vitalsign-agent", command);
    process.wait_for_line("agent started", Duration::from_secs(30));
    let pid = process.child.id();
    Agent { process, pid }
}

impl Agent {
    /// Runs the agent logged as finished so far.
    pub fn finished(&self) -> usize {
        self.process
            .log()
            .iter()
            .filter(|l| l.contains("flow finished"))
            .count()
    }

    /// SIGTERM (the agent closes its browser and flushes its spool), then
    /// SIGKILL whatever of its process tree is still alive.
    pub fn stop(mut self) {
        let tree = descendants(self.pid);
        if !self.process.terminate(Duration::from_secs(60)) {
            eprintln!("the agent did not stop within 60 s; killed");
        }
        let mut leftovers = 0;
        for pid in tree {
            if alive(pid) {
                leftovers += 1;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if leftovers > 0 {
            eprintln!("{leftovers} of the agent's child processes outlived it; killed");
        }
    }
}

/// A run as the collector stored it.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub flow: String,
    pub outcome: String,
    pub attempt: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub failure: Option<String>,
}

pub fn stored_runs(db: &Path) -> Vec<StoredRun> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT flow, outcome, started_at_ms, document FROM runs ORDER BY started_at_ms")
        .unwrap();
    stmt.query_map([], |r| {
        let document: String = r.get(3)?;
        let doc: serde_json::Value = serde_json::from_str(&document).unwrap_or_default();
        Ok(StoredRun {
            flow: r.get(0)?,
            outcome: r.get(1)?,
            attempt: doc["attempt"].as_u64().unwrap_or(1),
            started_ms: r.get::<_, i64>(2)? as u64,
            finished_ms: doc["finished_at_ms"].as_u64().unwrap_or(0),
            failure: doc["failure"]["reason"].as_str().map(str::to_string),
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nearest-rank percentile; `q` in 0..=1.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub fn ratio(value: f64, baseline: f64) -> String {
    if baseline > 0.0 && value.is_finite() {
        format!("{:.2}x", value / baseline)
    } else {
        "-".into()
    }
}

/// Resident set of one process (not its children), in MiB, and its peak.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Pids of `root`'s descendants: the runner's own walk of /proc, so the
/// bench counts exactly the processes the runner would kill.
pub use vitalsign_probes::process::descendants;
