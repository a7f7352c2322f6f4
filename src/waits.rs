//! Every wait the SDK makes on its own, in one place: the backoffs between attempts and the
//! fixed pauses, each with its numbers and why. The transport's retries follow the client's
//! [`RetryPolicy`](crate::RetryPolicy), which users set; everything else here is the SDK's.

use std::time::Duration;

use crate::retry::Backoff;

// --- Backoffs: growing waits with jitter (up to twice the base). ---

/// Between attempts to fetch a CSRF token: 50 ms, ×4, at most 2 s, [`CSRF_TOKEN_RETRIES`]
/// times (a token request that a server cannot answer is retried by the transport anyway).
pub(crate) fn csrf_token() -> Backoff {
    Backoff::new(
        Duration::from_millis(50),
        4.0,
        Duration::from_secs(2),
        Some(CSRF_TOKEN_RETRIES),
    )
}
/// Retries of a CSRF token request that failed transiently.
pub(crate) const CSRF_TOKEN_RETRIES: usize = 4;

/// Between attempts to reopen a websocket (subscriptions, the event emitter): 250 ms, ×2, at
/// most 10 s; `times` attempts at most (`None`: the caller counts).
pub(crate) fn reconnect(times: Option<usize>) -> Backoff {
    Backoff::new(Duration::from_millis(250), 2.0, MAX_RECONNECT_DELAY, times)
}
/// The longest pause between two reconnection attempts (before jitter).
pub(crate) const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

/// After a lease request that failed transiently (a server error, a broken connection): 200 ms,
/// ×2, at most [`MAX_LEASE_FAILURE_WAIT`]; [`MAX_LEASE_FAILURES`] in a row end the acquisition.
pub(crate) fn lease_failure() -> Backoff {
    Backoff::new(Duration::from_millis(200), 2.0, MAX_LEASE_FAILURE_WAIT, None)
}
/// The longest wait after a failed lease request.
pub(crate) const MAX_LEASE_FAILURE_WAIT: Duration = Duration::from_secs(2);
/// Failed lease requests in a row that end an acquisition.
pub(crate) const MAX_LEASE_FAILURES: u32 = 5;

/// Between attempts to give a lease back to a server that fails transiently: 100 ms, ×2, at
/// most 2 s, for [`RELEASE_RETRY_BUDGET`] in all.
pub(crate) fn release() -> Backoff {
    Backoff::new(Duration::from_millis(100), 2.0, MAX_RELEASE_WAIT, None)
}
/// The longest pause between two attempts of a release.
pub(crate) const MAX_RELEASE_WAIT: Duration = Duration::from_secs(2);
/// How long a release keeps retrying before it leaves the slots to lease expiry.
pub(crate) const RELEASE_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Between reads of a flow run that a wait polls (when its events cannot be had): 500 ms, ×1.5,
/// at most [`MAX_POLL_INTERVAL`].
pub(crate) fn flow_run_poll() -> Backoff {
    Backoff::new(Duration::from_millis(500), 1.5, MAX_POLL_INTERVAL, None)
}
/// The longest pause between two polls of a flow run; also how often a wait woken by events
/// reads the run anyway.
pub(crate) const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

// --- Slot guards. ---

