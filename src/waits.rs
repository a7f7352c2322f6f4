//! Every wait the SDK makes on its own, in one place: the backoffs between attempts (values of
//! the one [`Backoff`] type, walked by the one retry mechanism, [`Retries`](crate::retry::Retries)),
//! the retry counts, and the fixed pauses, each with its numbers and why. Values only: no loop
//! and no decision lives here. The transport's retries follow the client's
//! [`RetryPolicy`](crate::RetryPolicy), which users set; everything else here is the SDK's (a
//! few are the defaults of options users may set, and say so).

use std::time::Duration;

use crate::retry::{Backoff, Pauses};

// --- Backoffs with jitter: growing waits, each lengthened by up to as much again. ---

/// Between attempts to fetch a CSRF token: 50 ms, ×4, at most 2 s, [`CSRF_TOKEN_RETRIES`]
/// times (a token request that a server cannot answer is retried by the transport anyway).
pub(crate) const CSRF_TOKEN: Backoff =
    Backoff::exponential(Duration::from_millis(50), 4.0, Duration::from_secs(2)).at_most(CSRF_TOKEN_RETRIES);
/// Retries of a CSRF token request that failed transiently.
pub(crate) const CSRF_TOKEN_RETRIES: u32 = 4;

/// Between attempts to reopen a websocket (subscriptions, the event emitter): 250 ms, ×2, at
/// most 10 s; as many attempts as the subscription allows (its `max_reconnects`, by default
/// [`DEFAULT_MAX_RECONNECTS`](crate::streaming::subscription::DEFAULT_MAX_RECONNECTS)).
pub(crate) const RECONNECT: Backoff =
    Backoff::exponential(Duration::from_millis(250), 2.0, MAX_RECONNECT_DELAY);
/// The longest pause between two reconnection attempts (before jitter).
pub(crate) const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

/// After a lease request that failed transiently (a server error, a broken connection): 200 ms,
/// ×2, at most [`MAX_LEASE_FAILURE_WAIT`]; [`MAX_LEASE_FAILURES`] in a row end the acquisition.
pub(crate) const LEASE_FAILURE: Backoff =
    Backoff::exponential(Duration::from_millis(200), 2.0, MAX_LEASE_FAILURE_WAIT).at_most(MAX_LEASE_FAILURES);
/// The longest wait after a failed lease request.
pub(crate) const MAX_LEASE_FAILURE_WAIT: Duration = Duration::from_secs(2);
/// Failed lease requests in a row that end an acquisition.
pub(crate) const MAX_LEASE_FAILURES: u32 = 5;

/// Between attempts to give a lease back to a server that fails transiently: 100 ms, ×2, at
/// most 2 s, while the next attempt starts within [`RELEASE_RETRY_BUDGET`].
pub(crate) const RELEASE: Backoff = Backoff::exponential(Duration::from_millis(100), 2.0, MAX_RELEASE_WAIT);
/// The longest pause between two attempts of a release.
pub(crate) const MAX_RELEASE_WAIT: Duration = Duration::from_secs(2);
/// How long a release keeps retrying before it leaves the slots to lease expiry.
pub(crate) const RELEASE_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Between reads of a flow run that a wait polls (when its events cannot be had): 500 ms, ×1.5,
/// at most [`MAX_POLL_INTERVAL`].
pub(crate) const FLOW_RUN_POLL: Backoff =
    Backoff::exponential(Duration::from_millis(500), 1.5, MAX_POLL_INTERVAL);
