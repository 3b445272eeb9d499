//! Shared by the collector benchmarks only: their token, how they start the
//! release collector, and the result table. Processes, /proc readings,
//! statistics and knobs come from the one harness, `vitalsign-test-support`.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::path::{Path, PathBuf};

use vitalsign_test_support::CollectorProcess;
use vitalsign_test_support::paths::release_binaries;

pub const QUERY_TOKEN: &str = "bench-query-token";

/// The release collector: `$VITALSIGN_COLLECTOR_BIN`, or built here with
/// `cargo build --release` (cargo's build lock is free while a bench runs).
pub fn release_collector() -> PathBuf {
    let [collector] = release_binaries(["vitalsign-collector"]);
    collector
}

pub type Collector = CollectorProcess;

/// `vitalsign-collector serve --listen 127.0.0.1:0 --db DB`, configured only
/// by `VITALSIGN_…` variables (the sites, tokens, limits a bench needs).
pub fn start_collector(bin: &Path, dir: &Path, db: &Path, env: &[(&str, String)]) -> Collector {
    CollectorProcess::start_with_env(bin, dir, db, env)
}

/// A plain-text table: header row, then rows, columns padded to fit.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(header.to_vec());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                "-".repeat(w + 2)
            } else {
                format!("{}:", "-".repeat(w + 1))
            }
        })
        .collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `met` / `missed` against a goal.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