/// The longest `Retry-After` of a refused slot request waited in one go (a longer one is waited
/// in steps of this, so a local release still wakes the head).
pub(crate) const MAX_SLOT_RETRY_WAIT: Duration = Duration::from_secs(30);
/// How long the head of a slot queue waits after a refusal that gave no `Retry-After`.
pub(crate) const DEFAULT_SLOT_RETRY_WAIT: Duration = Duration::from_secs(1);
/// How long the head waits for a local release, when this process's own guards fill the limit,
/// before asking the server anyway (the limit may have been raised meanwhile).
pub(crate) const LOCAL_FULL_RECHECK: Duration = Duration::from_secs(2);
/// How long a lease handed on waits for a local waiter to take it before it goes back to the
/// server.
pub(crate) const PARK_TIMEOUT: Duration = Duration::from_millis(250);
/// How long releases at program end (or where no runtime runs) wait for the server, all
/// together, before leaving the slots to lease expiry.
pub(crate) const EXIT_RELEASE_BUDGET: Duration = Duration::from_secs(5);
/// How long one refusal caused by other processes counts as contention.
pub(crate) const CONTENTION_MEMORY: Duration = Duration::from_secs(60);
/// How long a lease the server granted passes from guard to guard in this process before it
/// goes back to the server (each lease draws its term within ±25 % of this, so leases granted
/// together do not all come back at once).
pub(crate) const HANDOFF_TERM: Duration = Duration::from_secs(2);
/// Under contention with other processes, the longest pause of the head of a queue between two
/// asks for slots (the server's `Retry-After` is used when shorter; ±20 % jitter): a slot another
/// process yields is found within this.
pub(crate) const CONTENTION_POLL: Duration = Duration::from_millis(200);
/// How long a slot that went back at the end of its hand-off term is left to other processes
/// under contention (at most; less when the server's `Retry-After` lets the others poll more
/// often): longer than their longest poll, so one of them takes it.
pub(crate) const CONTENTION_YIELD: Duration = Duration::from_millis(250);
/// The shortest such yield.
pub(crate) const MIN_YIELD: Duration = Duration::from_millis(50);
/// When no contention is known, how often a queue still yields one slot at the end of its term
/// for [`CONTENTION_YIELD`]: a process that waits unseen (this one holds every slot, so it is
/// never refused) takes it, and its next refusal of this one makes the contention known.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(4);

// --- Runs. ---

/// The longest pause the client takes on one WAIT answer of Prefect's orchestration (the
/// server's delay is used when shorter).
pub(crate) const MAX_ORCHESTRATION_WAIT: Duration = Duration::from_secs(30);
/// The pause on a WAIT answer that gives no delay.
pub(crate) const DEFAULT_ORCHESTRATION_WAIT: Duration = Duration::from_secs(1);
/// The pause before watching a flow run for cancellation again after the watch failed.
pub(crate) const CANCELLATION_WATCH_RETRY: Duration = Duration::from_secs(2);
/// How long the end of a run waits for its log lines to reach the server.
pub(crate) const LOG_FLUSH_BUDGET: Duration = Duration::from_secs(10);
/// How long the log shipper gathers lines into one batch.
pub(crate) const LOG_BATCH_INTERVAL: Duration = Duration::from_millis(500);
/// The pause before the log shipper sends a refused batch again: this, doubled each attempt.
pub(crate) const LOG_RESEND_WAIT: Duration = Duration::from_millis(500);

// --- Websockets. ---

/// How long a websocket may stay silent before the client pings the server; with no answer
/// within as long again, the connection counts as dead.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long after a reconnect an event subscription reads missed events over REST: the server
/// stores events in batches at least every 5 s
/// (`PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL`).
pub(crate) const EVENT_STORE_DELAY: Duration = Duration::from_secs(6);
/// The second catch-up after a reconnect comes this many catch-up delays after it (a loaded
/// server stores events later still).
pub(crate) const LATE_CATCH_UP_FACTOR: u32 = 5;
/// How often a log subscription reads `/logs/filter` when the server does not stream logs.
pub(crate) const LOG_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How far back the subscriptions that wait for a run's change start (a flow run's waits and
/// cancellation watch, a serving process's or worker's wake-ups): the server stamps events by
/// its own clock, and a client clock ahead of it by up to this much must not filter them out.
pub(crate) const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(600);
/// The `occurred` filter of a subscription that must not miss a change for clock skew: from
/// [`CLOCK_SKEW_ALLOWANCE`] ago, with no end.
pub(crate) fn since_skew_allowance() -> crate::types::EventOccurredFilter {
    let allowance = chrono::Duration::from_std(CLOCK_SKEW_ALLOWANCE).unwrap_or_default();
    crate::types::EventOccurredFilter {
        since: Some(chrono::Utc::now() - allowance),
        until: None,
    }
}

/// How soon after a subscription's filter a break counts as a refusal of the filter.
pub(crate) const QUICK_DROP: Duration = Duration::from_secs(2);
/// The longest time events sent over the emitter stay unconfirmed while more keep coming.
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_change_subscribe_from_the_skew_allowance_ago() {
        let before = chrono::Utc::now();
        let filter = since_skew_allowance();
        let since = filter.since.expect("a start is set");
        let back = before - since;
        assert!(
            back >= chrono::Duration::minutes(10) - chrono::Duration::seconds(1),
            "a client clock 10 minutes ahead would hide the server's events: {back}"
        );
        assert!(filter.until.is_none());
    }
}
