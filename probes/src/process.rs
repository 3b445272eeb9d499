//! Killing a browser for good: the process and everything it started
//! (renderers, GPU and utility processes), so nothing is ever orphaned.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Pids of `root`'s descendants, from /proc (children before grandchildren).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name may hold spaces: the fields we want follow its ')'.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// SIGKILL `pid` and all its descendants. Collected first, so children that
/// are re-parented when their parent dies are still found.
pub fn kill_tree(pid: u32) {
    let mut all = descendants(pid);
    all.push(pid);
    for p in all {
        let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
    }
}

/// Whether `pid` is still running: an exited process waiting to be reaped
/// (a zombie) is not.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Processes whose command line mentions `needle` (tests use it to find orphans).
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd);
                if cmd.contains(needle) {
                    found.push(pid);
                }
            }
        }
    }
    found
}
