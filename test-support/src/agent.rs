//! The agent under test, from its real binary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Process, binary};

/// The agent settings a test usually wants: flows from `dir/flows`, spool in
/// `dir/spool`, no start jitter, JSON logs. Append more keys to the text.
pub fn agent_config(dir: &Path, collector_url: &str, token: &str, location: &str) -> String {
    format!(
        "collector_url = \"{collector_url}\"\ntoken = \"{token}\"\nlocation = \"{location}\"\n\
         flows_dir = \"{}\"\nspool_dir = \"{}\"\nmax_jitter_secs = 0\nlog_format = \"json\"\n",
        dir.join("flows").display(),
        dir.join("spool").display()
    )
}

/// `vitalsign-agent run`, killed on drop.
pub struct AgentProcess {
    pub process: Process,
}

impl AgentProcess {
    /// The debug binary with `config` written to `dir/agent.toml`; returns
    /// once it logged `agent started` (its flows are scheduled).
    pub fn start(dir: &Path, config: &str) -> AgentProcess {
        Self::start_binary(&binary("vitalsign-agent"), dir, config)
    }

    /// A given agent binary (the benchmarks use a release build).
    pub fn start_binary(bin: &Path, dir: &Path, config: &str) -> AgentProcess {
        let path = dir.join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(bin);
        command
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .current_dir(dir);
        let mut process = Process::spawn("vitalsign-agent", command);
        process.wait_for_line("agent started", Duration::from_secs(30));
        AgentProcess { process }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Runs the agent logged as finished so far.
    pub fn finished(&self) -> usize {
        self.process
            .log()
            .iter()
            .filter(|l| l.contains("flow finished"))
            .count()
    }
}
