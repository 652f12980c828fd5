//! How long accepted gossip waits in this node before gossipsub forwards it: from the swarm
//! task's receipt of a message to the worker's verdict reaching the swarm task (admission,
//! the batch signature check and the write all happen in between).
//!
//! A fixed-size log-linear histogram: four buckets per power of two of microseconds, so a
//! quantile is known to within 25% of its value, in 2 KiB whatever the traffic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exact buckets below this many microseconds; four per power of two above.
const LINEAR: u64 = 4;

/// Enough buckets for any `u64` of microseconds.
const BUCKETS: usize = 4 * 64;

/// Counts of durations by log-linear bucket.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum_us: u64,
}

/// Quantiles of a [`LatencyHistogram`], as reported in the node's status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Messages measured since the node started.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_us: u64,
    /// Median, in microseconds (the upper bound of its bucket).
    pub p50_us: u64,
    /// 99th percentile, in microseconds (the upper bound of its bucket).
    pub p99_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum_us: 0,
        }
    }
}

impl LatencyHistogram {
    pub(crate) fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(micros)] += 1;
        self.total += 1;
        self.sum_us = self.sum_us.saturating_add(micros);
    }

    /// The smallest bucket bound at or above the `quantile` (0..=1) of what was recorded.
    fn quantile_us(&self, quantile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64 * quantile).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(bucket);
            }
        }
        upper_bound(BUCKETS - 1)
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.total,
            sum_us: self.sum_us,
            p50_us: self.quantile_us(0.50),
            p99_us: self.quantile_us(0.99),
        }
    }
}

/// The bucket of a duration of `micros` microseconds.
fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    // micros >= 4, so its highest set bit is at 2 or above; the two bits below it pick one
    // of four sub-buckets.
    let high = 63 - u64::from(micros.leading_zeros());
    let sub = (micros >> (high - 2)) & 3;
    (4 * (high - 1) + sub) as usize
}

/// The largest duration, in microseconds, that falls in `bucket`.
fn upper_bound(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return bucket;
    }
    let high = bucket / 4 + 1;
    let sub = bucket % 4;
    let width = 1u64 << (high - 2);
    ((4 + sub) << (high - 2)).saturating_add(width - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every duration lands in a bucket whose bound is at or above it and within a
        /// quarter of it: a reported quantile is never below the truth nor far above.
        #[test]
        fn a_bucket_bounds_its_values_within_a_quarter(micros in 0u64..u64::MAX / 2) {
            let bucket = bucket_of(micros);
            prop_assert!(bucket < BUCKETS);
            let bound = upper_bound(bucket);
            prop_assert!(bound >= micros);
            prop_assert!(bound - micros <= micros / 4, "{micros} -> {bound}");
            if bucket > 0 {
                prop_assert!(upper_bound(bucket - 1) < micros);
            }
        }
    }

    #[test]
    fn quantiles_follow_what_was_recorded() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.summary(), LatencySummary::default());
        for micros in 1..=100u64 {
            histogram.record(Duration::from_micros(micros * 10));
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.sum_us, 50_500);
        // The 50th value is 500 us, the 99th 990 us; buckets are at most 25% wide.
        assert!((500..=625).contains(&summary.p50_us), "{summary:?}");
        assert!((990..=1237).contains(&summary.p99_us), "{summary:?}");
    }

    #[test]
    fn the_largest_duration_is_counted() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(Duration::MAX);
        assert_eq!(histogram.summary().p99_us, u64::MAX);
    }
}
