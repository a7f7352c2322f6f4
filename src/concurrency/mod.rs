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

mod guard;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use guard::SlotGuard;

use crate::resources::global_concurrency_limits::{
    LeaseHolder, SlotMode, check_lease_duration, checked_names, checked_slots,
};
use crate::retry::Backoff;
use crate::types::ConcurrencyLimitWithLeaseResponse;
use crate::{Client, Error};

/// The lease duration guards ask for unless told otherwise (Prefect's default).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(300);
/// How long the head of the queue waits after a refusal that gave no `Retry-After`.
const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);
/// How long the head waits for a local release before asking the server anyway (the limit may
/// have been raised meanwhile).
const LOCAL_FULL_RECHECK: Duration = Duration::from_secs(2);
/// How many failed requests in a row (server errors, broken connections) end an acquisition.
const MAX_TRANSIENT_FAILURES: u32 = 5;
/// The longest wait after a failed lease request before asking again.
const MAX_FAILURE_WAIT: Duration = Duration::from_secs(2);

/// Waits after failed lease requests in a row: 200 ms, doubling, at most [`MAX_FAILURE_WAIT`].
fn failure_backoff() -> Backoff {
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

/// An acquisition of slots; from [`Client::concurrency`]. Set options, then
/// [`acquire`](Acquire::acquire) a guard or [`run`](Acquire::run) a future while holding.
#[derive(Debug, Clone)]
#[must_use = "call .acquire() or .run(future)"]
pub struct Acquire {
    client: Client,
    names: Vec<String>,
    slots: u32,
    lease_duration: Duration,
    timeout: Option<Duration>,
    strict: bool,
    holder: Option<LeaseHolder>,
    max_retries: Option<u32>,
}

impl Acquire {
    pub(crate) fn new(client: Client, names: Vec<String>) -> Acquire {
        Acquire {
            client,
            names,
            slots: 1,
            lease_duration: DEFAULT_LEASE_DURATION,
            timeout: None,
            strict: false,
            holder: None,
            max_retries: None,
        }
    }

    /// Slots to take on each limit (default 1).
    pub fn slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
    }

    /// The lease asked for, 60 s to 24 h (default 300 s); renewed while held.
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// Give up with [`Error::AcquireTimeout`] after waiting this long (default: wait).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Fail with [`Error::MissingLimits`] when a name has no active limit, instead of treating
    /// it as unlimited (default false, as Prefect's).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Record who holds the lease (`flow_run`, `task_run` or `deployment`, and its id).
    pub fn holder(mut self, holder: LeaseHolder) -> Self {
        self.holder = Some(holder);
        self
    }

    /// Give up with the server's [`Error::SlotsUnavailable`] after this many refusals
    /// (default: keep trying until the timeout).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Waits for the slots and returns a guard holding them.
    pub async fn acquire(self) -> Result<SlotGuard, Error> {
        let names = checked_names(&self.names.iter().map(String::as_str).collect::<Vec<_>>())?;
        checked_slots(self.slots)?;
        check_lease_duration(self.lease_duration)?;
        let started = Instant::now();
        let attempt = self.acquire_in_turn(names.clone());
        match self.timeout {
            None => attempt.await,
            Some(timeout) => match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(Error::AcquireTimeout {
                    names,
                    slots: self.slots,
                    waited: started.elapsed(),
                }),
            },
        }
    }

    /// Holds the slots while `work` runs, then releases them and returns its output.
    ///
    /// `work` is first polled once the slots are held. A timer made outside it starts counting
    /// when made, not then: write `run(async { sleep(d).await })`, not `run(sleep(d))`.
    ///
    /// If the lease is lost while `work` runs, `work` is dropped (cancelled) and
    /// [`Error::LeaseLost`] returned, so it never runs on beyond the limit. A failure to release
    /// afterwards is logged, not returned: the output is not lost, and the server frees the
    /// slots when the lease expires.
    pub async fn run<F: Future>(self, work: F) -> Result<F::Output, Error> {
        let guard = self.acquire().await?;
        tokio::select! {
            output = work => {
                if let Err(e) = guard.release().await {
                    tracing::warn!(error = %e, "releasing concurrency slots failed; the server frees them when the lease expires");
                }
                Ok(output)
            }
            lost = guard.lost() => Err(lost),
        }
    }

    /// Takes `slots` of rate limits (limits with slot decay): waits until the server grants
    /// them; nothing is released afterwards, the slots decay. Prefect's `rate_limit()`.
    pub async fn rate_limit(self) -> Result<(), Error> {
        let names = checked_names(&self.names.iter().map(String::as_str).collect::<Vec<_>>())?;
        checked_slots(self.slots)?;
        let started = Instant::now();
        let client = self.client.clone();
        let max_retries = self.max_retries;
        let slots = self.slots;
        let strict = self.strict;
        let attempt = async move {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut refusals = 0;
            loop {
                match client
                    .global_concurrency_limits()
                    .increment(&refs, slots, SlotMode::RateLimit)
                    .await
                {
                    Ok(limits) => {
                        let missing = missing_names(&names, limits.iter().map(|l| l.name.as_str()));
                        if strict && !missing.is_empty() {
                            return Err(Error::MissingLimits { names: missing });
                        }
                        return Ok(());
                    }
                    Err(e @ Error::SlotsUnavailable { .. }) => {
                        refusals += 1;
                        if max_retries.is_some_and(|m| refusals > m) {
                            return Err(e);
                        }
                        tokio::time::sleep(e.retry_after().unwrap_or(DEFAULT_RETRY_WAIT)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        match self.timeout {
            None => attempt.await,
            Some(timeout) => tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
                Err(Error::AcquireTimeout {
                    names: self.names.clone(),
                    slots,
                    waited: started.elapsed(),
                })
            }),
        }
    }

    /// Queues behind the other acquisitions of the same names in this process, then asks the
    /// server until it grants the slots.
    async fn acquire_in_turn(&self, names: Vec<String>) -> Result<SlotGuard, Error> {
        let queue = self.client.coordinator.queue(&names);
        let _waiting = Waiting::enter(&queue);
        let _turn = queue.turn.lock().await;
        let mut refusals = 0u32;
        let mut failures = 0u32;
        let mut backoff = failure_backoff();
        let terms = self.terms();
        loop {
            if let Some(lease) = queue.take_parked(&terms) {
                return Ok(SlotGuard::start(self.client.clone(), lease, queue.clone()));
            }
            if queue.locally_full(self.slots) {
                // Only a release of ours can free a slot: wait for one, or ask the server anyway
                // after a while (the limit may have been raised).
                let _ = tokio::time::timeout(LOCAL_FULL_RECHECK, queue.released.notified()).await;
                if queue.has_parked() {
                    continue;
                }
            }
            let sent = Instant::now();
            match self.request_lease(&names).await {
                Ok(granted) => return self.guard_for(granted, sent, names, queue.clone()).await,
                Err(e @ Error::SlotsUnavailable { .. }) => {
                    refusals += 1;
                    failures = 0;
                    backoff = failure_backoff();
                    if self.max_retries.is_some_and(|m| refusals > m) {
                        return Err(e);
                    }
                    let wait = e.retry_after().unwrap_or(DEFAULT_RETRY_WAIT);
                    let _ = tokio::time::timeout(wait, queue.released.notified()).await;
                }
                // A broken connection or a failing replica: the slot may have been taken, but
                // then it returns when the unanswered lease expires; the limit holds either way.
                Err(e) if e.is_transient() && failures < MAX_TRANSIENT_FAILURES => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "a lease request failed; asking again (a lease the server granted unanswered expires by itself)");
                    tokio::time::sleep(backoff.next_delay().unwrap_or(MAX_FAILURE_WAIT)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One `increment-with-lease` request, in a task of its own: if this acquisition is
    /// cancelled while the request is in flight, the task gives a granted lease straight back.
    async fn request_lease(&self, names: &[String]) -> Result<ConcurrencyLimitWithLeaseResponse, Error> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let client = self.client.clone();
        let names = names.to_vec();
        let (slots, lease_duration, holder) = (self.slots, self.lease_duration, self.holder);
        tokio::spawn(async move {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut request = client
                .global_concurrency_limits()
                .increment_with_lease(&refs, slots)
                .lease_duration(lease_duration);
            if let Some(holder) = holder {
                request = request.holder(holder);
            }
            let result = request.send().await;
            if let Err(Ok(orphan)) = sender.send(result) {
                tracing::debug!(lease_id = %orphan.lease_id, "acquisition cancelled; releasing the lease it was granted");
                if let Err(e) = client
                    .global_concurrency_limits()
                    .decrement_with_lease(orphan.lease_id)
                    .await
                {
                    tracing::warn!(error = %e, "releasing an orphaned lease failed; it expires by itself");
                }
            }
        });
        receiver.await.unwrap_or_else(|_| {
            Err(Error::RuntimeShutdown {
                what: "a lease request was under way",
            })
        })
    }

    /// Turns a granted lease into a guard, checking which names it really limits.
    async fn guard_for(
        &self,
        granted: ConcurrencyLimitWithLeaseResponse,
        sent: Instant,
        names: Vec<String>,
        queue: Arc<Queue>,
    ) -> Result<SlotGuard, Error> {
        let missing = missing_names(&names, granted.limits.iter().map(|l| l.name.as_str()));
        let limits = self.client.global_concurrency_limits();
        if !missing.is_empty() && (self.strict || granted.limits.is_empty()) {
            // Nothing (or not everything asked for) is limited: hand the lease back.
            if let Err(e) = limits.decrement_with_lease(granted.lease_id).await {
                tracing::warn!(error = %e, "releasing an unneeded lease failed; it expires by itself");
            }
            if self.strict {
                return Err(Error::MissingLimits { names: missing });
            }
            tracing::warn!(names = ?missing, "no active global concurrency limit with these names; not limiting");
            return Ok(SlotGuard::unlimited());
        }
        if !missing.is_empty() {
            tracing::warn!(names = ?missing, "no active global concurrency limit with these names; limiting by the others only");
        }
        if let Some(smallest) = granted.limits.iter().map(|l| l.limit).min() {
            queue
                .limit
                .store(u64::try_from(smallest).unwrap_or(0), Ordering::Relaxed);
        }
        queue.held.fetch_add(u64::from(self.slots), Ordering::Relaxed);
        let lease = Lease {
            id: granted.lease_id,
            limits: granted.limits,
            terms: self.terms(),
            renewed_at: sent,
            handoffs: 0,
        };
        Ok(SlotGuard::start(self.client.clone(), lease, queue))
    }

    fn terms(&self) -> LeaseTerms {
        LeaseTerms {
            slots: self.slots,
            lease_duration: self.lease_duration,
            holder: self.holder,
        }
    }
}

/// What a lease was granted for; a lease passes only to a waiter asking for the same.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaseTerms {
    pub(crate) slots: u32,
    pub(crate) lease_duration: Duration,
    pub(crate) holder: Option<LeaseHolder>,
}

/// A lease the server granted, as this process holds it.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: uuid::Uuid,
    pub(crate) limits: Vec<crate::types::MinimalConcurrencyLimitResponse>,
    pub(crate) terms: LeaseTerms,
    /// When the server last extended it (granted or renewed).
    pub(crate) renewed_at: Instant,
    /// How many times it passed from one guard to the next.
    pub(crate) handoffs: u32,
}

/// Counts an acquisition as waiting on its queue while it lives.
struct Waiting(Arc<Queue>);

impl Waiting {
    fn enter(queue: &Arc<Queue>) -> Waiting {
        queue.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(queue.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Nobody is left to take a parked lease: its releaser gives it back at once.
            self.0.idle.notify_waiters();
        }
    }
}

/// The names asked for that the server's answer does not list.
fn missing_names<'a>(asked: &[String], granted: impl Iterator<Item = &'a str>) -> Vec<String> {
    let granted: Vec<&str> = granted.collect();
    asked
        .iter()
        .filter(|n| !granted.contains(&n.as_str()))
        .cloned()
        .collect()
}

/// Per-client queues of acquisitions, one per set of names.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    queues: Mutex<HashMap<Vec<String>, Arc<Queue>>>,
}

