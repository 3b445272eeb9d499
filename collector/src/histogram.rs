//! Log-bucketed histograms: mergeable summaries of many values, so an hourly
//! rollup can answer a 30-day percentile without touching raw samples.
//!
//! Bucket `i` holds values in `[GAMMA^i, GAMMA^(i+1))`; a percentile is reported
//! as the bucket's geometric midpoint, within ±1 % of the true value. Zero (a
//! common CLS) has its own bucket.

use std::collections::BTreeMap;

const GAMMA: f64 = 1.02;
/// Values below this are counted as zero (CLS 0.00001 is no shift a person sees).
const MIN_VALUE: f64 = 1e-5;
const ZERO_BUCKET: i16 = i16::MIN;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    buckets: BTreeMap<i16, u64>,
}

fn bucket_of(value: f64) -> i16 {
    if value < MIN_VALUE {
        ZERO_BUCKET
    } else {
        (value.ln() / GAMMA.ln()).floor() as i16
    }
}

fn representative(bucket: i16) -> f64 {
    if bucket == ZERO_BUCKET {
        0.0
    } else {
        GAMMA.powf(f64::from(bucket) + 0.5)
    }
}

impl Histogram {
    pub fn add(&mut self, value: f64, count: i64) {
        let slot = self.buckets.entry(bucket_of(value)).or_insert(0);
        *slot = slot.saturating_add_signed(count);
        if *slot == 0 {
            self.buckets.remove(&bucket_of(value));
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in &other.buckets {
            *self.buckets.entry(*bucket).or_insert(0) += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The `q` quantile (0..=1) using the nearest-rank definition.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(representative(*bucket));
            }
        }
        None
    }

    /// Compact encoding for SQLite: (bucket i16, count u32) pairs, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 6);
        for (bucket, count) in &self.buckets {
            out.extend_from_slice(&bucket.to_le_bytes());
            out.extend_from_slice(&(*count.min(&(u32::MAX as u64)) as u32).to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Histogram {
        let mut buckets = BTreeMap::new();
        for pair in bytes.chunks_exact(6) {
            let bucket = i16::from_le_bytes([pair[0], pair[1]]);
            let count = u32::from_le_bytes([pair[2], pair[3], pair[4], pair[5]]);
            buckets.insert(bucket, u64::from(count));
        }
        Histogram { buckets }
    }
}

/// Exact nearest-rank quantile of raw values (sorted in place).
pub fn exact_quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent_and_mergeable() {
        let values: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 0.7).collect();
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for (i, v) in values.iter().enumerate() {
            if i % 2 == 0 {
                a.add(*v, 1)
            } else {
                b.add(*v, 1)
            }
        }
        let mut merged = Histogram::decode(&a.encode());
        merged.merge(&Histogram::decode(&b.encode()));
        assert_eq!(merged.count(), 10_000);
        for q in [0.5, 0.75, 0.9, 0.99] {
            let exact = exact_quantile(&mut values.clone(), q).unwrap();
            let approx = merged.quantile(q).unwrap();
            assert!(
                (approx - exact).abs() / exact < 0.01,
                "q{q}: {approx} vs {exact}"
            );
        }
    }

    #[test]
    fn zero_and_removal() {
        let mut h = Histogram::default();
        h.add(0.0, 1);
        h.add(0.0, 1);
        h.add(0.3, 1);
        assert_eq!(h.quantile(0.5), Some(0.0));
        h.add(0.0, -2);
        assert_eq!(h.count(), 1);
        assert!((h.quantile(0.75).unwrap() - 0.3).abs() < 0.01);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
