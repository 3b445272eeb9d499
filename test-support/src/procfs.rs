//! Readings of other processes from Linux's `/proc`.

/// Resident set of one process (not its children) and its peak (VmRSS,
/// VmHWM), in MiB; NaN when the process is gone.
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

/// The fields of `/proc/<pid>/stat` after the parenthesised name (which may
/// hold spaces): state, ppid, …; empty when the process is gone.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// CPU time (user + system) a process has used so far, in ms. `/proc` counts
/// in USER_HZ, which Linux fixes at 100 per second.
pub fn cpu_ms(pid: u32) -> f64 {
    let fields = stat_fields(pid);
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) * 10.0,
        _ => f64::NAN,
    }
}

/// The direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            stat_fields(child)
                .get(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// [`cpu_ms`] of a process and its direct children (nginx's master and workers).
pub fn cpu_ms_tree(pid: u32) -> f64 {
    cpu_ms(pid) + children(pid).into_iter().map(cpu_ms).sum::<f64>()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat_fields(pid).first().is_some_and(|state| state != "Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_uses_memory_and_cpu() {
        let me = std::process::id();
        assert!(alive(me));
        let (rss, peak) = rss_mib(me);
        assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
        assert!(cpu_ms(me) >= 0.0);
        assert!(!alive(u32::MAX - 1));
        assert!(rss_mib(u32::MAX - 1).0.is_nan());
    }
}
