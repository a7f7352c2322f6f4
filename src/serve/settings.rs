//! How a serving process or a worker runs its loop, as one value: [`ServeSettings`], and what
//! a shutdown does with the runs still executing ([`OnShutdown`]).

use std::time::Duration;

use crate::waits::{DEFAULT_GRACE_PERIOD, DEFAULT_POLL_INTERVAL, POLL_PREFETCH};

/// The shortest poll interval kept (a shorter one is this): each poll is a write on the server.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What is done with the runs still executing when the grace period of a shutdown ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnShutdown {
    /// Their future is dropped and they are scheduled again at once ("AwaitingRetry"), for
    /// another process to run (Prefect's `PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule`).
    #[default]
    Reschedule,
    /// Their future is dropped and they are CANCELLED ("the process executing it shut down").
    Cancel,
}

/// How a serving process ([`Client::serve`](crate::Client::serve)) or a worker
/// ([`Client::worker`](crate::Client::worker)) runs: how many runs at once, how often it asks
/// the server for due runs, and how it shuts down. Given to
/// [`Serve::settings`](super::Serve::settings) or [`Worker::settings`](super::Worker::settings).
///
/// ```
/// use std::time::Duration;
/// use prefect_client::serve::{OnShutdown, ServeSettings};
///
/// let settings = ServeSettings::default()
///     .limit(4)
///     .poll_interval(Duration::from_secs(5))
///     .grace_period(Duration::from_secs(60))
///     .on_shutdown(OnShutdown::Cancel);
/// # let _ = settings;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    pub(crate) limit: usize,
    pub(crate) poll: Duration,
    /// How far ahead a poll looks (a run due within it is claimed and waits for its time).
    pub(crate) prefetch: Duration,
    pub(crate) grace: Duration,
    pub(crate) on_shutdown: OnShutdown,
}

impl Default for ServeSettings {
    /// Prefect's runner's and workers' defaults: 5 runs at once, a poll every 10 s, a grace
    /// period of 30 s, runs still executing then scheduled again.
    fn default() -> Self {
        ServeSettings {
            limit: 5,
            poll: DEFAULT_POLL_INTERVAL,
            prefetch: POLL_PREFETCH,
            grace: DEFAULT_GRACE_PERIOD,
            on_shutdown: OnShutdown::Reschedule,
        }
    }
}

impl ServeSettings {
    /// Runs executed at once by this process, at most (default 5, Prefect's
    /// `PREFECT_RUNNER_PROCESS_LIMIT`; 0 counts as 1). A work pool's and its queues' own
    /// concurrency limits hold besides.
    pub fn limit(mut self, runs: usize) -> Self {
        self.limit = runs.max(1);
        self
    }

    /// How often the server is asked for due runs (default 10 s, as Prefect's runner and
    /// workers; at least 100 ms); a run scheduled for now is also claimed at once, woken by the
    /// server's events.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(MIN_POLL_INTERVAL);
        self
    }

    /// How long a shutdown lets executing runs finish before it stops them (default 30 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// What a shutdown does with runs still executing after the grace period (default: they
    /// are scheduled again, for another process).
    pub fn on_shutdown(mut self, action: OnShutdown) -> Self {
        self.on_shutdown = action;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_keep_prefects_defaults_and_their_floors() {
        let defaults = ServeSettings::default();
        assert_eq!(defaults.limit, 5);
        assert_eq!(defaults.poll, Duration::from_secs(10));
        assert_eq!(defaults.grace, Duration::from_secs(30));
        assert_eq!(defaults.on_shutdown, OnShutdown::Reschedule);
        let floored = ServeSettings::default().limit(0).poll_interval(Duration::ZERO);
        assert_eq!(floored.limit, 1, "no runs at once would serve nothing");
        assert_eq!(floored.poll, MIN_POLL_INTERVAL);
    }
}
