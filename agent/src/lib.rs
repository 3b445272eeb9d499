//! The vitalsign agent: runs flows on schedules from a named location, keeps
//! every result on disk until the collector has it, and gates CI on budgets.
//!
//! # Layout
//! - [`config`]: the agent's configuration file and `VITALSIGN_` overrides.
//! - [`schedule`]: interval and cron schedules, per-flow start jitter.
//! - [`spool`]: the durable on-disk queue of results and their artifacts.
//! - [`delivery`]: sends spooled results with backoff until acknowledged.
//! - [`metrics`]: the agent's own metrics, rendered by prometheus-client at `/metrics`.
//! - [`budget`]: performance budgets for `check`.
//! - [`report`]: the `once` table and the `check` summary, JUnit XML and Markdown
//!   (values written by `vitalsign_core::format`).
//! - [`daemon`]: `run` — loads flows, schedules them, executes with a concurrency limit.
//! - [`http`]: `/healthz` and `/metrics` on the optional listen address.
//! - [`demo_visitor`]: the hidden `demo-visitor` command: a pretend person
//!   browsing the demo site so `./demo.sh` has RUM data too.

pub mod budget;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo_visitor;
pub mod http;
pub mod metrics;
pub mod report;
pub mod schedule;
pub mod spool;
