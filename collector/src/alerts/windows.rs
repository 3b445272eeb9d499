//! Hourly histograms as the alert engine reads them, and the windows it merges
//! them into. The encoding is the rollup blob of [`crate::histogram`]; merging
//! goes into a dense array so a week of hours merges and ranks in microseconds.

use crate::histogram::{self, Histogram, ZERO_BUCKET};
/// Dense index of bucket `b` is `b + OFFSET`; index 0 holds zeros. Buckets of
/// plausible values (1e-5 … 600 000) lie within ±700.
const OFFSET: i32 = 1024;
const DENSE_LEN: usize = 2048;

/// One hour of one series: (bucket, count) pairs in ascending bucket order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourHist {
    pub pairs: Vec<(i16, u32)>,
    pub count: u64,
}

impl HourHist {
    /// Decode a rollup blob (the format [`Histogram::encode`] writes).
    pub fn decode(bytes: &[u8]) -> HourHist {
        let mut pairs = Vec::with_capacity(bytes.len() / 6);
        let mut count = 0;
        for (bucket, n) in histogram::pairs(bytes) {
            if n > 0 {
                pairs.push((bucket, n));
                count += u64::from(n);
            }
        }
        // The blob is written in bucket order, but a sort is cheap insurance.
        pairs.sort_unstable_by_key(|p| p.0);
        HourHist { pairs, count }
    }

    pub fn from_histogram(h: &Histogram) -> HourHist {
        HourHist::decode(&h.encode())
    }
}

fn index(bucket: i16) -> usize {
    if bucket == ZERO_BUCKET {
        0
    } else {
        (i32::from(bucket) + OFFSET).clamp(1, DENSE_LEN as i32 - 1) as usize
    }
}

fn representative(index: usize) -> f64 {
    if index == 0 {
        histogram::representative(ZERO_BUCKET)
    } else {
        histogram::representative((index as i32 - OFFSET) as i16)
    }
}

/// Counts of many hours merged.
#[derive(Clone)]
pub struct Window {
    counts: Vec<u64>,
    pub count: u64,
    /// Range of indexes that may be non-zero, so scans skip the empty rest.
    lo: usize,
    hi: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            counts: vec![0; DENSE_LEN],
            count: 0,
            lo: DENSE_LEN,
            hi: 0,
        }
    }
}

impl Window {
    pub fn add(&mut self, hour: &HourHist) {
        if let (Some(first), Some(last)) = (hour.pairs.first(), hour.pairs.last()) {
            self.lo = self.lo.min(index(first.0));
            self.hi = self.hi.max(index(last.0) + 1);
        }
        for (bucket, n) in &hour.pairs {
            self.counts[index(*bucket)] += u64::from(*n);
        }
        self.count += hour.count;
    }

    /// Empty the window, keeping its allocation.
    pub fn clear(&mut self) {
        if self.lo < self.hi {
            self.counts[self.lo..self.hi].fill(0);
        }
        self.count = 0;
        self.lo = DENSE_LEN;
        self.hi = 0;
    }

    fn range(&self) -> std::ops::Range<usize> {
        if self.lo < self.hi {
            self.lo..self.hi
        } else {
            0..0
        }
    }

    pub fn of<'a>(hours: impl IntoIterator<Item = &'a HourHist>) -> Window {
        let mut w = Window::default();
        for h in hours {
            w.add(h);
        }
        w
    }

    /// Nearest-rank quantile, the same definition as [`Histogram::quantile`].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_of(
            self.counts.iter().enumerate().map(|(i, c)| (i, *c)),
            self.count,
            q,
        )
    }

    /// One-sided Mann-Whitney U: p-value of "`self` is stochastically larger
    /// than `baseline`", normal approximation with tie correction (a bucket is a
    /// tie group, which makes the test slightly conservative, never eager).
    pub fn mann_whitney_greater(&self, baseline: &Window) -> f64 {
        let (n1, n2) = (self.count as f64, baseline.count as f64);
        if n1 == 0.0 || n2 == 0.0 {
            return 1.0;
        }
        let mut u = 0.0;
        let mut below = 0.0;
        let mut ties = 0.0;
        let lo = self.range().start.min(baseline.range().start);
        let hi = self.range().end.max(baseline.range().end);
        for (x, y) in self.counts[lo..hi].iter().zip(&baseline.counts[lo..hi]) {
            let (x, y) = (*x as f64, *y as f64);
            u += x * (below + 0.5 * y);
            below += y;
            let t = x + y;
            ties += t * t * t - t;
        }
        let n = n1 + n2;
        let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
        if variance <= 0.0 {
            return 1.0;
        }
        let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
        normal_upper_tail(z)
    }
}

fn quantile_of(buckets: impl Iterator<Item = (usize, u64)>, total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in buckets {
        seen += c;
        if seen >= rank {
            return Some(representative(i));
        }
    }
    None
}

/// Quantile of a single hour without a dense merge.
pub fn hour_quantile(hour: &HourHist, q: f64) -> Option<f64> {
    quantile_of(
        hour.pairs.iter().map(|(b, c)| (index(*b), u64::from(*c))),
        hour.count,
        q,
    )
}

/// P(Z > z) for a standard normal Z (erfc with |error| < 1.2e-7, Numerical Recipes).
pub fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_the_rollup_histogram() {
        let mut h = Histogram::default();
        for i in 0..5000 {
            h.add(
                f64::from(i % 997) * 3.1 + if i % 7 == 0 { 0.0 } else { 0.5 },
                1,
            );
        }
        let hour = HourHist::from_histogram(&h);
        let w = Window::of([&hour]);
        for q in [0.1, 0.5, 0.75, 0.9, 0.99] {
            assert_eq!(w.quantile(q), h.quantile(q), "q{q}");
            assert_eq!(hour_quantile(&hour, q), h.quantile(q), "q{q}");
        }
    }

    #[test]
    fn normal_tail_and_rank_test() {
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(-1.644_854) - 0.95).abs() < 1e-6);
        let hist = |lo: i32, hi: i32| {
            let mut h = Histogram::default();
            for v in lo..hi {
                h.add(f64::from(v), 1);
            }
            HourHist::from_histogram(&h)
        };
        let base = Window::of([&hist(100, 600)]);
        let same = Window::of([&hist(100, 600)]);
        let higher = Window::of([&hist(200, 700)]);
        assert!(same.mann_whitney_greater(&base) > 0.4);
        assert!(higher.mann_whitney_greater(&base) < 1e-6);
        assert!(base.mann_whitney_greater(&higher) > 0.99);
    }
}
