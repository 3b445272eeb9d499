//! Shared by the collector benchmarks: the release collector binary, starting
//! it on `127.0.0.1:0`, /proc readings, percentiles and the result table.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vitalsign_tests::{Process, workspace_root};

pub const QUERY_TOKEN: &str = "bench-query-token";

/// The release collector: `$VITALSIGN_COLLECTOR_BIN`, or built here with
/// `cargo build --release` (cargo's build lock is free while a bench runs).
pub fn release_collector() -> PathBuf {
    if let Ok(path) = std::env::var("VITALSIGN_COLLECTOR_BIN") {
        return PathBuf::from(path);
    }
    let root = workspace_root();
    eprintln!("building the release collector (cargo build --release --bin vitalsign-collector)…");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "vitalsign-collector",
            "--bin",
            "vitalsign-collector",
        ])
        .current_dir(&root)
        .status()
        .expect("running cargo build");
    assert!(
        status.success(),
        "building the release collector failed; run `cargo build --release --bin vitalsign-collector` \
         to see why, or point VITALSIGN_COLLECTOR_BIN at a built binary"
    );
    let path = target_dir().join("release/vitalsign-collector");
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub struct Collector {
    pub process: Process,
    pub addr: std::net::SocketAddr,
    pub base_url: String,
    pub pid: u32,
}

/// `vitalsign-collector serve --listen 127.0.0.1:0 --db DB`, configured only
/// by `VITALSIGN_…` variables (the sites, tokens, limits a bench needs).
pub fn start_collector(bin: &Path, dir: &Path, db: &Path, env: &[(&str, String)]) -> Collector {
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(db)
        .current_dir(dir)
        .env("RUST_LOG", "info");
    // Only what the bench sets: an operator's own VITALSIGN_ variables stay out.
    for (key, _) in std::env::vars() {
        if key.starts_with("VITALSIGN_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = Process::spawn("vitalsign-collector", command);
    let line = process.wait_for_line("listening on http://", Duration::from_secs(60));
    let addr = listening_addr(&line);
    let pid = process.child.id();
    Collector {
        process,
        addr,
        base_url: format!("http://{addr}"),
        pid,
    }
}

/// The address after `listening on http://` in a log line.
pub fn listening_addr(line: &str) -> std::net::SocketAddr {
    line.split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|a| a.trim_end_matches(['"', ',', '}']))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

impl Collector {
    /// SIGTERM: the collector drains and commits; panics if it does not exit in time.
    pub fn stop(mut self) {
        assert!(
            self.process.terminate(Duration::from_secs(60)),
            "the collector did not stop within 60 s of SIGTERM; its log:\n{}",
            self.process.log().join("\n")
        );
    }
}

/// Resident set of one process and its peak (VmRSS, VmHWM), in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) a process has used so far, in ms. `/proc` counts
/// in USER_HZ, which Linux fixes at 100 per second.
pub fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) * 10.0,
        _ => f64::NAN,
    }
}

/// [`cpu_ms`] of a process and its children (nginx's master and workers).
pub fn cpu_ms_tree(pid: u32) -> f64 {
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // Field 4 (after the parenthesised name) is the parent's pid.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok())
                == Some(pid)
        })
        .map(cpu_ms)
        .sum();
    cpu_ms(pid) + children
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nearest-rank percentile of sorted values; `q` in 0..=1.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile_sorted(&v, 0.5)
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
