//! Log-bucketed histograms: mergeable summaries of many values, so an hourly
//! rollup can answer a 30-day percentile without touching raw samples.
//!
//! Bucket `i` holds values in `[GAMMA^i, GAMMA^(i+1))`; a percentile is reported
//! as the bucket's geometric midpoint, within ±1 % of the true value. Zero (a
//! common CLS) has its own bucket.

use std::collections::BTreeMap;

/// Bucket growth factor.
const GAMMA: f64 = 1.02;
/// Values below this are counted as zero (CLS 0.00001 is no shift a person sees).
const MIN_VALUE: f64 = 1e-5;
/// The bucket of zero.
pub const ZERO_BUCKET: i16 = i16::MIN;
/// The lowest bucket other than zero's: that of [`MIN_VALUE`].
const MIN_BUCKET: i16 = -582;
/// The highest bucket: every value from `GAMMA^2047` (about 4e17) up shares
/// it. Validation keeps metrics under 600,000 ms (bucket 672), so only a
/// corrupt or hostile blob gets here; the cap bounds an [`Accumulator`] at a
/// few thousand slots whatever a blob holds (unbounded, two buckets at the
/// ends of i16 made it 65,536 wide and every quantile scan as long).
const MAX_BUCKET: i16 = 2047;

/// Every bucket a blob may name, folded into the range values can reach.
fn in_range(bucket: i16) -> i16 {
    if bucket == ZERO_BUCKET {
        bucket
    } else {
        bucket.clamp(MIN_BUCKET, MAX_BUCKET)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    buckets: BTreeMap<i16, u64>,
}

/// The bucket `value` is counted in (the PostgreSQL backend keeps a row per bucket).
pub(crate) fn bucket_of(value: f64) -> i16 {
    if value < MIN_VALUE {
        ZERO_BUCKET
    } else {
        in_range((value.ln() / GAMMA.ln()).floor() as i16)
    }
}

/// The value a bucket stands for (its geometric midpoint; 0 for zero).
pub fn representative(bucket: i16) -> f64 {
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

    /// Add a signed count to one bucket (a net change of many samples);
    /// like [`Histogram::add`], a bucket never goes below zero.
    pub(crate) fn add_to_bucket(&mut self, bucket: i16, count: i64) {
        let slot = self.buckets.entry(bucket).or_insert(0);
        *slot = slot.saturating_add_signed(count);
        if *slot == 0 {
            self.buckets.remove(&bucket);
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
        // A bucket named twice (only a corrupt blob does; several out-of-range
        // buckets fold into one) counts both times, as in [`Accumulator`], up
        // to the most one pair can hold, so that decoding what `encode` wrote
        // gives the same histogram (found by the histogram fuzz target).
        let mut buckets = BTreeMap::new();
        for (bucket, count) in pairs(bytes) {
            let slot: &mut u64 = buckets.entry(bucket).or_default();
            *slot = (*slot + u64::from(count)).min(u64::from(u32::MAX));
        }
        Histogram { buckets }
    }
}

/// The (bucket, count) pairs of an encoded histogram, in the order stored:
/// the one decoder of the rollup blob ([`Histogram::encode`] writes it).
pub fn pairs(bytes: &[u8]) -> impl Iterator<Item = (i16, u32)> + '_ {
    bytes.chunks_exact(6).map(|pair| {
        (
            in_range(i16::from_le_bytes([pair[0], pair[1]])),
            u32::from_le_bytes([pair[2], pair[3], pair[4], pair[5]]),
        )
    })
}

/// The sum of many encoded histograms, for long-range queries: a dense array
/// indexed by bucket, so adding a row costs an index per bucket instead of a
/// tree walk. Same counts and quantiles as merging them into a [`Histogram`].
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    /// Every count added, zero's included, so `count` and each quantile do
    /// not sum the array first.
    total: u64,
    zero: u64,
    /// Bucket of `counts[0]`.
    low: i16,
    counts: Vec<u64>,
}

impl Accumulator {
    pub fn add_encoded(&mut self, bytes: &[u8]) {
        for (bucket, count) in pairs(bytes) {
            self.add_bucket(bucket, u64::from(count));
        }
    }

