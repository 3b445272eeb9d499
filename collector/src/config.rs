//! The collector's configuration: serde defaults, then the TOML file given with
//! `--config`, then `VITALSIGN_…` variables (see `deploy/collector.example.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vitalsign_core::config::{self, ConfigError, ConfigSource};
use vitalsign_core::secret::Secret;

use crate::grouping::GroupRule;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    pub listen: String,
    /// SQLite database file; created with its migrations when missing.
    pub db: PathBuf,
    /// Sites whose pages may send beacons, by the key in the tag's `data-site`.
    pub sites: BTreeMap<String, SiteConfig>,
    /// Bearer tokens agents use for `/v1/runs` and artifact uploads.
    pub agent_tokens: Vec<Secret>,
    /// Bearer tokens for `/api/v1/…` and artifact downloads.
    pub query_tokens: Vec<Secret>,
    /// Serve `/api/v1/…` without a token (for a collector on a private network).
    pub public_queries: bool,
    /// Beacons per second each client IP may send (token bucket refill rate).
    pub rate_limit_per_second: f64,
    /// Burst allowance of the per-client bucket.
    pub rate_limit_burst: f64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Largest accepted beacon body in bytes.
    pub max_beacon_bytes: usize,
    /// Largest accepted probe run document in bytes.
    pub max_run_bytes: usize,
    /// Largest accepted artifact (screenshot) in bytes.
    pub max_artifact_bytes: usize,
    /// Raw samples and runs older than this are deleted; hourly rollups stay.
    pub retention_days: u32,
    /// How often the retention pruner runs, in seconds.
    pub prune_interval_secs: u64,
    /// Rules that turn URL paths into page groups, tried in order before the
    /// built-in ones (numeric and hash-like segments become `:id` / `:hash`).
    pub page_groups: Vec<GroupRule>,
    /// Serve this directory at `/demo/` (the bundled demo site; unset in production).
    pub demo_site_dir: Option<PathBuf>,
    /// `text` or `json` log lines.
    pub log_format: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Origins (`https://shop.example`) whose pages may send beacons; `"*"` allows any.
    pub origins: Vec<String>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: "127.0.0.1:8080".into(),
            db: PathBuf::from("vitalsign.db"),
            sites: BTreeMap::new(),
            agent_tokens: Vec::new(),
            query_tokens: Vec::new(),
            public_queries: false,
            rate_limit_per_second: 5.0,
            rate_limit_burst: 50.0,
            trust_forwarded_for: false,
            max_beacon_bytes: 64 * 1024,
            max_run_bytes: 1024 * 1024,
            max_artifact_bytes: 5 * 1024 * 1024,
            retention_days: 30,
            prune_interval_secs: 3600,
            page_groups: Vec::new(),
            demo_site_dir: None,
            log_format: "text".into(),
        }
    }
}

impl CollectorConfig {
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let (config, source) = config::load::<CollectorConfig>(file)?;
        config.validate(&source)?;
        Ok(config)
    }

    pub fn validate(&self, source: &ConfigSource) -> Result<(), ConfigError> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                source,
                "listen",
                format!(
                    "{:?} is not ADDRESS:PORT, e.g. \"127.0.0.1:8080\"",
                    self.listen
                ),
            ));
        }
        for (key, site) in &self.sites {
            if key.is_empty()
                || key.len() > 64
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            {
                return Err(ConfigError::invalid(
                    source,
                    &format!("sites.{key}"),
                    "site keys are 1 to 64 letters, digits, '-', '_', '.' or ':'",
                ));
            }
            for (i, origin) in site.origins.iter().enumerate() {
                let ok = origin == "*"
                    || ((origin.starts_with("http://") || origin.starts_with("https://"))
                        && !origin
                            .trim_start_matches("http://")
                            .trim_start_matches("https://")
                            .contains('/'));
                if !ok {
                    return Err(ConfigError::invalid(
                        source,
                        &format!("sites.{key}.origins[{i}]"),
                        format!(
                            "{origin:?} is not an origin like \"https://shop.example\" (scheme and host, no path) or \"*\""
                        ),
                    ));
                }
            }
        }
        if !(self.rate_limit_per_second > 0.0 && self.rate_limit_burst >= 1.0) {
            return Err(ConfigError::invalid(
                source,
                "rate_limit_per_second",
                "needs a positive rate and rate_limit_burst of at least 1",
            ));
        }
        if self.retention_days == 0 {
            return Err(ConfigError::invalid(
                source,
                "retention_days",
                "must be at least 1",
            ));
        }
        if self.prune_interval_secs == 0 {
            return Err(ConfigError::invalid(
                source,
                "prune_interval_secs",
                "must be at least 1",
            ));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::invalid(
                source,
                "log_format",
                format!("{:?}; expected \"text\" or \"json\"", self.log_format),
            ));
        }
        for (i, rule) in self.page_groups.iter().enumerate() {
            rule.check().map_err(|reason| {
                ConfigError::invalid(source, &format!("page_groups[{i}].pattern"), reason)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_loads_and_hides_secrets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/collector.example.toml");
        let config = CollectorConfig::load(Some(&path)).unwrap();
        assert!(config.sites.contains_key("shop"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("replace-with"), "{printed}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[sites.shop]\norigins = [\"https://shop.example/path\"]\n",
        )
        .unwrap();
        let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("sites.shop.origins[0]"),
            "{err}"
        );
        std::fs::write(&path, "listen = \"8080\"\n").unwrap();
        let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("`listen`"), "{err}");
    }
}
