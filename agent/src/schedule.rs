//! When flows run: a flow's `schedule` is an interval (`30s`, `5m`, `1h`) or a
//! cron expression (five fields as in crontab, or six with seconds first).

use std::time::Duration;

/// Flows without a `schedule` run this often.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Below this a browser flow would overlap itself on a busy machine.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    /// Six-field cron (seconds first), as tokio-cron-scheduler expects.
    Cron(String),
}

pub fn parse(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    let fields = text.split_whitespace().count();
    if fields == 1 {
        let every = humantime::parse_duration(text).map_err(|e| {
            format!("{text:?} is not an interval like \"5m\" or a cron expression: {e}")
        })?;
        if every < MIN_INTERVAL {
            return Err(format!("{text:?} is shorter than the minimum of 1s"));
        }
        return Ok(Schedule::Every(every));
    }
    let cron = match fields {
        5 => format!("0 {text}"),
        6 | 7 => text.to_string(),
        _ => {
            return Err(format!(
                "{text:?} has {fields} fields; a cron expression has 5 (min hour day month weekday) or 6 (with seconds first)"
            ));
        }
    };
    // Let the scheduler's own parser judge it, so validation and scheduling agree.
    tokio_cron_scheduler::Job::new_async(cron.as_str(), |_, _| Box::pin(async {}))
        .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
    Ok(Schedule::Cron(cron))
}

impl Schedule {
    /// A typical gap between runs, to bound the start jitter.
    pub fn typical_interval(&self) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron(_) => Duration::from_secs(60),
        }
    }
}

/// A stable per-flow delay in `0..min(max, interval/4)`: flows on the same
/// schedule spread out, and each flow keeps its slot from run to run (so its
/// series are evenly spaced).
pub fn jitter(flow_name: &str, schedule: &Schedule, max: Duration) -> Duration {
    let bound = max.min(schedule.typical_interval() / 4);
    if bound.is_zero() {
        return Duration::ZERO;
    }
    // FNV-1a: tiny, stable across runs and builds (std's hasher is not).
    let hash = flow_name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    Duration::from_millis(hash % bound.as_millis().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_cron() {
        assert_eq!(
            parse("5m").unwrap(),
            Schedule::Every(Duration::from_secs(300))
        );
        assert_eq!(
            parse("*/5 * * * *").unwrap(),
            Schedule::Cron("0 */5 * * * *".into())
        );
        assert_eq!(
            parse("*/10 * * * * *").unwrap(),
            Schedule::Cron("*/10 * * * * *".into())
        );
        assert!(parse("soon").unwrap_err().contains("not an interval"));
        assert!(parse("* * *").unwrap_err().contains("3 fields"));
        assert!(
            parse("61 * * * *")
                .unwrap_err()
                .contains("not a valid cron")
        );
        assert!(parse("100ms").unwrap_err().contains("minimum"));
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let s = Schedule::Every(Duration::from_secs(60));
        let a = jitter("checkout", &s, Duration::from_secs(10));
        assert_eq!(a, jitter("checkout", &s, Duration::from_secs(10)));
        assert!(a < Duration::from_secs(10));
        let short = Schedule::Every(Duration::from_secs(2));
        assert!(jitter("checkout", &short, Duration::from_secs(10)) < Duration::from_millis(500));
        assert_ne!(
            jitter("checkout", &s, Duration::from_secs(10)),
            jitter("search", &s, Duration::from_secs(10))
        );
    }
}