    /// Add `count` values to `bucket` (a [`Histogram`] bucket index, as a
    /// store that keeps a row per bucket reads it back): the same sums as
    /// [`Accumulator::add_encoded`] of a blob holding that pair.
    pub fn add_bucket(&mut self, bucket: i16, count: u64) {
        let bucket = in_range(bucket);
        self.total = self.total.saturating_add(count);
        if bucket == ZERO_BUCKET {
            self.zero += count;
            return;
        }
        // Buckets span almost all of i16 (ZERO_BUCKET aside), so distances
        // between two of them are taken in i32: a blob holding both a
        // tiny and a huge bucket overflowed i16 here (found by the
        // histogram fuzz target).
        if self.counts.is_empty() {
            self.low = bucket;
        } else if bucket < self.low {
            let grow = (i32::from(self.low) - i32::from(bucket)) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.low = bucket;
        }
        let index = (i32::from(bucket) - i32::from(self.low)) as usize;
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += count;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The bucket of `counts[offset]`; never past the highest bucket added,
    /// so it fits an i16.
    fn bucket_at(&self, offset: usize) -> i16 {
        (i32::from(self.low) + offset as i32) as i16
    }

    /// Non-empty buckets as (lower, upper, count), zero first, for drawing.
    pub fn buckets(&self) -> Vec<(f64, f64, u64)> {
        let mut out = Vec::new();
        if self.zero > 0 {
            out.push((0.0, MIN_VALUE, self.zero));
        }
        for (offset, count) in self.counts.iter().enumerate() {
            if *count > 0 {
                let b = f64::from(self.bucket_at(offset));
                out.push((GAMMA.powf(b), GAMMA.powf(b + 1.0), *count));
            }
        }
        out
    }

    /// The `q` quantile (0..=1), nearest rank, as [`Histogram::quantile`].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        if self.zero >= rank {
            return Some(representative(ZERO_BUCKET));
        }
        let mut seen = self.zero;
        for (offset, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(representative(self.bucket_at(offset)));
            }
        }
        None
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
    fn accumulator_matches_merged_histograms() {
        let mut merged = Histogram::default();
        let mut acc = Accumulator::default();
        assert_eq!(acc.quantile(0.5), None);
        // Rows arriving out of bucket order, with zeros, as rollups do.
        for row in 0..50u32 {
            let mut h = Histogram::default();
            for i in 0..40u32 {
                let v = match (row + i) % 7 {
                    0 => 0.0,
                    k => f64::from((row * 37 + i * 11) % 5000 + 1) * f64::from(k) * 0.3,
                };
                h.add(v, 1);
            }
            merged.merge(&h);
            acc.add_encoded(&h.encode());
        }
        assert_eq!(acc.count(), merged.count());
        for q in [0.0, 0.01, 0.1, 0.5, 0.75, 0.9, 0.99, 1.0] {
            assert_eq!(acc.quantile(q), merged.quantile(q), "q{q}");
        }
    }

    #[test]
    fn buckets_added_one_by_one_sum_as_their_blob() {
        let mut h = Histogram::default();
        for v in [0.0, 0.0, 0.05, 1800.0, 1810.0, 4200.0, 1e30] {
            h.add(v, 1);
        }
        let mut from_blob = Accumulator::default();
        from_blob.add_encoded(&h.encode());
        let mut by_bucket = Accumulator::default();
        // In reverse order, and one bucket split in two, as rows may come.
        for (bucket, count) in pairs(&h.encode()).collect::<Vec<_>>().into_iter().rev() {
            by_bucket.add_bucket(bucket, u64::from(count) - 1);
            by_bucket.add_bucket(bucket, 1);
        }
        // Out of range buckets fold in as a blob's do.
        from_blob.add_encoded(&[0xff, 0x7f, 2, 0, 0, 0]);
        by_bucket.add_bucket(i16::MAX, 2);
        assert_eq!(by_bucket.count(), 9);
        assert_eq!(by_bucket.buckets(), from_blob.buckets());
        for q in [0.0, 0.3, 0.5, 0.75, 0.99, 1.0] {
            assert_eq!(by_bucket.quantile(q), from_blob.quantile(q), "q{q}");
        }
    }

    #[test]
    fn accumulator_spans_the_whole_bucket_range() {
        // A blob from the histogram fuzz target: buckets far enough apart that
        // their distance overflows an i16.
        let mut blob = Vec::new();
        for (bucket, count) in [(32_000i16, 2u32), (-32_000, 1), (10, 1)] {
            blob.extend_from_slice(&bucket.to_le_bytes());
            blob.extend_from_slice(&count.to_le_bytes());
        }
        let tree = Histogram::decode(&blob);
        let mut dense = Accumulator::default();
        dense.add_encoded(&blob);
        assert_eq!(dense.count(), 4);
        for q in [0.0, 0.25, 0.5, 1.0] {
            assert_eq!(dense.quantile(q), tree.quantile(q), "q{q}");
        }
        assert_eq!(dense.buckets().len(), 3);
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

    #[test]
    fn buckets_stay_in_the_range_values_reach() {
        assert_eq!(bucket_of(MIN_VALUE), MIN_BUCKET);
        assert_eq!(bucket_of(f64::MAX), MAX_BUCKET);
        assert_eq!(bucket_of(f64::INFINITY), MAX_BUCKET);
        // The largest plausible metric is far below the cap.
        assert!(bucket_of(600_000.0) < MAX_BUCKET / 2);

        // A blob naming the ends of i16 (twice the same end, too): the
        // accumulator stays a few thousand slots wide and both decoders
        // agree on every count.
        let mut blob = Vec::new();
        for (bucket, count) in [
            (i16::MAX, 2u32),
            (i16::MIN + 1, 1),
            (i16::MAX - 1, 3),
            (5, 1),
        ] {
            blob.extend_from_slice(&bucket.to_le_bytes());
            blob.extend_from_slice(&count.to_le_bytes());
        }
        let tree = Histogram::decode(&blob);
        let mut dense = Accumulator::default();
        dense.add_encoded(&blob);
        assert!(dense.counts.len() <= (MAX_BUCKET - MIN_BUCKET) as usize + 1);
        assert_eq!(tree.count(), 7);
        assert_eq!(dense.count(), 7);
        assert_eq!(dense.buckets().len(), 3, "{:?}", dense.buckets());
        for q in [0.0, 0.1, 0.2, 0.5, 1.0] {
            assert_eq!(dense.quantile(q), tree.quantile(q), "q{q}");
        }
    }
}
