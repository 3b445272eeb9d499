//! End-to-end tests and benchmarks of the workspace: the real collector,
//! agent, Chromium and SMTP processes on loopback. This library is empty: the
//! tests live in `tests/` and `benches/`, and everything they share (starting
//! and stopping processes, ports, statistics) is the one harness,
//! `vitalsign-test-support` (`test-support/`).
//!
//! # Layout
//! - `tests/`: one file a scenario (agent delivery, crash and restart, backup,
//!   full disk, slow clients, clean logs, OpenAPI, dashboard budget, …).
//! - `benches/`: collector ingest and query, agent throughput and memory;
//!   `collector_bench` and `agent_bench` hold what only those benches share.
//! - `fixtures/`: pages, beacons and flows the tests load.
//! - `browser/`: the dashboard in Chromium (npm test).
