//! The one test harness of the workspace: every integration test and
//! benchmark starts processes, servers and ports through this crate, so a fix
//! to how a child is killed or a port is held lands everywhere at once.
//!
//! # Layout
//! - [`paths`]: the repository root, debug and release binaries, the target dir.
//! - [`process`]: [`Process`], a child whose log is captured and which dies on `Drop`.
//! - [`ports`]: [`HeldPort`], a loopback port kept bound (refusing connections) until a child takes it.
//! - [`collector`]: the collector from its binary ([`CollectorProcess`]) and, with the
//!   `collector` feature, in this process ([`collector::InProcess`]).
//! - [`agent`]: the agent from its binary ([`AgentProcess`]).
//! - [`site`]: a tiny HTTP site on loopback answering as the test says.
//! - [`pg`]: [`pg::PgCluster`], a PostgreSQL cluster of the test's own on loopback,
//!   and a fresh database on the test process's shared one ([`pg::test_db`]).
//! - [`smtp`]: [`SmtpSink`], a real SMTP server (aiosmtpd) keeping what it accepts.
//! - [`fixtures`]: a RUM beacon and a probe run to send.
//! - [`http`]: one raw HTTP/1.1 request on a fresh loopback connection.
//! - [`procfs`]: memory, CPU time and liveness of processes from `/proc`.
//! - [`stats`]: percentiles, medians, ratios.
//! - [`env`]: benchmark knobs from `VITALSIGN_BENCH_…` variables.
//! - [`wait`]: poll a condition until a deadline (never a fixed sleep).

pub mod agent;
pub mod collector;
pub mod env;
pub mod fixtures;
pub mod http;
pub mod paths;
pub mod pg;
pub mod ports;
pub mod process;
pub mod procfs;
pub mod site;
pub mod smtp;
pub mod stats;
pub mod wait;

pub use agent::AgentProcess;
pub use collector::CollectorProcess;
pub use paths::{binary, target_dir, workspace_root};
pub use ports::HeldPort;
pub use process::Process;
pub use smtp::SmtpSink;
