//! Slot guards: hold slots of global concurrency limits around work, under a lease that is
//! renewed while held and given back when done, the Rust form of Prefect's `concurrency()`.
//!
//! ```no_run
//! # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
//! use std::time::Duration;
//!
//! // Hold one slot of "database" while the future runs; released afterwards, even on panic.
//! let rows = client
//!     .concurrency(["database"])
//!     .timeout(Duration::from_secs(30))
//!     .strict(true)
//!     .run(async { 42 })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Correctness
//! - The server counts every slot: a guard only exists once the server granted its lease, so
//!   the limit is never exceeded, whatever mix of processes and clients use it.
//! - A guard dropped without [`SlotGuard::release`] (early return, `?`, panic) releases in a
//!   background task. A cancelled acquisition (dropped future, timeout) hands any lease the
//!   server granted meanwhile straight back: the request runs in its own task, which releases
//!   the lease if nobody is left to take it.
//! - While held, the lease is renewed every third of its duration. If renewal fails until the
//!   lease may have expired, or the server answers 410, the guard is *lost*:
//!   [`SlotGuard::lost`] resolves and [`SlotGuard::is_lost`] turns true, so the holder can stop
//!   rather than silently over-run the limit. [`Acquire::run`] cancels its future then.
//! - A release the server fails transiently (503 bursts, broken connections) is retried for up
//!   to [`RELEASE_RETRY_BUDGET`]; releasing twice is harmless, the server ignores a lease it no
//!   longer has.
//! - A process killed while holding slots cannot release them: the server frees them when the
//!   lease expires (lease duration plus up to 15 s).
//!
//! # Speed under contention
//! Prefect's own client sleeps the server's `Retry-After` (2 s and up) after every refusal, while
//! slots sit free. Here, acquisitions of the same set of names in one [`Client`] (and its clones)
//! queue locally, first come first served, and only the head of the queue asks the server:
//! - when a guard of this process releases while the head waits for the same names, slots and
//!   lease settings, the guard hands its lease to the head instead of giving it back: the slot
//!   stays counted on the server, passes to the next local task at once, and costs no request.
//!   A lease is handed on at most 16 times, then goes back to the server so
//!   other processes can have it; one nobody takes within 250 ms goes back too. The
//!   release waits for either, so once it returns the slots are with a local holder or the
//!   server, never in limbo;
//! - when a guard releases otherwise, the head asks at once: freed capacity is not left idle
//!   and waiters do not each poll the server;
//! - when this process's own guards fill the limit (known from the server's answers), the head
//!   waits for one of them to release instead of asking;
//! - when the server refuses because of holders elsewhere, the head waits for the server's
//!   `Retry-After` (or a local release, whichever comes first): the server sets the pace of
//!   remote contention.
//!
//! Acquisitions of different name sets (`["a"]` and `["a", "b"]`) queue separately; the server
//! still keeps them correct.

mod acquire;
mod guard;
pub(crate) mod queue;

use std::time::Duration;

pub use acquire::Acquire;
pub use guard::SlotGuard;

use crate::retry::Backoff;

/// The lease duration guards ask for unless told otherwise (Prefect's default).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(300);
/// How long the head of the queue waits after a refusal that gave no `Retry-After`.
pub(crate) const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);
/// How long the head waits for a local release before asking the server anyway (the limit may
/// have been raised meanwhile).
pub(crate) const LOCAL_FULL_RECHECK: Duration = Duration::from_secs(2);
/// How many failed requests in a row (server errors, broken connections) end an acquisition.
pub(crate) const MAX_TRANSIENT_FAILURES: u32 = 5;
/// The longest wait after a failed lease request before asking again.
pub(crate) const MAX_FAILURE_WAIT: Duration = Duration::from_secs(2);

/// Waits after failed lease requests in a row: 200 ms, doubling, at most [`MAX_FAILURE_WAIT`].
pub(crate) fn failure_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), 2.0, MAX_FAILURE_WAIT, None)
}

/// How many times one lease passes from a released guard to a local waiter before it goes back
/// to the server.
pub(crate) const MAX_HANDOFFS: u32 = 16;
/// How long a lease handed on waits for a local waiter to take it before it goes back to the
/// server (the waiter may have been cancelled, or got slots from the server meanwhile).
pub(crate) const PARK_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a release keeps retrying a server that fails transiently (503 bursts, broken
/// connections) before it leaves the slots to lease expiry.
pub const RELEASE_RETRY_BUDGET: Duration = Duration::from_secs(10);
