//! Shared ground of vitalsign: what crosses the wire, how values are rated, and
//! how every binary loads its configuration.
//!
//! # Layout
//! - [`wire`]: the wire contract. [`wire::beacon`] is what browsers send,
//!   [`wire::run`] is what agents send; both validate themselves and name the
//!   offending field in every error ([`wire::ValidationError`]).
//! - [`metric`]: the metric names, the good / needs-improvement / poor bounds,
//!   and [`metric::Source`] (`rum` or `synthetic`).
//! - [`format`]: how a metric value is written for people (emails, dashboard, CLI).
//! - [`config`]: layered configuration (defaults, file, `VITALSIGN_` environment)
//!   with errors that name the file and key.
//! - [`secret`]: a string that never prints itself.

pub mod config;
pub mod format;
pub mod metric;
pub mod secret;
pub mod wire;
