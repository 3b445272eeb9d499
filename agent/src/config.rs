//! The agent's configuration: where results go, who we are, what to run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vitalsign_core::config::{self, ConfigError, ConfigSource, LogFormat};
use vitalsign_core::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the collector, for example `http://127.0.0.1:8080`.
    pub collector_url: String,
    /// Bearer token the collector accepts from agents (`agent_tokens` there).
    pub token: Secret,
    /// Where this agent runs; every result carries it (`eu-west`, `office`).
    pub location: String,
    /// Directory of flow files (`*.toml`); each is scheduled by its `schedule`.
    pub flows_dir: PathBuf,
    /// Simultaneous browser runs. 0 = one per two cores, at least one.
    pub concurrency: usize,
    /// Results wait here until the collector acknowledges them.
    pub spool_dir: PathBuf,
    /// Upper bound of the random delay added to each flow's start (seconds), so
    /// flows sharing a schedule do not all start in the same second.
    pub max_jitter_secs: u64,
    /// Optional `ADDR:PORT` for `/healthz` and `/metrics`.
    pub listen: Option<std::net::SocketAddr>,
    /// How long a shutdown waits for running flows before aborting them (seconds).
    pub shutdown_grace_secs: u64,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            collector_url: "http://127.0.0.1:8080".into(),
            token: Secret::default(),
            location: "local".into(),
            flows_dir: PathBuf::from("flows"),
            concurrency: 0,
            spool_dir: PathBuf::from("vitalsign-spool"),
            max_jitter_secs: 10,
            listen: None,
            shutdown_grace_secs: 30,
            log_format: LogFormat::Text,
        }
    }
}

impl AgentConfig {
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let (config, source) = config::load::<AgentConfig>(file)?;
        config.validate(&source)?;
        Ok(config)
    }

    fn validate(&self, source: &ConfigSource) -> Result<(), ConfigError> {
        let url = self.collector_url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                source,
                "collector_url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        if self.location.is_empty()
            || self.location.len() > 64
            || !self
                .location
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(ConfigError::invalid(
                source,
                "location",
                format!(
                    "{:?}: use 1 to 64 letters, digits, '-', '_', '.' or ':'",
                    self.location
                ),
            ));
        }
        if self.concurrency > 64 {
            return Err(ConfigError::invalid(
                source,
                "concurrency",
                "at most 64 browser runs at once (0 sizes it to the machine)",
            ));
        }
        Ok(())
    }

    pub fn collector_base(&self) -> &str {
        self.collector_url.trim_end_matches('/')
    }

    /// One browser run per two cores: a Chromium page load keeps about two busy.
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency > 0 {
            return self.concurrency;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / 2).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.example.toml");
        let config = AgentConfig::load(Some(&path)).unwrap();
        assert_eq!(config.location, "eu-west");
        assert!(!format!("{config:?}").contains("change-me"));
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "location = \"eu west\"\n").unwrap();
        let err = AgentConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml") && err.contains("`location`"),
            "{err}"
        );
        std::fs::write(&path, "listen = \"9100\"\n").unwrap();
        let err = AgentConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml") && err.contains("`listen`"),
            "{err}"
        );
        std::fs::write(&path, "log_format = \"yaml\"\n").unwrap();
        let err = AgentConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml") && err.contains("`log_format`") && err.contains("json"),
            "{err}"
        );
        std::fs::write(&path, "colector_url = \"http://x\"\n").unwrap();
        let err = AgentConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("colector_url"), "{err}");
    }
}
