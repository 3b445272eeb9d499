//! A PostgreSQL cluster of the test's own: `initdb` into a fresh directory
//! under `target/pg-test/`, the server on a free loopback port, stopped when
//! the last handle drops. Debian's binaries refuse to run as root, so as root
//! they run as the `postgres` user (the data directory is chowned to it).
//!
//! No test skips because PostgreSQL is missing: [`PgCluster::start`] panics
//! with what to install (`./test.sh` installs Debian's `postgresql`).
//!
//! Tests share one cluster per test process ([`shared`]) and take a database
//! each ([`PgCluster::database`]): creating a database takes milliseconds,
//! a cluster about a second.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::paths::target_dir;

/// Where Debian puts the server binaries: `VITALSIGN_TEST_PG_BIN`, else the
/// newest `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VITALSIGN_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/initdb): \
             ./test.sh installs Debian's `postgresql` package; or set VITALSIGN_TEST_PG_BIN"
        ),
    }
}

/// Durability of a cluster: tests that only check behaviour turn fsync off
/// (a crash of the test machine loses nothing they need); benchmarks keep
/// PostgreSQL's defaults so they measure what a deployment pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Fast,
    Durable,
}

/// A running cluster; dropping it stops the server (SIGINT, PostgreSQL's
/// fast shutdown) and deletes its directory.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    server: Mutex<Child>,
    databases: AtomicU32,
}

/// The uid and gid to run the server as: `postgres` when we are root.
fn run_as() -> Option<(u32, u32)> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "running as root, PostgreSQL needs the `postgres` user, which Debian's \
                 `postgresql` package creates (./test.sh installs it)"
            )
        });
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

fn command(bin: &Path, ids: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = ids {
        c.uid(uid).gid(gid);
    }
    c
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

impl PgCluster {
    pub fn start(durability: Durability) -> PgCluster {
        let bin = bin_dir();
        let ids = run_as();
        let dir = target_dir().join("pg-test").join(format!(
            "{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let out = command(&bin.join("initdb"), ids)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(dir.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("running {}/initdb: {e}", bin.display()));
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The port is free when we look; another process may take it before
        // the server binds, so a failed start tries another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut server = command(&bin.join("postgres"), ids);
            server
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-p", &port.to_string(), "-k"])
                .arg(&dir)
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(dir.join("server.log"))
                        .map(Stdio::from)
                        .unwrap_or(Stdio::null()),
                );
            if durability == Durability::Fast {
                server.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
            }
            // Its own process group: a Ctrl-C of the test run reaches us,
            // and we stop the server in order.
            server.process_group(0);
            let child = server.spawn().unwrap();
            let cluster = PgCluster {
                dir: dir.clone(),
                port,
                server: Mutex::new(child),
                databases: AtomicU32::new(0),
            };
            if cluster.wait_ready(Duration::from_secs(30)) {
                return cluster;
            }
            // Stopped, and not dropped: its data directory is reused.
            cluster.stop_server();
            std::mem::forget(cluster);
        }
        panic!(
            "PostgreSQL did not start; its log:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.server.lock().unwrap().try_wait() {
                return false;
            }
            if self.psql("postgres", "SELECT 1").is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's (postmaster's) process id; its backends are its children
    /// (a benchmark counts their CPU time).
    pub fn pid(&self) -> u32 {
        self.server.lock().unwrap().id()
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.url(&name)
    }

    /// Run `sql` with `psql` on `database`; its output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Stop the server now (fast shutdown, then SIGKILL after 10 s).
    fn stop_server(&self) {
        let mut child = self.server.lock().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test process's cluster (fsync off), started by the first caller and
/// stopped when the last handle drops.
pub fn shared() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(PgCluster::start(Durability::Fast));
    *slot = Arc::downgrade(&cluster);
    cluster
}

/// A fresh database on the [`shared`] cluster; the handle keeps the cluster up.
pub struct TestDb {
    pub url: String,
    pub cluster: Arc<PgCluster>,
}

impl TestDb {
    /// The database's name (the last part of its URL).
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or_default()
    }

    /// [`PgCluster::psql`] on this database.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.cluster.psql(self.name(), sql)
    }
}

pub fn test_db() -> TestDb {
    let cluster = shared();
    TestDb {
        url: cluster.database(),
        cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_answers_and_its_databases_are_separate() {
        let a = test_db();
        let b = test_db();
        assert_ne!(a.url, b.url);
        let db = |url: &str| url.rsplit('/').next().unwrap().to_string();
        a.cluster
            .psql(
                &db(&a.url),
                "CREATE TABLE t (x int); INSERT INTO t VALUES (7)",
            )
            .unwrap();
        assert_eq!(a.cluster.psql(&db(&a.url), "SELECT x FROM t").unwrap(), "7");
        assert!(b.cluster.psql(&db(&b.url), "SELECT x FROM t").is_err());
        let dir = a.cluster.dir.clone();
        drop((a, b));
        assert!(
            !dir.exists(),
            "the last handle removes the cluster's directory"
        );
    }
}