impl Coordinator {
    fn queue(&self, names: &[String]) -> Arc<Queue> {
        let mut key = names.to_vec();
        key.sort();
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(key).or_default().clone()
    }
}

/// The local state of one set of names.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Held by the acquisition whose turn it is to ask the server; FIFO.
    turn: tokio::sync::Mutex<()>,
    /// Signalled when a guard of this queue has released its slots on the server.
    released: Notify,
    /// Slots held by this process's live guards of this queue.
    held: AtomicU64,
    /// The smallest limit among the names, from the server's last grant (`u64::MAX` unknown).
    limit: AtomicU64,
    /// Acquisitions of this queue in progress.
    waiting: AtomicU64,
    /// Signalled when the last acquisition in progress ends.
    idle: Notify,
    /// Leases released by a guard for the next waiter to take, each with a way to tell the
    /// releaser it was taken.
    parked: Mutex<Vec<(Lease, tokio::sync::oneshot::Sender<()>)>>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            turn: tokio::sync::Mutex::new(()),
            released: Notify::new(),
            held: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            waiting: AtomicU64::new(0),
            idle: Notify::new(),
            parked: Mutex::new(Vec::new()),
        }
    }
}

impl Queue {
    /// Whether this process's own guards already hold all the slots the limit has.
    fn locally_full(&self, slots: u32) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != u64::MAX && self.held.load(Ordering::Relaxed) + u64::from(slots) > limit
    }

    /// Whether a local acquisition waits and the lease may still be handed on.
    pub(crate) fn wants_handoff(&self, lease: &Lease) -> bool {
        lease.handoffs < MAX_HANDOFFS && self.has_waiters()
    }

    fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Hands a released lease to the next local waiter: parks it and wakes the waiter, then
    /// waits until it is taken. Returns the lease if nobody took it within [`PARK_TIMEOUT`] or
    /// nobody is left waiting, for the caller to give back on the server.
    pub(crate) async fn hand_off(&self, mut lease: Lease) -> Option<Lease> {
        let id = lease.id;
        lease.handoffs += 1;
        let (taken_sender, taken) = tokio::sync::oneshot::channel();
        let idle = self.idle.notified();
        tokio::pin!(idle);
        idle.as_mut().enable();
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((lease, taken_sender));
        self.released.notify_one();
        if self.has_waiters() {
            tokio::select! {
                _ = taken => {}
                _ = idle => {}
                _ = tokio::time::sleep(PARK_TIMEOUT) => {}
            }
        }
        self.unpark(id)
    }

    /// Takes a parked lease granted on the same terms, telling its releaser.
    fn take_parked(&self, terms: &LeaseTerms) -> Option<Lease> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let index = parked.iter().position(|(l, _)| &l.terms == terms)?;
        let (lease, taken) = parked.swap_remove(index);
        let _ = taken.send(());
        Some(lease)
    }

    /// Takes back a parked lease nobody took.
    fn unpark(&self, id: uuid::Uuid) -> Option<Lease> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let index = parked.iter().position(|(l, _)| l.id == id)?;
        Some(parked.swap_remove(index).0)
    }

    fn has_parked(&self) -> bool {
        !self.parked.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Records that a guard gave back `slots` on the server; the head of the queue asks at once.
    pub(crate) fn on_released(&self, slots: u32) {
        let _ = self.held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
            Some(h.saturating_sub(u64::from(slots)))
        });
        self.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_fullness_follows_held_slots_and_known_limit() {
        let queue = Queue::default();
        assert!(!queue.locally_full(1), "unknown limit: ask the server");
        queue.limit.store(2, Ordering::Relaxed);
        queue.held.store(1, Ordering::Relaxed);
        assert!(!queue.locally_full(1));
        assert!(queue.locally_full(2));
        queue.held.store(2, Ordering::Relaxed);
        assert!(queue.locally_full(1));
        queue.on_released(1);
        assert!(!queue.locally_full(1));
        queue.on_released(5);
        assert_eq!(queue.held.load(Ordering::Relaxed), 0, "never below zero");
    }

    fn lease(slots: u32) -> Lease {
        Lease {
            id: uuid::Uuid::new_v4(),
            limits: Vec::new(),
            terms: LeaseTerms {
                slots,
                lease_duration: DEFAULT_LEASE_DURATION,
                holder: None,
            },
            renewed_at: Instant::now(),
            handoffs: 0,
        }
    }

    #[tokio::test]
    async fn a_hand_off_nobody_waits_for_comes_straight_back() {
        let queue = Queue::default();
        let started = Instant::now();
        let back = queue.hand_off(lease(1)).await.expect("returned to be released");
        assert_eq!(back.handoffs, 1);
        assert!(started.elapsed() < PARK_TIMEOUT, "no waiter: no wait");
        assert!(!queue.has_parked());
    }

    #[tokio::test]
    async fn a_waiter_takes_a_handed_off_lease_and_the_releaser_learns_it() {
        let queue = Arc::new(Queue::default());
        let waiting = Waiting::enter(&queue);
        let offered = lease(1);
        let id = offered.id;
        let releaser = tokio::spawn({
            let queue = queue.clone();
            async move { queue.hand_off(offered).await }
        });
        queue.released.notified().await;
        assert!(
            queue.take_parked(&lease(2).terms).is_none(),
            "other terms do not match"
        );
        let taken = queue.take_parked(&lease(1).terms).expect("parked lease");
        assert_eq!(taken.id, id);
        assert!(releaser.await.unwrap().is_none(), "taken: nothing to release");
        drop(waiting);
    }

    #[tokio::test]
    async fn a_hand_off_comes_back_when_the_last_waiter_leaves() {
        let queue = Arc::new(Queue::default());
        let waiting = Waiting::enter(&queue);
        let releaser = tokio::spawn({
            let queue = queue.clone();
            async move { queue.hand_off(lease(1)).await }
        });
        queue.released.notified().await;
        let started = Instant::now();
        drop(waiting);
        assert!(releaser.await.unwrap().is_some(), "back to be released");
        assert!(
            started.elapsed() < PARK_TIMEOUT,
            "without waiting for the park timeout"
        );
    }

    #[test]
    fn queues_are_shared_per_name_set_in_any_order() {
        let coordinator = Coordinator::default();
        let a = coordinator.queue(&["x".into(), "y".into()]);
        let b = coordinator.queue(&["y".into(), "x".into()]);
        let c = coordinator.queue(&["x".into()]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn missing_names_are_those_not_granted() {
        let asked = vec!["a".to_string(), "b".to_string()];
        assert_eq!(missing_names(&asked, ["a"].into_iter()), ["b"]);
        assert!(missing_names(&asked, ["b", "a"].into_iter()).is_empty());
    }
}
