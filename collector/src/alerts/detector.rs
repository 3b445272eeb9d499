//! The statistics: from hourly histograms of one series to an observation
//! ("regressed", "recovered", "not enough data") with the numbers behind it.
//!
//! Regression = all of: the recent window is stochastically larger than the
//! baseline (one-sided Mann-Whitney U, `alpha`); its p75 rose by at least
//! `threshold` (the larger of `min_relative_change` and `noise_multiplier`
//! robust standard deviations of the baseline's own window-to-window p75
//! movement) and by at least the metric's absolute floor; and the rise is
//! sustained: at least half of the recent hours are themselves above the
//! half-way line, so one bad hour cannot fire. Both windows need enough samples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::Resolved;
use super::windows::{HourHist, Window, hour_quantile};
use crate::config::{BudgetSettings, RegressionSettings};

pub const HOUR_MS: i64 = 3_600_000;
/// Baseline windows needed to estimate how much p75 moves on its own.
pub const MIN_BASELINE_WINDOWS: usize = 24;

/// The numbers behind a decision; what transitions record and emails show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Numbers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<f64>,
    #[serde(default)]
    pub baseline_count: u64,
    #[serde(default)]
    pub current_count: u64,
    /// Relative change of p75, `(current − baseline) / baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Relative change that counts as a regression for this series now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Robust standard deviation of the baseline's window p75s, relative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
    #[serde(default)]
    pub window_from_ms: i64,
    #[serde(default)]
    pub window_to_ms: i64,
    #[serde(default)]
    pub baseline_from_ms: i64,
    #[serde(default)]
    pub baseline_to_ms: i64,
    /// Flow rules: consecutive failed / passed / errored runs, last run and why it failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passes: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub errors: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stale flows: when the latest result arrived, how long nothing has
    /// arrived since, and the usual interval between runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_received_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<i64>,
    /// Why the observation came out as it did, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Too few samples to say anything.
    Insufficient(Numbers),
    Measured {
        numbers: Numbers,
        /// The rule's condition holds (regressed / over budget).
        hit: bool,
        /// Far enough back to resolve a firing alert (hysteresis).
        recovered: bool,
        /// Start of the earliest hour of the current bad run, when `hit`.
        start_ms: Option<i64>,
    },
}

type Hours = BTreeMap<i64, HourHist>;

fn count(hours: &Hours, from: i64, to: i64) -> u64 {
    hours.range(from..to).map(|(_, h)| h.count).sum()
}

/// The recent window `[end − w, end)` with the fewest hours (≥ min) that holds
/// `min_samples`.
fn recent_window(hours: &Hours, end: i64, min_w: u32, max_w: u32, min_samples: u64) -> Option<i64> {
    (min_w..=max_w)
        .map(i64::from)
        .find(|w| count(hours, end - w, end) >= min_samples.max(1))
}

/// Nearest-rank-free quantile of a small sample with linear interpolation:
/// window p75s sit on 2 % histogram steps, and interpolating keeps the spread
/// estimate from collapsing onto one step.
fn interpolated(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + (next - sorted[i]) * frac
}

/// Robust standard deviation: interquartile range / 1.349 (exact for a
/// normal), so one past incident inside the baseline does not widen it.
fn robust_sd(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    (interpolated(values, 0.75) - interpolated(values, 0.25)) / 1.349
}

/// How many recent hours (with data) have a p75 at or above `line`, out of how many.
fn hours_above(hours: &Hours, from: i64, to: i64, line: f64) -> (usize, usize) {
    let mut above = 0;
    let mut with_data = 0;
    for (_, h) in hours.range(from..to) {
        if let Some(p) = hour_quantile(h, 0.75) {
            with_data += 1;
            if p >= line {
                above += 1;
            }
        }
    }
    (above, with_data)
}

