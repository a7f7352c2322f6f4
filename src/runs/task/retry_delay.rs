//! How long a task waits before each retry ([`RetryDelay`]), and how that is recorded on the
//! task run (its `empirical_policy`), so Prefect's UI shows the policy Python's `@task` would.

use std::time::Duration;

use crate::types::{TaskRunPolicy, TaskRunPolicyRetryDelay};

/// How long a task waits before each retry (Prefect's `retry_delay_seconds`, with
/// `retry_jitter_factor`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RetryDelay {
    /// The same delay before every retry (zero: at once, the state named "Retrying").
    Fixed(Duration),
    /// One delay per retry, the last one repeated for the retries past the list.
    PerAttempt(Vec<Duration>),
    /// `base`, `2 × base`, `4 × base`, … (Prefect's `exponential_backoff`), each moved by up
    /// to `jitter` of itself either way (0.0 to 1.0; Prefect's `retry_jitter_factor`).
    Exponential {
        /// The first delay.
        base: Duration,
        /// How far each delay may move, as a fraction of it.
        jitter: f64,
    },
}

impl Default for RetryDelay {
    fn default() -> Self {
        RetryDelay::Fixed(Duration::ZERO)
    }
}

/// The most doublings an exponential delay takes: past the 31st retry the delay stops growing
/// (2³⁰ times its base is already decades for a base of a second), so no count overflows.
const MAX_DOUBLINGS: u32 = 30;

/// The most delays an exponential policy records on the task run (Prefect's UI lists them).
const MAX_RECORDED_DELAYS: u32 = 50;

