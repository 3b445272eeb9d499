//! Layered configuration: serde defaults, then a TOML file, then `VITALSIGN_…`
//! environment variables with `__` for nesting (`VITALSIGN_STORAGE__RETENTION_DAYS=7`).
//!
//! Errors name where the bad value came from (file path or variable name) and
//! the key, so a typo is found without reading the source.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "VITALSIGN_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// A semantic problem found after parsing: name the key and what would be valid.
    pub fn invalid(source: &ConfigSource, key: &str, reason: impl std::fmt::Display) -> Self {
        ConfigError::Invalid(format!("{source}: key `{key}`: {reason}"))
    }
}

/// How log lines are written (`log_format` of both binaries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Where a configuration came from, for error messages.
#[derive(Debug, Clone)]
pub struct ConfigSource(Option<PathBuf>);

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(path) => write!(f, "config file {}", path.display()),
            None => write!(f, "configuration (defaults and {ENV_PREFIX}* variables)"),
        }
    }
}

/// Load `T` from its serde defaults, the optional file, and the environment.
///
/// `T` should use `#[serde(default, deny_unknown_fields)]` so a misspelt key is
/// an error instead of a silently ignored line. Only environment variables whose
/// first segment is one of `T`'s top-level keys are read, so the agent and the
/// collector can share an environment.
pub fn load<T>(file: Option<&Path>) -> Result<(T, ConfigSource), ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let source = ConfigSource(file.map(Path::to_path_buf));
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                reason: "does not exist or is not a file".into(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let top_level = top_level_keys::<T>();
    let env = Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(move |key| {
            let first = key.as_str().split('.').next().unwrap_or_default();
            top_level.iter().any(|k| k.eq_ignore_ascii_case(first))
        })
        .lowercase(true);
    figment = figment.merge(env);
    let value = figment
        .extract::<T>()
        .map_err(|e| ConfigError::Invalid(describe(e, &source)))?;
    Ok((value, source))
}

fn top_level_keys<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A key as the file writes it: `alerts.rules[0].kind`, where figment's path
/// says `alerts.rules.0.kind`.
fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            key.push('[');
            key.push_str(segment);
            key.push(']');
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

/// figment's own messages put the profile name in front of the key
/// (`default.listen`); say the key and the place instead.
fn describe(error: figment::Error, source: &ConfigSource) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = key_of(&e.path);
            let place = match &e.metadata {
                Some(meta) => match &meta.source {
                    Some(figment::Source::File(path)) => format!("config file {}", path.display()),
                    _ if meta.name.contains("environment") => {
                        let var = format!("{ENV_PREFIX}{}", e.path.join("__").to_uppercase());
                        format!("environment variable {var}")
                    }
                    _ => source.to_string(),
                },
                None => source.to_string(),
            };
            if key.is_empty() {
                format!("{place}: {}", e.kind)
            } else {
                format!("{place}: key `{key}`: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        listen: String,
        token: Secret,
        storage: Storage,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Storage {
        retention_days: u32,
    }

    impl Default for Storage {
        fn default() -> Self {
            Storage { retention_days: 30 }
        }
    }

    #[test]
    fn keys_are_written_as_in_the_file() {
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            key_of(&path(&["alerts", "rules", "0", "kind"])),
            "alerts.rules[0].kind"
        );
        assert_eq!(
            key_of(&path(&["alerts", "maintenance", "2", "days", "10"])),
            "alerts.maintenance[2].days[10]"
        );
        assert_eq!(key_of(&path(&["listen"])), "listen");
        assert_eq!(key_of(&path(&["sites", "shop2"])), "sites.shop2");
        assert_eq!(key_of(&[]), "");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn layers_defaults_file_env_and_names_bad_keys() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().to_path_buf();
            jail.create_file(
                "good.toml",
                "listen = \"127.0.0.1:9\"\ntoken = \"s3cret\"\n",
            )?;
            jail.set_env("VITALSIGN_STORAGE__RETENTION_DAYS", "7");
            jail.set_env("VITALSIGN_UNRELATED", "ignored");
            let (c, _) = load::<Sample>(Some(&dir.join("good.toml"))).unwrap();
            assert_eq!(c.listen, "127.0.0.1:9");
            assert_eq!(c.storage.retention_days, 7);
            assert_eq!(c.token.expose(), "s3cret");
            assert!(!format!("{c:?}").contains("s3cret"));

            jail.create_file("typo.toml", "[storage]\nretention_dayz = 3\n")?;
            let err = load::<Sample>(Some(&dir.join("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("typo.toml"), "{err}");
            assert!(err.contains("retention_dayz"), "{err}");

            jail.set_env("VITALSIGN_STORAGE__RETENTION_DAYS", "many");
            let err = load::<Sample>(None).unwrap_err().to_string();
            assert!(
                err.contains("VITALSIGN_STORAGE__RETENTION_DAYS"),
                "names the variable: {err}"
            );

            let err = load::<Sample>(Some(&dir.join("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("missing.toml"), "{err}");
            Ok(())
        });
    }
}
