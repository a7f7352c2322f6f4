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
//!     .hold(async { 42 })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Correctness
//! - The server counts every slot: a guard only exists once the server granted its lease, so
//!   the limit is never exceeded, whatever mix of processes and clients use it.
//! - Strict by default: a name with no active limit is [`Error::MissingLimits`](crate::Error::MissingLimits)
//!   (the server would grant it and limit nothing, so a typo would go unnoticed).
//!   [`Acquire::strict`]`(false)` is Prefect's Python default: a warning, and such names
//!   limit nothing.
//! - A guard dropped without [`SlotGuard::release`] (early return, `?`, panic) releases in a
//!   background task. A release cancelled half-way (a timeout around `release()` or `hold()`)
//!   goes on in the background. A cancelled acquisition (dropped future, timeout) hands any
//!   lease the server granted meanwhile straight back.
//! - **Program end.** When main returns (`Ok` or `Err`) or panics while guards are held, in
//!   main or in tasks it never awaited, the runtime's shutdown drops them, and each gives its
//!   slots back from a thread of its own before the runtime is gone: all together wait at most
//!   5 s for the server. Only a process that dies without unwinding
//!   (SIGKILL, `std::process::exit`, `abort`, `panic = "abort"`) leaves its slots to the
//!   server, which frees them when the lease expires (at most its duration plus 15 s).
//! - While held, the lease is renewed every third of its term. If renewal fails until the
//!   lease may have expired, the server answers 410, the term ran out unrenewed (a blocked
//!   runtime), or the runtime that renewed it shut down, the guard is *lost*:
//!   [`SlotGuard::lost`] resolves and [`SlotGuard::is_lost`] turns true, so the holder can stop
//!   rather than silently over-run the limit. [`Acquire::hold`] cancels its future then, and
//!   never returns `Ok` for work that outlived its lease.
//! - The first term asked of the server is its shortest (60 s); the first renewal extends it to
//!   the duration asked for. A grant whose answer is lost (broken connection, 502/504, timeout)
//!   costs its slot for at most 60 s plus the server's 15 s sweep, whatever the duration.
//! - A release the server fails transiently (503 bursts, broken connections) is retried for up
//!   to 10 s; releasing twice is harmless, the server ignores a lease it no longer has.
//!
//! # Speed under contention
//! Prefect's own client sleeps the server's `Retry-After` (2 s and up) after every refusal, while
//! slots sit free. Here, acquisitions of the same names on the same terms (slots, lease
//! duration, holder, strictness) in one [`Client`](crate::Client) (and its clones) queue locally, first come
//! first served, and only the head of the queue asks the server:
//! - when a guard of this process releases while acquisitions of its queue wait, it hands its
//!   lease to the head instead of giving it back: the slot stays counted on the server, passes
//!   to the next local task at once, and costs no request, even while the head waits for the
//!   server's answer to an ask of its own. Only a lease that holds slots on every name (none
//!   lacked a limit when granted) and lasts well beyond the hand-off is handed on, for its
//!   hand-off term (about 2 s from its grant); then it goes back to the server so other
//!   processes can have it. One nobody takes within 250 ms goes back too. A parked lease nobody
//!   took never reaches a later waiter once its term is near its end;
//! - when a guard releases otherwise, the head asks at once: freed capacity is not left idle
//!   and waiters do not each poll the server;
//! - when this process's own guards fill the limit (known from the server's answers), the head
//!   waits for one of them to release instead of asking;
//! - when the server refuses because of holders elsewhere, the head waits for the server's
//!   `Retry-After` (with jitter, at most 30 s), at most 200 ms while that contention lasts, or
//!   a local release, whichever comes first;
//! - **fair shares between processes**: a lease that goes back at the end of its hand-off term
//!   is left to the others for up to 250 ms under contention (longer than their poll, so one of
//!   them takes it). Without known contention, one such slot every 4 s is left as long, so a
//!   process that waits unseen (this one holds every slot and is never refused) takes it and
//!   makes itself known. Each slot then changes hands at each term between the processes that
//!   wait: equal shares, whoever started first, and a process that starts asking gets a slot
//!   within a few seconds.
//!
//! Queues of different names or terms are apart; the server still keeps them correct. A queue
//! lives only while someone waits on it or holds a guard of it, so services that use ever new
//! limit names do not grow.
//!
//! With the `tower` feature (on by default), [`ConcurrencyLayer`] holds slots around each call
//! of a tower service.

mod acquire;
mod guard;
#[cfg(feature = "tower")]
mod layer;
pub(crate) mod queue;

pub use acquire::Acquire;
pub use guard::SlotGuard;
#[cfg(feature = "tower")]
pub use layer::{BoxError, ConcurrencyLayer, ConcurrencyService};
