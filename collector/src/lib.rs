//! The vitalsign collector: receives beacons and probe runs, stores them in
//! SQLite, answers queries, evaluates alert rules and sends alert emails.
//! `docs/architecture.md` follows a beacon and a probe run through it.
//!
//! # Layout
//! - [`app`]: `Application::build(config)` binds and opens; `run_until_cancelled`
//!   serves until a `CancellationToken` is cancelled.
//! - [`config`]: the configuration file and `VITALSIGN_` overrides, typed (enums,
//!   `Metric`-keyed maps, compiled globs) so a bad value names its file and key.
//! - [`dashboard`]: the server-rendered web pages (overview, pages, series, flows, alerts) and sign-in.
//! - [`http`]: routes, handlers (ingest, query API, operations) and the error type.
//! - [`server`]: the listener: header/body/idle timeouts and connection caps.
//! - [`store`]: SQLite storage: migrations, the batching writer, queries.
//! - [`histogram`]: mergeable log-bucketed histograms for hourly rollups.
//! - [`grouping`]: URL → page group at ingest (configured globs, then placeholders).
//! - [`client_ip`]: the client address behind trusted proxies (`X-Forwarded-For`).
//! - [`ratelimit`]: per-client token buckets for the public beacon endpoint.
//! - [`metrics`]: the collector's own metrics, rendered by prometheus-client at `/metrics`.
//! - [`alerts`]: alert rules, detector, state machine, evaluator task, email outbox, silences.
//! - [`clock`]: the one source of "now", carried by the store.

pub mod alerts;
pub mod app;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod grouping;
pub mod histogram;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod server;
pub mod store;

pub use app::Application;
pub use config::CollectorConfig;
