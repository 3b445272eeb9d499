//! Silences (created over the API, with an expiry) and recurring maintenance
//! windows (from the config). Both stop emails, never evaluation: states and
//! transitions are recorded as usual, and an alert still firing when the quiet
//! period ends is announced then.

use serde::{Deserialize, Serialize};
use vitalsign_core::metric::Metric;

use super::rules::{Dims, matcher_matches};
use crate::config::{MaintenanceWindow, PageGlob, Weekday};

const DAY_MS: i64 = 86_400_000;

/// Which alerts a silence covers; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Matchers {
    pub rule: Option<String>,
    pub site: Option<String>,
    /// Glob over page groups.
    pub page_group: Option<String>,
    pub metric: Option<String>,
    pub flow: Option<String>,
    pub location: Option<String>,
}

impl Matchers {
    /// Reject what would silently match nothing: (field, reason).
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(m) = &self.metric
            && Metric::parse(m).is_none()
        {
            return Err((
                "metric".into(),
                format!("{m:?} is not one of LCP, INP, CLS, FCP, TTFB, TBT"),
            ));
        }
        if let Some(g) = &self.page_group
            && let Err(reason) = PageGlob::new(g)
        {
            return Err(("page_group".into(), reason));
        }
        Ok(())
    }

    pub fn matches(&self, rule: &str, dims: &Dims) -> bool {
        self.rule.as_deref().is_none_or(|r| r == rule)
            && self.metric.as_deref().is_none_or(|m| {
                dims.metric
                    .is_some_and(|dm| dm.as_str().eq_ignore_ascii_case(m))
            })
            && matcher_matches(
                self.site.as_deref(),
                // Silences come and go over the API, stored as text: compiled
                // here; a glob refused by `check` matches nothing.
                match self.page_group.as_deref().map(PageGlob::new) {
                    Some(Ok(glob)) => Some(glob),
                    Some(Err(_)) => return false,
                    None => None,
                }
                .as_ref(),
                self.flow.as_deref(),
                self.location.as_deref(),
                dims,
            )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub created_ms: i64,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub matchers: Matchers,
    pub comment: String,
    pub created_by: String,
}

impl Silence {
    pub fn active(&self, now_ms: i64) -> bool {
        self.starts_ms <= now_ms && now_ms < self.ends_ms
    }
}

/// Is this maintenance window open at `now_ms` (UTC)?
pub fn window_open(w: &MaintenanceWindow, now_ms: i64) -> bool {
    let (start_min, length_min) = (w.start.minute_of_day(), w.duration.minutes());
    let today = now_ms.div_euclid(DAY_MS);
    // A window may have opened up to 7 days ago and still be open.
    (0..=7).any(|back| {
        let day = today - back;
        let recurs = w.days.is_empty() || w.days.contains(&Weekday::of_unix_day(day));
        let opens = day * DAY_MS + i64::from(start_min) * 60_000;
        recurs && opens <= now_ms && now_ms < opens + i64::from(length_min) * 60_000
    })
}

pub fn window_matches(w: &MaintenanceWindow, dims: &Dims) -> bool {
    matcher_matches(
        w.site.as_deref(),
        w.page_group.as_ref(),
        w.flow.as_deref(),
        w.location.as_deref(),
        dims,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_window_opens_and_closes() {
        let w = MaintenanceWindow {
            name: "sunday deploys".into(),
            days: vec![Weekday::Sun],
            start: "23:30".parse().unwrap(),
            duration: "2h".parse().unwrap(),
            ..Default::default()
        };
        // 2026-11-22 is a Sunday.
        let sunday = 20_779 * DAY_MS;
        assert!(!window_open(&w, sunday + (23 * 60 + 29) * 60_000));
        assert!(window_open(&w, sunday + (23 * 60 + 30) * 60_000));
        assert!(
            window_open(&w, sunday + DAY_MS + 60 * 60_000),
            "past midnight into monday"
        );
        assert!(!window_open(&w, sunday + DAY_MS + 90 * 60_000));
        assert!(
            !window_open(&w, sunday - DAY_MS + (23 * 60 + 45) * 60_000),
            "saturday"
        );
    }
}