/// The pauses of [`FLOW_RUN_POLL`], for the flow-run wait that takes them one by one.
pub(crate) fn flow_run_poll() -> Pauses {
    FLOW_RUN_POLL.pauses()
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
/// Between asks for rate-limit slots the server refused: the server's `Retry-After` (or
/// [`DEFAULT_SLOT_RETRY_WAIT`]), ±20 %, at most [`MAX_SLOT_RETRY_WAIT`], as each refusal says;
/// as many refusals as the acquisition's `max_retries` allows.
pub(crate) const SLOT_REFUSAL: Backoff = Backoff::constant(DEFAULT_SLOT_RETRY_WAIT);
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
/// After a failed renewal of a guard's lease, the pause before the next try: a quarter of the
/// time the lease has left, within [`MIN_RENEWAL_RETRY`] and [`MAX_RENEWAL_RETRY`]; tried
/// again while the lease's term lasts.
pub(crate) const RENEWAL_RETRY: Backoff =
    Backoff::share_of_time_left(4, MIN_RENEWAL_RETRY, MAX_RENEWAL_RETRY);
/// The shortest pause before a failed lease renewal is tried again.
pub(crate) const MIN_RENEWAL_RETRY: Duration = Duration::from_millis(200);
/// The longest pause before a failed lease renewal is tried again.
pub(crate) const MAX_RENEWAL_RETRY: Duration = Duration::from_secs(5);

// --- Runs. ---

/// The longest pause the client takes on one WAIT answer of Prefect's orchestration (the
/// server's delay is used when shorter).
pub(crate) const MAX_ORCHESTRATION_WAIT: Duration = Duration::from_secs(30);
/// The pause on a WAIT answer that gives no delay.
pub(crate) const DEFAULT_ORCHESTRATION_WAIT: Duration = Duration::from_secs(1);
/// The shortest pause on a WAIT answer (a shorter or negative delay of the server counts as
/// this).
pub(crate) const MIN_ORCHESTRATION_WAIT: Duration = Duration::from_millis(100);
/// How long a state report is sent again while the server is away or overloaded (503 and 429
/// past the transport's retries, timeouts, broken connections), so a run's start or end is not
/// lost to a minute of a busy server; past it the error is returned.
pub(crate) const REPORT_BUDGET: Duration = Duration::from_secs(120);
/// The longest pause between two sends of one report.
pub(crate) const REPORT_MAX_PAUSE: Duration = Duration::from_secs(15);
/// The pauses before a report is sent again: 2 s, 4 s, 8 s, then [`REPORT_MAX_PAUSE`]; no
/// jitter; for [`REPORT_BUDGET`].
pub(crate) const REPORT_RESEND: Backoff =
    Backoff::exponential(Duration::from_secs(2), 2.0, REPORT_MAX_PAUSE).without_jitter();
/// The longest a task run waits for the slots of its tags' limits.
pub(crate) const TAG_SLOT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The pause before watching a flow run for cancellation again after the watch failed.
pub(crate) const CANCELLATION_WATCH_RETRY: Duration = Duration::from_secs(2);
/// How long the end of a run waits for its log lines to reach the server.
pub(crate) const LOG_FLUSH_BUDGET: Duration = Duration::from_secs(10);
/// How long the end of a task run that logged waits for its lines to reach the server.
pub(crate) const TASK_LOG_FLUSH_BUDGET: Duration = Duration::from_secs(2);
/// How often a flush of the logs looks again whether its lines were sent, if no batch sent
/// woke it first.
pub(crate) const LOG_FLUSH_RECHECK: Duration = Duration::from_millis(50);
/// The longest the log shipper waits for a line before it looks whether a flush asks for the
/// batch at once.
pub(crate) const LOG_SHIPPER_TICK: Duration = Duration::from_millis(20);
/// How long the log shipper gathers lines into one batch.
pub(crate) const LOG_BATCH_INTERVAL: Duration = Duration::from_millis(500);
/// The pause before the log shipper sends a failed batch again the first time.
pub(crate) const LOG_RESEND_WAIT: Duration = Duration::from_millis(500);
/// Attempts to send one batch of log lines before its lines count as dropped.
pub(crate) const LOG_SEND_ATTEMPTS: u32 = 3;
/// The pauses between the attempts to send a batch of log lines: [`LOG_RESEND_WAIT`], doubled
/// each time (500 ms, 1 s); no jitter; [`LOG_SEND_ATTEMPTS`] attempts in all.
pub(crate) const LOG_RESEND: Backoff = Backoff::exponential(LOG_RESEND_WAIT, 2.0, Duration::MAX)
    .without_jitter()
    .at_most(LOG_SEND_ATTEMPTS - 1);

// --- Serving and workers. ---

/// How often a serving process or worker asks the server for due runs, by default (as Prefect's
/// runner and workers), besides when the server's events wake it.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// How far ahead a poll for due runs looks: a run due within it is claimed and waits for its
/// time.
pub(crate) const POLL_PREFETCH: Duration = Duration::from_secs(10);
/// How long a shutdown lets executing runs finish before it stops them, by default.
pub(crate) const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// How long runs stopped at the end of a shutdown's grace period may take to report their end.
pub(crate) const SHUTDOWN_STOP_BUDGET: Duration = Duration::from_secs(30);
/// The longest pause between polls of a server that fails, and between subscriptions to its
/// events that end.
pub(crate) const MAX_POLL_BACKOFF: Duration = Duration::from_secs(10);
/// The pauses after failed polls (or ended event subscriptions) in a row: 2 s, 4 s, 8 s, then
/// [`MAX_POLL_BACKOFF`]; no jitter; no end (a failing server never ends the loop).
pub(crate) const POLL_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_secs(2), 2.0, MAX_POLL_BACKOFF).without_jitter();
/// Wake-up polls (a source without direct claims) are at least this far apart: a burst of
/// events makes one poll, not one each (a poll is a write on the server: it marks the
/// deployments or the pool ready).
pub(crate) const MIN_WAKE_POLL_GAP: Duration = Duration::from_secs(1);
/// How often, at most, a polling loop asks the server which of its runs were cancelled.
pub(crate) const CANCELLATION_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Claims of one run sent in all when their answers are lost (the same transition: the server
/// answers a repeat with the state it took).
pub(crate) const CLAIM_ATTEMPTS: u32 = 4;
/// The pauses before a claim whose answer was lost is sent again: 200 ms, 400 ms, 600 ms (a
/// step of 200 ms each time, no cap); no jitter; [`CLAIM_ATTEMPTS`] claims in all.
pub(crate) const CLAIM_RETRY: Backoff = Backoff::linear(
    Duration::from_millis(200),
    Duration::from_millis(200),
    Duration::MAX,
)
.at_most(CLAIM_ATTEMPTS - 1);
/// How often a deployment run's concurrency lease is renewed, and for how long: Prefect's
/// engine's term (300 s), renewed every minute, so a stall of four minutes keeps the slot.
pub(crate) const DEPLOYMENT_LEASE_RENEW_EVERY: Duration = Duration::from_secs(60);
/// How long past its time a run waiting for an in-process retry is left to the process that
/// retries it; after that the process is taken for gone and any serving process executes it.
/// Longer than a retrying process may be late (its reports resent for two minutes, its
/// deployment lease held five) and than the clock skew allowed.
pub(crate) const STRANDED_RETRY_AFTER: Duration = Duration::from_secs(600);
/// The term each renewal of a deployment run's lease asks for (see
/// [`DEPLOYMENT_LEASE_RENEW_EVERY`]).
pub(crate) const DEPLOYMENT_LEASE_TERM: Duration = Duration::from_secs(300);
/// Failed renewals of a deployment run's lease tried again before the renewer waits for the
/// next renewal (the lease lasts five minutes: the next minute's renewal tries again).
pub(crate) const DEPLOYMENT_LEASE_RETRIES: u32 = 10;
/// The pauses after failed renewals in a row of a deployment run's lease: 1 s, 2 s, 3 s, …, at
/// most 10 s; no jitter; [`DEPLOYMENT_LEASE_RETRIES`] of them.
pub(crate) const DEPLOYMENT_LEASE_RETRY: Backoff = Backoff::linear(
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(10),
)
.at_most(DEPLOYMENT_LEASE_RETRIES);
/// How often a worker heartbeats, by default (Prefect's `PREFECT_WORKER_HEARTBEAT_SECONDS`): the
/// server marks it offline after three missed beats.
pub(crate) const WORKER_HEARTBEAT: Duration = Duration::from_secs(30);

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
/// How far before the newest item seen a resumed subscription asks the server to start again
/// (items are then dropped by id): covers items stamped a little out of order.
pub(crate) const RESUME_MARGIN: Duration = Duration::from_secs(60);
/// How often a log subscription reads `/logs/filter` when the server does not stream logs.
pub(crate) const LOG_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How far before the newest item seen each polling round of a log subscription reads again:
/// lines are often written a little after their timestamp (Prefect's own handler sends them in
/// batches every 2 s).
pub(crate) const POLL_MARGIN: Duration = Duration::from_secs(10);
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

    /// The pauses a backoff gives, at most `at_most` of them.
    fn pauses(backoff: Backoff, at_most: usize) -> Vec<Duration> {
        let mut pauses = backoff.pauses();
        std::iter::from_fn(|| pauses.next_delay()).take(at_most).collect()
    }

    #[test]
    fn steady_backoffs_keep_their_numbers() {
        let secs = |waits: Vec<Duration>| waits.iter().map(Duration::as_secs).collect::<Vec<_>>();
        assert_eq!(secs(pauses(POLL_BACKOFF, 7)), [2, 4, 8, 10, 10, 10, 10]);
        assert_eq!(pauses(POLL_BACKOFF, 100).last(), Some(&MAX_POLL_BACKOFF));
        assert_eq!(secs(pauses(REPORT_RESEND, 6)), [2, 4, 8, 15, 15, 15]);
        assert_eq!(pauses(REPORT_RESEND, 100).last(), Some(&REPORT_MAX_PAUSE));
        assert_eq!(
            pauses(CLAIM_RETRY, 100),
            [200, 400, 600].map(Duration::from_millis)
        );
        assert_eq!(
            secs(pauses(DEPLOYMENT_LEASE_RETRY, 100)),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        );
        assert_eq!(
            secs(pauses(DEPLOYMENT_LEASE_RETRY.limit(None), 12)),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10]
        );
        assert_eq!(pauses(LOG_RESEND, 100), [500, 1000].map(Duration::from_millis));
        // A quarter of the time the lease has left (measured a moment after the deadline was
        // set, so a little less), within 200 ms and 5 s.
        let renewal_pause = |left: Duration| {
            let deadline = tokio::time::Instant::now() + left;
            let mut retries = crate::retry::Retries::new(RENEWAL_RETRY).until(deadline);
            retries.failed(crate::retry::Verdict::Retry).unwrap_or_default()
        };
        assert_eq!(renewal_pause(Duration::from_millis(400)), MIN_RENEWAL_RETRY);
        let quarter = renewal_pause(Duration::from_secs(8));
        assert!(
            quarter <= Duration::from_secs(2)
                && quarter + Duration::from_millis(50) >= Duration::from_secs(2),
            "{quarter:?}"
        );
        assert_eq!(renewal_pause(Duration::from_secs(300)), MAX_RENEWAL_RETRY);
    }

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