/// Earliest start of the run of hours, ending at the newest, whose p75 is at or
/// above `line` (gaps without data do not break it). Looks back `limit` hours.
fn bad_run_start(hours: &Hours, end: i64, line: f64, limit: i64) -> Option<i64> {
    let mut start = None;
    for (hour, h) in hours.range(end - limit..end).rev() {
        match hour_quantile(h, 0.75) {
            Some(p) if p >= line => start = Some(*hour),
            Some(_) => break,
            None => {}
        }
    }
    start.map(|h| h * HOUR_MS)
}

/// Observe a regression rule at the end of hour `end − 1` (`end` = first
/// incomplete hour). `frozen_end` pins the baseline while pending or firing;
/// `fired_threshold` is the threshold the alert fired at (resolution uses half of it).
pub fn regression(
    s: &RegressionSettings,
    rule: &Resolved,
    hours: &Hours,
    end: i64,
    frozen_end: Option<i64>,
    fired_threshold: Option<f64>,
) -> Observation {
    let mut numbers = Numbers::default();
    let Some(w) = recent_window(
        hours,
        end,
        s.min_window_hours,
        s.max_window_hours,
        rule.min_samples,
    ) else {
        let have = count(hours, end - i64::from(s.max_window_hours), end);
        numbers.current_count = have;
        numbers.note = format!(
            "{have} samples in the last {} h; the recent window needs {}",
            s.max_window_hours, rule.min_samples
        );
        return Observation::Insufficient(numbers);
    };
    let base_end = frozen_end.unwrap_or(end - w).min(end - w);
    let base_from = base_end - i64::from(s.baseline_hours);
    numbers.window_from_ms = (end - w) * HOUR_MS;
    numbers.window_to_ms = end * HOUR_MS;
    numbers.baseline_from_ms = base_from * HOUR_MS;
    numbers.baseline_to_ms = base_end * HOUR_MS;
    let baseline = Window::of(hours.range(base_from..base_end).map(|(_, h)| h));
    let recent = Window::of(hours.range(end - w..end).map(|(_, h)| h));
    numbers.baseline_count = baseline.count;
    numbers.current_count = recent.count;
    if baseline.count < s.min_baseline_samples {
        numbers.note = format!(
            "{} baseline samples; the baseline needs {}",
            baseline.count, s.min_baseline_samples
        );
        return Observation::Insufficient(numbers);
    }
    let (Some(b75), Some(r75)) = (baseline.quantile(0.75), recent.quantile(0.75)) else {
        return Observation::Insufficient(numbers);
    };
    numbers.baseline = Some(b75);
    numbers.current = Some(r75);
    // Relative to the baseline, or to the floor when the baseline is ~0 (CLS).
    let scale = b75.max(rule.floor).max(f64::MIN_POSITIVE);
    let change = (r75 - b75) / scale;
    numbers.change = Some(change);
    // Baseline windows of the recent window's size with enough samples: the
    // noise estimate needs at least MIN_BASELINE_WINDOWS of them.
    let windows: Vec<i64> = (0..i64::from(s.baseline_hours) / w)
        .map(|j| base_end - j * w)
        .filter(|to| count(hours, to - w, *to) >= (rule.min_samples / 2).max(1))
        .collect();
    if windows.len() < MIN_BASELINE_WINDOWS {
        numbers.note = format!(
            "the baseline has {} windows of {w} h with enough samples; it needs {MIN_BASELINE_WINDOWS}",
            windows.len()
        );
        return Observation::Insufficient(numbers);
    }
    // Cheap exit for the common case (no meaningful rise, not firing): the
    // noise estimate and the rank test cannot turn it into a regression.
    if fired_threshold.is_none() && (change < rule.min_relative_change || r75 - b75 < rule.floor) {
        numbers.note = format!(
            "change {:+.1} % is below the {:.0} % minimum or the floor",
            change * 100.0,
            rule.min_relative_change * 100.0
        );
        return Observation::Measured {
            numbers,
            hit: false,
            recovered: true,
            start_ms: None,
        };
    }
    // How far p75 of a window this size wanders on its own within the baseline.
    let mut scratch = Window::default();
    let mut deviations: Vec<f64> = windows
        .iter()
        .filter_map(|to| {
            scratch.clear();
            for (_, h) in hours.range(to - w..*to) {
                scratch.add(h);
            }
            scratch.quantile(0.75).map(|p| (p - b75) / scale)
        })
        .collect();
    let noise = robust_sd(&mut deviations);
    numbers.noise = Some(noise);
    let threshold = rule.min_relative_change.max(s.noise_multiplier * noise);
    numbers.threshold = Some(threshold);
    let p = recent.mann_whitney_greater(&baseline);
    numbers.p_value = Some(p);
    let half_line = b75 + scale * threshold / 2.0;
    let (above, with_data) = hours_above(hours, end - w, end, half_line);
    let sustained = with_data > 0 && above * 2 >= with_data;
    let big_enough = change >= threshold && r75 - b75 >= rule.floor;
    let hit = p < s.alpha && big_enough && sustained;
    let resolve_threshold = fired_threshold.unwrap_or(threshold) / 2.0;
    let recovered = change < resolve_threshold || r75 - b75 < rule.floor / 2.0;
    numbers.note = if hit {
        format!(
            "p75 +{:.0} % over {w} h, {above}/{with_data} hours above the half-way line",
            change * 100.0
        )
    } else if !big_enough {
        format!(
            "change {:+.1} % is below the {:.1} % threshold or the floor",
            change * 100.0,
            threshold * 100.0
        )
    } else if p >= s.alpha {
        format!("not significant (p = {p:.3})")
    } else {
        format!("not sustained: {above}/{with_data} recent hours above the half-way line")
    };
    let start_ms = hit
        .then(|| bad_run_start(hours, end, half_line, i64::from(s.max_window_hours) * 2))
        .flatten();
    Observation::Measured {
        numbers,
        hit,
        recovered,
        start_ms,
    }
}

