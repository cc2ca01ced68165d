//! A compact log-bucketed histogram (HDR-style) for durations.
//!
//! Values below 32 are counted exactly; above, each power of two is split into 32 linear
//! sub-buckets, so a reported percentile is within 1/32 (about 3%) of the true value.
//! Only the buckets from the smallest value's to the largest value's are kept, as 32-bit
//! counters (a bucket saturates at 4,294,967,295 values): at most 1,920 counters (7.5 KiB),
//! whatever the number of values. No vector of samples is kept or sorted.

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

/// A histogram of `u64` values (nanoseconds, in the analyzer) with exact count, sum, min
/// and max, and percentiles within about 3%.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Counts of buckets `first..first + counts.len()`.
    counts: Vec<u32>,
    first: usize,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

fn index(v: u64) -> usize {
    if v < SUB {
        v as usize
    } else {
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
        ((e - SUB_BITS + 1) as u64 * SUB + sub) as usize
    }
}

/// Lowest and highest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        (i, i)
    } else {
        let e = (i / SUB) as u32 + SUB_BITS - 1;
        let sub = i % SUB;
        let lo = (1u64 << e) | (sub << (e - SUB_BITS));
        let width = 1u64 << (e - SUB_BITS);
        (lo, lo.saturating_add(width - 1))
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for buckets `lo..=hi`.
    fn cover(&mut self, lo: usize, hi: usize) {
        if self.counts.is_empty() {
            self.first = lo;
            self.counts.resize(hi - lo + 1, 0);
            return;
        }
        if lo < self.first {
            let add = self.first - lo;
            self.counts.splice(0..0, std::iter::repeat_n(0, add));
            self.first = lo;
        }
        if hi >= self.first + self.counts.len() {
            self.counts.resize(hi - self.first + 1, 0);
        }
    }

    /// Counts one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        let i = index(v);
        // One comparison for both sides: below `first` wraps to past the end.
        if i.wrapping_sub(self.first) >= self.counts.len() {
            self.cover(i, i);
        }
        let c = &mut self.counts[i - self.first];
        *c = c.saturating_add(1);
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.count += 1;
        self.sum += v as u128;
    }

    /// Adds all of `other`'s values.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        self.cover(other.first, other.first + other.counts.len() - 1);
        let at = other.first - self.first;
        for (a, b) in self.counts[at..].iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        if self.count == 0 || other.min < self.min {
            self.min = other.min;
        }
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the values (saturated to `u64`).
    pub fn sum(&self) -> u64 {
        self.sum.min(u64::MAX as u128) as u64
    }

    /// Smallest value (0 when empty).
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Largest value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean value (0 when empty).
    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as u128) as u64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of the bucket holding it, clamped
    /// to the exact min and max. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                let (lo, hi) = bounds(self.first + i);
                return (lo / 2 + hi / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The value at time-weighted quantile `q` (0.0..=1.0): the middle of the bucket at
    /// which the values up to it sum to `q` of all values' sum, clamped to the exact min and
    /// max (each bucket's values counted at its middle). With `q` = 0.25, three quarters of
    /// the total lie in values at least this large. 0 when empty.
    pub fn weighted_quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let mid = |i: usize| {
            let (lo, hi) = bounds(i);
            (lo / 2 + hi / 2).clamp(self.min, self.max)
        };
        let total: f64 = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| f64::from(c) * mid(self.first + i) as f64)
            .sum();
        let want = q.clamp(0.0, 1.0) * total;
        let mut seen = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += f64::from(c) * mid(self.first + i) as f64;
            if c > 0 && seen >= want {
                return mid(self.first + i);
            }
        }
        self.max
    }

    /// The 50th percentile.
    pub fn p50(&self) -> u64 {
        self.quantile(0.50)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> u64 {
        self.quantile(0.99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_quantile_follows_where_the_total_lies() {
        let mut h = Histogram::new();
        // 900 short values (1 us) and 100 long ones (40 ms): the long ones hold nearly all
        // of the total, so even the weighted 25th percentile is long.
        for _ in 0..900 {
            h.record(1_000);
        }
        for _ in 0..100 {
            h.record(40_000_000);
        }
        assert!(h.p50() < 2_000);
        let q = h.weighted_quantile(0.25);
        assert!((38_000_000..=42_000_000).contains(&q), "{q}");
        assert_eq!(Histogram::new().weighted_quantile(0.5), 0);
    }

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut prev_hi = None;
        for i in 0..1920 {
            let (lo, hi) = bounds(i);
            assert!(lo <= hi);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {i} leaves a gap");
            }
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            prev_hi = Some(hi);
        }
        assert_eq!(index(u64::MAX), 1919);
        assert_eq!(bounds(1919).1, u64::MAX);
    }

    #[test]
    fn percentiles_are_within_three_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 7);
        }
        for (q, exact) in [(0.5, 350_000.0), (0.99, 693_000.0), (0.01, 7_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.032,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 700_000);
        assert_eq!(h.min(), 7);
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn merge_equals_recording_both() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..5000u64 {
            let x = v * v % 100_003;
            if v % 3 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn only_the_range_of_values_seen_is_kept() {
        let mut h = Histogram::new();
        for v in [5_000_000u64, 6_000_000, 7_000_000] {
            h.record(v);
        }
        assert!(h.counts.len() <= 2 * SUB as usize, "{}", h.counts.len());
        // A value below the range extends it downwards, and percentiles still hold.
        h.record(3);
        assert_eq!(h.quantile(0.0), 3);
        assert_eq!(h.p50(), index_mid(5_000_000));
        assert_eq!(h.max(), 7_000_000);
        let mut wide = Histogram::new();
        wide.record(0);
        wide.record(u64::MAX);
        assert_eq!(wide.counts.len(), 1920);
        assert_eq!((wide.p50(), wide.p99()), (0, index_mid(u64::MAX)));
        // Merging ranges that do not overlap, either way round.
        let mut a = Histogram::new();
        a.record(10);
        let mut b = Histogram::new();
        b.record(1 << 40);
        let mut ab = a.clone();
        ab.merge(&b);
        b.merge(&a);
        assert_eq!(ab, b);
        assert_eq!(ab.count(), 2);
    }

    fn index_mid(v: u64) -> u64 {
        let (lo, hi) = bounds(index(v));
        lo / 2 + hi / 2
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert_eq!((h.p50(), h.p99(), h.max(), h.mean()), (0, 0, 0, 0));
    }
}