impl RetryDelay {
    /// The delay before retry `attempt` (0 for the first retry).
    pub fn before(&self, attempt: u32) -> Duration {
        match self {
            RetryDelay::Fixed(delay) => *delay,
            RetryDelay::PerAttempt(delays) => delays
                .get(attempt as usize)
                .or(delays.last())
                .copied()
                .unwrap_or_default(),
            RetryDelay::Exponential { base, jitter } => {
                let delay = base.saturating_mul(2u32.saturating_pow(attempt.min(MAX_DOUBLINGS)));
                let jitter = if jitter.is_finite() {
                    jitter.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let factor = 1.0 + jitter * (2.0 * fastrand::f64() - 1.0);
                Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(delay)
            }
        }
    }

    /// The run's `empirical_policy` as Prefect's engine records it, for a task with `retries`
    /// retries.
    pub(super) fn policy(&self, retries: u32) -> TaskRunPolicy {
        let seconds = |d: &Duration| d.as_secs_f64();
        let (retry_delay, jitter) = match self {
            RetryDelay::Fixed(d) => (TaskRunPolicyRetryDelay::Variant1(seconds(d)), None),
            RetryDelay::PerAttempt(ds) => (
                TaskRunPolicyRetryDelay::Variant3(ds.iter().map(seconds).collect()),
                None,
            ),
            RetryDelay::Exponential { base, jitter } => (
                TaskRunPolicyRetryDelay::Variant3(
                    (0..retries.clamp(1, MAX_RECORDED_DELAYS))
                        .map(|a| seconds(base) * f64::from(2u32.saturating_pow(a)))
                        .collect(),
                ),
                Some(*jitter),
            ),
        };
        TaskRunPolicy {
            retries: Some(i64::from(retries)),
            retry_delay: Some(retry_delay),
            retry_jitter_factor: jitter,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// The delays before retries 1 to `n` (the argument of `before` counts from 0).
    fn first(delay: &RetryDelay, n: u32) -> Vec<Duration> {
        (0..n).map(|attempt| delay.before(attempt)).collect()
    }

    #[test]
    fn retry_delays_follow_prefects_shapes() {
        assert_eq!(RetryDelay::Fixed(s(3)).before(5), s(3));
        let listed = RetryDelay::PerAttempt(vec![s(1), s(10)]);
        assert_eq!(
            (listed.before(0), listed.before(1), listed.before(7)),
            (s(1), s(10), s(10))
        );
        assert_eq!(RetryDelay::PerAttempt(vec![]).before(0), Duration::ZERO);
        let exact = RetryDelay::Exponential {
            base: s(2),
            jitter: 0.0,
        };
        assert_eq!((exact.before(0), exact.before(3)), (s(2), s(16)));
        let jittered = RetryDelay::Exponential {
            base: s(10),
            jitter: 0.5,
        };
        for _ in 0..100 {
            let delay = jittered.before(1);
            assert!(delay >= s(10) && delay <= s(30), "{delay:?}");
        }
        // Out-of-range jitter is clamped, not a panic.
        let wild = RetryDelay::Exponential {
            base: s(1),
            jitter: f64::NAN,
        };
        assert_eq!(wild.before(0), s(1));
    }

    #[test]
    fn no_delay_is_the_default_and_retries_at_once() {
        assert_eq!(RetryDelay::default(), RetryDelay::Fixed(Duration::ZERO));
        assert_eq!(first(&RetryDelay::default(), 4), vec![Duration::ZERO; 4]);
    }

    #[test]
    fn a_fixed_delay_is_the_same_before_every_retry() {
        let fixed = RetryDelay::Fixed(Duration::from_millis(1500));
        assert_eq!(first(&fixed, 5), vec![Duration::from_millis(1500); 5]);
        assert_eq!(fixed.before(u32::MAX), Duration::from_millis(1500));
    }

    #[test]
    fn per_attempt_delays_are_taken_in_order_and_the_last_repeats() {
        let listed = RetryDelay::PerAttempt(vec![s(1), s(5), s(30)]);
        assert_eq!(first(&listed, 6), vec![s(1), s(5), s(30), s(30), s(30), s(30)]);
        assert_eq!(listed.before(u32::MAX), s(30), "far past the list: the last one");
        let single = RetryDelay::PerAttempt(vec![s(7)]);
        assert_eq!(first(&single, 3), vec![s(7); 3]);
        let empty = RetryDelay::PerAttempt(Vec::new());
        assert_eq!(
            first(&empty, 3),
            vec![Duration::ZERO; 3],
            "an empty list: no delay"
        );
    }

    #[test]
    fn exponential_delays_double_from_their_base() {
        let exact = RetryDelay::Exponential {
            base: Duration::from_millis(250),
            jitter: 0.0,
        };
        let millis: Vec<u128> = first(&exact, 6).iter().map(Duration::as_millis).collect();
        assert_eq!(millis, vec![250, 500, 1000, 2000, 4000, 8000]);
        let none = RetryDelay::Exponential {
            base: Duration::ZERO,
            jitter: 0.5,
        };
        assert_eq!(first(&none, 4), vec![Duration::ZERO; 4], "a zero base stays zero");
    }

    #[test]
    fn jitter_moves_each_delay_by_at_most_its_fraction_either_way() {
        for (jitter, low, high) in [(0.1, 9.0, 11.0), (0.5, 5.0, 15.0), (1.0, 0.0, 20.0)] {
            let jittered = RetryDelay::Exponential { base: s(10), jitter };
            let delays: Vec<f64> = (0..500).map(|_| jittered.before(0).as_secs_f64()).collect();
            for delay in &delays {
                assert!((low..=high).contains(delay), "jitter {jitter}: {delay}");
            }
            // Spread both ways, not stuck at the base.
            assert!(
                delays.iter().any(|d| *d < 10.0),
                "jitter {jitter}: never below the base"
            );
            assert!(
                delays.iter().any(|d| *d > 10.0),
                "jitter {jitter}: never above the base"
            );
        }
        // Jitter past the range is clamped to it: a negative one or one that is not a number
        // is none, a larger one is 1.0 (never a negative or more than doubled delay).
        for jitter in [-3.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let exact = RetryDelay::Exponential { base: s(10), jitter };
            assert_eq!(exact.before(0), s(10), "jitter {jitter}");
        }
        let wide = RetryDelay::Exponential {
            base: s(10),
            jitter: 7.0,
        };
        for _ in 0..200 {
            let delay = wide.before(0);
            assert!(delay <= s(20), "{delay:?}");
        }
    }

    #[test]
    fn large_attempt_counts_and_bases_saturate_instead_of_overflowing() {
        let exact = RetryDelay::Exponential {
            base: s(1),
            jitter: 0.0,
        };
        let cap = s(1 << MAX_DOUBLINGS);
        assert_eq!(exact.before(MAX_DOUBLINGS), cap);
        assert_eq!(exact.before(MAX_DOUBLINGS + 1), cap, "it stops growing");
        assert_eq!(exact.before(u32::MAX), cap);
        // A base so large that doubling it overflows a Duration: the longest Duration, and
        // with jitter any delay up to it, never a panic.
        let huge = RetryDelay::Exponential {
            base: Duration::MAX / 2,
            jitter: 0.0,
        };
        assert_eq!(huge.before(u32::MAX), Duration::MAX);
        let jittered = RetryDelay::Exponential {
            base: Duration::MAX / 2,
            jitter: 1.0,
        };
        for attempt in [0, 1, 2, u32::MAX] {
            let _ = jittered.before(attempt);
        }
        let fixed = RetryDelay::Fixed(Duration::MAX);
        assert_eq!(fixed.before(u32::MAX), Duration::MAX);
    }

    /// The policy as the server receives it.
    fn sent(policy: &TaskRunPolicy) -> serde_json::Value {
        serde_json::to_value(policy).expect("a policy serializes")
    }

    #[test]
    fn the_recorded_policy_is_prefects_for_each_shape() {
        let fixed = sent(&RetryDelay::Fixed(Duration::from_millis(1500)).policy(3));
        assert_eq!(fixed["retries"], 3);
        assert_eq!(fixed["retry_delay"], serde_json::json!(1.5));
        assert!(fixed["retry_jitter_factor"].is_null(), "{fixed}");

        let listed = sent(&RetryDelay::PerAttempt(vec![s(1), s(10)]).policy(5));
        assert_eq!(listed["retries"], 5);
        assert_eq!(listed["retry_delay"], serde_json::json!([1.0, 10.0]));

        let exponential = RetryDelay::Exponential {
            base: s(2),
            jitter: 0.25,
        };
        let policy = sent(&exponential.policy(4));
        assert_eq!(policy["retry_delay"], serde_json::json!([2.0, 4.0, 8.0, 16.0]));
        assert_eq!(policy["retry_jitter_factor"], 0.25);
        // No retries still records the first delay; many record at most 50.
        let recorded = |retries| sent(&exponential.policy(retries))["retry_delay"].clone();
        assert_eq!(recorded(0), serde_json::json!([2.0]));
        assert_eq!(
            recorded(u32::MAX).as_array().map(Vec::len),
            Some(MAX_RECORDED_DELAYS as usize)
        );
        assert_eq!(sent(&exponential.policy(u32::MAX))["retries"], u32::MAX);
    }
}