/// Observe a budget rule: recent p75 above the bound, sustained over at least
/// half of the recent hours; resolves below `bound × (1 − hysteresis)`.
pub fn budget(
    r: &RegressionSettings,
    b: &BudgetSettings,
    rule: &Resolved,
    hours: &Hours,
    end: i64,
) -> Observation {
    let mut numbers = Numbers {
        bound: rule.bound,
        ..Numbers::default()
    };
    let Some(bound) = rule.bound else {
        return Observation::Insufficient(numbers);
    };
    let Some(w) = recent_window(
        hours,
        end,
        r.min_window_hours,
        r.max_window_hours,
        rule.min_samples,
    ) else {
        numbers.current_count = count(hours, end - i64::from(r.max_window_hours), end);
        numbers.note = format!(
            "{} samples in the last {} h; the budget window needs {}",
            numbers.current_count, r.max_window_hours, rule.min_samples
        );
        return Observation::Insufficient(numbers);
    };
    let recent = Window::of(hours.range(end - w..end).map(|(_, h)| h));
    let Some(r75) = recent.quantile(0.75) else {
        return Observation::Insufficient(numbers);
    };
    numbers.current = Some(r75);
    numbers.current_count = recent.count;
    numbers.change = Some((r75 - bound) / bound);
    numbers.window_from_ms = (end - w) * HOUR_MS;
    numbers.window_to_ms = end * HOUR_MS;
    let (above, with_data) = hours_above(hours, end - w, end, bound * (1.0 + f64::EPSILON));
    let hit = r75 > bound && above * 2 >= with_data;
    let recovered = r75 < bound * (1.0 - b.hysteresis);
    numbers.note = format!(
        "p75 over {w} h is {:+.1} % from the bound; {above}/{with_data} hours above it",
        (r75 - bound) / bound * 100.0
    );
    let start_ms = hit
        .then(|| bad_run_start(hours, end, bound, i64::from(r.max_window_hours) * 2))
        .flatten();
    Observation::Measured {
        numbers,
        hit,
        recovered,
        start_ms,
    }
}
