//! Shared by the agent benchmarks: release builds of the real binaries, a
//! collector and an agent started on loopback, the collector's stored runs,
//! and /proc readings. Every Chromium the agent started is killed at the end.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vitalsign_test_support::procfs::alive;
use vitalsign_test_support::{AgentProcess, agent::agent_config};
use vitalsign_test_support::{CollectorProcess, paths, workspace_root};

pub const AGENT_TOKEN: &str = "bench-agent-token";

/// Release binaries (agent, collector), built here unless `VITALSIGN_AGENT_BIN`
/// and `VITALSIGN_COLLECTOR_BIN` name them.
pub fn release_binaries() -> (PathBuf, PathBuf) {
    let [agent, collector] = paths::release_binaries(["vitalsign-agent", "vitalsign-collector"]);
    (agent, collector)
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

/// The agent with the clean-up of its process tree the benches need.
pub struct Agent {
    pub agent: AgentProcess,
    pub pid: u32,
}

/// `vitalsign-agent run` with the flows in `dir/flows`, no start jitter.
pub fn start_agent(bin: &Path, dir: &Path, collector_url: &str, concurrency: usize) -> Agent {
    let config = format!(
        "{}concurrency = {concurrency}\nshutdown_grace_secs = 5\n",
        agent_config(dir, collector_url, AGENT_TOKEN, "bench")
    );
    let agent = AgentProcess::start_binary(bin, dir, &config);
    let pid = agent.pid();
    Agent { agent, pid }
}

impl Agent {
    /// Runs the agent logged as finished so far.
    pub fn finished(&self) -> usize {
        self.agent.finished()
    }

    /// SIGTERM (the agent closes its browser and flushes its spool), then
    /// SIGKILL whatever of its process tree is still alive.
    pub fn stop(mut self) {
        let tree = descendants(self.pid);
        if !self.agent.process.terminate(Duration::from_secs(60)) {
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

/// Pids of `root`'s descendants: the runner's own walk of /proc, so the
/// bench counts exactly the processes the runner would kill.
pub use vitalsign_probes::process::descendants;
