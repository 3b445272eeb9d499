//! The collector's one source of "now" (Unix milliseconds). The store
//! carries it ([`crate::store::Store::clock`]), so everything that has the
//! store (ingest and API handlers, dashboard views, the pruner, the alert
//! evaluator and outbox worker) reads the same clock, and a test can fix it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock.
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock that says `ms` until it is [`Clock::set`] (tests).
    pub fn fixed(ms: i64) -> Clock {
        Clock {
            fixed: Some(Arc::new(AtomicI64::new(ms))),
        }
    }

    /// Move a fixed clock; a system clock ignores it.
    pub fn set(&self, ms: i64) {
        if let Some(t) = &self.fixed {
            t.store(ms, Relaxed);
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.fixed {
            Some(t) => t.load(Relaxed),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_says_what_it_was_set_to_and_clones_share_it() {
        let clock = Clock::fixed(1_000);
        let copy = clock.clone();
        clock.set(2_500);
        assert_eq!(copy.now_ms(), 2_500);
        let system = Clock::system();
        system.set(5);
        assert!(system.now_ms() > 1_700_000_000_000);
    }
}
