//! The collector's one source of "now" (Unix milliseconds). The store
//! carries it ([`crate::store::Store::clock`]), so everything that has the
//! store (ingest and API handlers, dashboard views, the pruner, the alert
//! evaluator and outbox worker) reads the same clock, and a test can fix it.
//!
//! The background loops also *wait* on it ([`Clock::sleep`]): with a fixed
//! clock a test moves time with [`Clock::advance`] and every loop whose
//! interval has passed runs at once, so a test of retries and reminders
//! drives time instead of sleeping through it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock. A watch channel, so sleepers see each move.
    fixed: Option<Arc<watch::Sender<i64>>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock that says `ms` until it is moved (tests).
    pub fn fixed(ms: i64) -> Clock {
        Clock {
            fixed: Some(Arc::new(watch::Sender::new(ms))),
        }
    }

    /// Move a fixed clock (and wake whoever sleeps on it); a system clock ignores it.
    pub fn set(&self, ms: i64) {
        if let Some(t) = &self.fixed {
            t.send_replace(ms);
        }
    }

    /// Move a fixed clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.fixed {
            t.send_modify(|ms| *ms += by.as_millis() as i64);
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.fixed {
            Some(t) => *t.borrow(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// Wait until this clock has moved on by `period`: a timer for the
    /// system clock, the test's [`Clock::advance`] for a fixed one.
    pub async fn sleep(&self, period: Duration) {
        match &self.fixed {
            None => tokio::time::sleep(period).await,
            Some(t) => {
                let until = *t.borrow() + period.as_millis() as i64;
                let mut moved = t.subscribe();
                // The sender lives as long as this clock, so this only ends by the time passing.
                let _ = moved.wait_for(|&ms| ms >= until).await;
            }
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
        clock.advance(Duration::from_millis(500));
        assert_eq!(copy.now_ms(), 3_000);
        let system = Clock::system();
        system.set(5);
        assert!(system.now_ms() > 1_700_000_000_000);
    }

    #[tokio::test]
    async fn sleeping_on_a_fixed_clock_ends_when_it_is_moved_far_enough() {
        let clock = Clock::fixed(0);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(60)).await }
        });
        // The test runtime has one thread: this lets the sleeper start waiting.
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "59 s of 60 have passed");
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by the move")
            .unwrap();
    }
}
