//! The one retry policy: exponential backoff with full jitter. The writer's retries of
//! throttled and transient calls and of UnprocessedItems, verify's UnprocessedKeys, and the
//! data-access layer's repair worker all wait by it.
//!
//! Full jitter (AWS's "Exponential Backoff And Jitter"): the n-th delay is uniform in
//! `0..min(max, first · 2ⁿ)` (at least 1 ms), so retrying clients spread out instead of
//! retrying in step. It plugs into backon, which runs the loop (`Retryable::retry`).

use std::time::Duration;

use super::SinkConfig;

/// How long to wait between attempts, and how many retries to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Bound of the first delay; it doubles after each retry.
    pub first: Duration,
    /// Largest bound.
    pub max: Duration,
    /// Most retries; `None` retries until the call succeeds (or the caller stops waiting).
    pub max_retries: Option<usize>,
}

impl Default for RetryPolicy {
    /// `[sink]`'s defaults: 50 ms doubling to 5 s, 12 retries.
    fn default() -> Self {
        RetryPolicy::from(&SinkConfig::default())
    }
}

impl From<&SinkConfig> for RetryPolicy {
    fn from(s: &SinkConfig) -> Self {
        RetryPolicy {
            first: s.retry_delay,
            max: s.max_retry_delay,
            max_retries: Some(s.max_retries),
        }
    }
}

impl RetryPolicy {
    /// The delays, jittered: an iterator that ends when the retries are used up. A backon
    /// `Backoff`, so `call.retry(policy.delays())` runs the loop.
    pub fn delays(&self) -> Delays {
        Delays {
            bound: self.first,
            max: self.max,
            left: self.max_retries,
        }
    }
}

/// See [`RetryPolicy::delays`].
#[derive(Debug, Clone)]
pub struct Delays {
    bound: Duration,
    max: Duration,
    left: Option<usize>,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if let Some(left) = self.left.as_mut() {
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        let bound = self.bound.min(self.max);
        self.bound = bound.saturating_mul(2).min(self.max);
        Some(
            bound
                .mul_f64(rand::random::<f64>())
                .max(Duration::from_millis(1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_full_jitter_under_a_doubling_bound() {
        let policy = RetryPolicy {
            first: Duration::from_millis(100),
            max: Duration::from_millis(800),
            max_retries: Some(6),
        };
        for _ in 0..200 {
            let delays: Vec<Duration> = policy.delays().collect();
            assert_eq!(delays.len(), 6);
            for (d, bound) in delays.iter().zip([100, 200, 400, 800, 800, 800]) {
                assert!(*d >= Duration::from_millis(1), "{d:?}");
                assert!(*d <= Duration::from_millis(bound), "{d:?} over {bound} ms");
            }
        }
        // Full jitter reaches well below half the bound (backon's `with_jitter` never does).
        let low = (0..200)
            .filter_map(|_| policy.delays().nth(3))
            .filter(|d| *d < Duration::from_millis(400))
            .count();
        assert!(low > 50, "{low} of 200 delays below half the bound");
        let forever = RetryPolicy {
            max_retries: None,
            ..policy
        };
        assert_eq!(forever.delays().take(1000).count(), 1000);
    }
}
