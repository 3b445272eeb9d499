//! The collector under test: its real binary ([`CollectorProcess`]) or, with
//! the `collector` feature, the same `Application` in this process
//! ([`InProcess`]). Both listen on `127.0.0.1:0` and report the address they
//! got, so no port is guessed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::listening_addr;
use crate::{Process, binary};

/// A collector started from its binary, killed on drop.
pub struct CollectorProcess {
    pub process: Process,
    pub base_url: String,
    /// The SQLite file, or the PostgreSQL URL of [`CollectorProcess::start_replica`].
    pub db: PathBuf,
}

impl CollectorProcess {
    /// The debug binary with `config` (TOML text) written to `dir/collector.toml`,
    /// its database `dir/collector.db`, on a port of its own.
    pub fn start(dir: &Path, config: &str) -> CollectorProcess {
        Self::start_on(dir, config, "127.0.0.1:0")
    }

    /// As [`CollectorProcess::start`] on `listen` (a restart on the address
    /// a killed collector had).
    pub fn start_on(dir: &Path, config: &str, listen: &str) -> CollectorProcess {
        Self::start_binary(&binary("vitalsign-collector"), dir, config, listen)
    }

    /// A given collector binary (a release build for benchmarks, or cargo's
    /// `CARGO_BIN_EXE_…`).
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
        Self::spawn(command, db)
    }

    /// The binary `bin` with `config` (TOML text) written to
    /// `dir/collector.toml`, on the PostgreSQL database at `url`: one of
    /// several replicas sharing it. The URL goes in `VITALSIGN_DB`, as in a
    /// deployment (a command line is visible to every user); the caller's
    /// other `VITALSIGN_…` variables are removed so they configure nothing.
    /// `db` holds the URL.
    pub fn start_replica(bin: &Path, dir: &Path, config: &str, url: &str) -> CollectorProcess {
        std::fs::create_dir_all(dir).unwrap();
        let config_path = dir.join("collector.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .current_dir(dir)
            .env("RUST_LOG", "info");
        for (key, _) in std::env::vars() {
            if key.starts_with("VITALSIGN_") {
                command.env_remove(key);
            }
        }
        command.env("VITALSIGN_DB", url);
        Self::spawn(command, PathBuf::from(url))
    }

    /// `bin serve --listen 127.0.0.1:0 --db DB` configured only by `env`
    /// (`VITALSIGN_…` variables; the operator's own are removed), logging at
    /// info: how the benchmarks run it.
    pub fn start_with_env(
        bin: &Path,
        dir: &Path,
        db: &Path,
        env: &[(&str, String)],
    ) -> CollectorProcess {
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(db)
            .current_dir(dir)
            .env("RUST_LOG", "info");
        for (key, _) in std::env::vars() {
            if key.starts_with("VITALSIGN_") {
                command.env_remove(key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn(command, db.to_path_buf())
    }

    fn spawn(command: Command, db: PathBuf) -> CollectorProcess {
        let mut process = Process::spawn("vitalsign-collector", command);
        let line = process.wait_for_line("listening on http://", Duration::from_secs(60));
        CollectorProcess {
            process,
            base_url: format!("http://{}", listening_addr(&line)),
            db,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.base_url
            .trim_start_matches("http://")
            .parse()
            .expect("base_url holds the address the collector logged")
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM: the collector drains and commits; fails the test if it does
    /// not exit cleanly within 60 s.
    pub fn stop(mut self) {
        self.process.stop(Duration::from_secs(60));
    }
}

#[cfg(feature = "collector")]
pub use in_process::InProcess;

#[cfg(feature = "collector")]
mod in_process {
    use std::net::SocketAddr;

    use tokio_util::sync::CancellationToken;
    use vitalsign_collector::clock::Clock;
    use vitalsign_collector::store::Store;
    use vitalsign_collector::{Application, CollectorConfig};

    /// The collector's `Application` served by a task of this test's runtime:
    /// the path `main` takes, minus the process. Logs go to stderr when
    /// `TEST_LOG` is set.
    pub struct InProcess {
        pub base: String,
        pub addr: SocketAddr,
        pub store: Store,
        pub client: reqwest::Client,
        shutdown: CancellationToken,
        task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    }

    impl InProcess {
        /// Start with the system clock.
        pub async fn start(config: CollectorConfig) -> InProcess {
            Self::start_with_clock(config, Clock::system()).await
        }

        /// Start with `clock` as the collector's "now": a fixed clock that the
        /// test moves drives the evaluator, outbox and pruner.
        pub async fn start_with_clock(config: CollectorConfig, clock: Clock) -> InProcess {
            if std::env::var_os("TEST_LOG").is_some() {
                let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
            }
            let app = Application::build_with_clock(config, clock)
                .await
                .expect("building the collector");
            let addr = app.local_addr();
            let store = app.store().clone();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(app.run_until_cancelled(shutdown.clone()));
            InProcess {
                base: format!("http://{addr}"),
                addr,
                store,
                client: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
                shutdown,
                task: Some(task),
            }
        }

        /// `{base}{path}`.
        pub fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        /// Shut down as on SIGTERM and wait for the drain; fails the test if
        /// the collector returns an error.
        pub async fn stop(mut self) {
            self.shutdown.cancel();
            if let Some(task) = self.task.take() {
                task.await
                    .expect("the collector task panicked")
                    .expect("the collector stopped with an error");
            }
        }
    }

    impl Drop for InProcess {
        /// A test that fails before [`InProcess::stop`] still stops the server.
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }
}
