//! The local side of contention: per-client queues of acquisitions, one per set of names and
//! lease terms, and leases handed from a released guard to the next waiter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::lease::{Lease, LeaseTerms};
use crate::waits::{CONTENTION_MEMORY, CONTENTION_YIELD, MIN_YIELD, PARK_TIMEOUT, PROBE_INTERVAL};

/// Counts an acquisition as waiting on its queue while it lives.
pub(crate) struct Waiting(Arc<Queue>);

impl Waiting {
    pub(crate) fn enter(queue: &Arc<Queue>) -> Waiting {
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

/// A lease request under way, counted on its queue while it lives.
pub(crate) struct Asking(Arc<Queue>);

impl Drop for Asking {
    fn drop(&mut self) {
        self.0.asking.fetch_sub(1, Ordering::AcqRel);
        self.0.asked.notify_waiters();
    }
}

/// A queue's key: the sorted names, the terms and the strictness. A lease passes only to a
/// waiter asking for the same.
type QueueKey = (Vec<String>, LeaseTerms, bool);

/// Per-client queues of acquisitions. A queue lives while an acquisition waits on it or a guard
/// of it is held; the map keeps only weak references and sheds dead ones as it grows, so a
/// service that uses ever new limit names does not grow without bound.
#[derive(Debug)]
pub(crate) struct Coordinator {
    queues: Mutex<Queues>,
}

#[derive(Debug)]
struct Queues {
    by_key: HashMap<QueueKey, Weak<Queue>>,
    /// The size at which dead entries are shed next.
    prune_at: usize,
}

/// The fewest entries before the map sheds dead ones.
const MIN_PRUNE_AT: usize = 64;

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator {
            queues: Mutex::new(Queues {
                by_key: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }
}

impl Coordinator {
    /// The queue of acquisitions of these names on these terms, strict or not.
    pub(crate) fn queue(&self, names: &[String], terms: &LeaseTerms, strict: bool) -> Arc<Queue> {
        let mut key = names.to_vec();
        key.sort();
        let key = (key, *terms, strict);
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = queues.by_key.get(&key).and_then(Weak::upgrade) {
            return queue;
        }
        let queue = Arc::new(Queue::default());
        queues.by_key.insert(key, Arc::downgrade(&queue));
        if queues.by_key.len() >= queues.prune_at {
            queues.by_key.retain(|_, q| q.strong_count() > 0);
            queues.prune_at = (queues.by_key.len() * 2).max(MIN_PRUNE_AT);
        }
        queue
    }

    /// How many queues the map keeps (live or not yet shed).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queues.lock().unwrap().by_key.len()
    }
}

/// The local state of one set of names on one set of terms.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Held by the acquisition whose turn it is to ask the server; FIFO.
    pub(crate) turn: tokio::sync::Mutex<()>,
    /// Signalled when a guard of this queue has released its slots on the server.
    pub(crate) released: Notify,
    /// Slots held by this process's live guards of this queue.
    pub(crate) held: AtomicU64,
    /// The smallest limit among the names, from the server's last grant (`u64::MAX` unknown).
    pub(crate) limit: AtomicU64,
    /// Acquisitions of this queue in progress.
    waiting: AtomicU64,
    /// Lease requests of this queue under way, including those whose asker took a handed-on
    /// lease meanwhile (their grant then passes to the next waiter).
    asking: AtomicU64,
    /// Signalled when a lease request of this queue ends.
    pub(crate) asked: Notify,
    /// When the head may ask the server next, after a refusal (`None`: at once).
    next_ask: Mutex<Option<Instant>>,
    /// Signalled when the last acquisition in progress ends.
    idle: Notify,
    /// Leases released by a guard for the next waiter to take, each with a way to tell the
    /// releaser it was taken.
    parked: Mutex<Vec<(Lease, tokio::sync::oneshot::Sender<()>)>>,
    /// Fair share with other processes: see [`Contention`].
    contention: Mutex<Contention>,
}

/// What this queue knows of holders in other processes.
///
/// A lease handed on locally never frees its slot on the server, so without care a process
/// that holds slots keeps them, and others never find one free. So every lease goes back to the
/// server at the end of its hand-off term (about [`HANDOFF_TERM`]), and this queue's head leaves
/// it there a moment before asking again:
/// - when the server refused this queue although its own guards did not fill the limit (others
///   hold or want slots: remote contention), for [`CONTENTION_YIELD`], longer than the others'
///   poll: another process takes it. Each lease then changes hands at each term, which shares
///   the slots equally between the processes that wait, whoever started first;
/// - otherwise one such slot every [`PROBE_INTERVAL`] is left for as long (the others go back
///   at once): a process that waits unseen (this one holds every slot, so it is never refused)
///   takes it, and its next refusal of this one makes the contention known. A process that
///   starts asking thus gets a slot within about a term and a probe interval.
///
/// A few yielded slots in a row that nobody else took end the contention.
#[derive(Debug, Default)]
struct Contention {
    /// Until when remote contention counts as current (set by each such refusal).
    seen_until: Option<Instant>,
    /// Yielded slots in a row that the head got back at its first ask: nobody else took them.
    untaken_yields: u32,
    /// The last `Retry-After` of such a refusal (the others poll at most that often).
    retry_after: Duration,
    /// Until when the head leaves a yielded slot to the others.
    yield_until: Option<Instant>,
    /// When a slot was last yielded without known contention, to find processes waiting unseen.
    last_probe: Option<Instant>,
}

/// How many yielded slots in a row nobody else takes end the contention.
const UNTAKEN_YIELDS: u32 = 3;

impl Default for Queue {
    fn default() -> Self {
        Queue {
            turn: tokio::sync::Mutex::new(()),
            released: Notify::new(),
            held: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            waiting: AtomicU64::new(0),
            asking: AtomicU64::new(0),
            asked: Notify::new(),
            next_ask: Mutex::new(None),
            idle: Notify::new(),
            parked: Mutex::new(Vec::new()),
            // The first probe comes a probe interval after the queue began.
            contention: Mutex::new(Contention {
                last_probe: Some(Instant::now()),
                ..Contention::default()
            }),
        }
    }
}

impl Queue {
    /// Whether this process's own guards already hold all the slots the limit has.
    pub(crate) fn locally_full(&self, slots: u32) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != u64::MAX && self.held.load(Ordering::Relaxed) + u64::from(slots) > limit
    }

    /// Records a fresh grant of `slots` by the server.
    pub(crate) fn on_granted(&self, slots: u32, smallest_limit: Option<i64>) {
        if let Some(limit) = smallest_limit {
            self.limit
                .store(u64::try_from(limit).unwrap_or(0), Ordering::Relaxed);
        }
        self.held.fetch_add(u64::from(slots), Ordering::Relaxed);
    }

    /// Whether a released lease may pass to a local waiter: someone waits on this queue (so on
    /// the same names and terms), the lease holds slots on every name, its hand-off term has
    /// not run out, and it lasts well beyond the hand-off.
    pub(crate) fn wants_handoff(&self, lease: &Lease) -> bool {
        lease.complete && !lease.term_over() && lease.term.lasts(PARK_TIMEOUT * 4) && self.has_waiters()
    }

    /// Counts a lease request under way while the returned value lives; its end wakes the head.
    pub(crate) fn asking(self: &Arc<Self>) -> Asking {
        self.asking.fetch_add(1, Ordering::AcqRel);
        Asking(self.clone())
    }

    /// Whether a lease request of this queue is under way: the head then waits for its grant
    /// (handed on to it) rather than asking again.
    pub(crate) fn is_asking(&self) -> bool {
        self.asking.load(Ordering::Acquire) > 0
    }

    /// After a refusal: the head asks again at `at` at the earliest, unless a local release
    /// frees a slot first.
    pub(crate) fn ask_after(&self, at: Instant) {
        *self.next_ask.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// When the head may ask next, if a refusal's wait is still running.
    pub(crate) fn next_ask(&self) -> Option<Instant> {
        let next = *self.next_ask.lock().unwrap_or_else(|p| p.into_inner());
        next.filter(|at| *at > Instant::now())
    }

    fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Hands a released lease to the next local waiter: parks it and wakes the waiter, then
    /// waits until it is taken. Returns the lease if nobody took it within [`PARK_TIMEOUT`] or
    /// nobody is left waiting, for the caller to give back on the server.
    ///
    /// If this future is dropped while the lease is parked, the lease stays parked: the caller
    /// must then [`unpark`](Queue::unpark) it.
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

    /// Takes a parked lease that still lasts, telling its releaser.
    pub(crate) fn take_parked(&self) -> Option<Lease> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let index = parked.iter().position(|(l, _)| l.term.lasts(PARK_TIMEOUT))?;
        let (lease, taken) = parked.swap_remove(index);
        let _ = taken.send(());
        Some(lease)
    }

    /// Takes back a parked lease nobody took.
    pub(crate) fn unpark(&self, id: uuid::Uuid) -> Option<Lease> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let index = parked.iter().position(|(l, _)| l.id == id)?;
        Some(parked.swap_remove(index).0)
    }

    pub(crate) fn has_parked(&self) -> bool {
        !self.parked.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Records a refusal by the server while this process's guards did not fill the limit:
    /// other processes hold slots.
    pub(crate) fn on_remote_refusal(&self, retry_after: Duration) {
        let mut contention = self.contention.lock().unwrap_or_else(|p| p.into_inner());
        contention.seen_until = Some(Instant::now() + CONTENTION_MEMORY);
        contention.retry_after = retry_after;
        contention.untaken_yields = 0;
    }

    /// Records that the head, asking after a yield, got the slots at once: nobody else took the
    /// yielded slot. A few in a row end the contention.
    pub(crate) fn on_untaken_yield(&self) {
        let mut contention = self.contention.lock().unwrap_or_else(|p| p.into_inner());
        contention.untaken_yields += 1;
        if contention.untaken_yields >= UNTAKEN_YIELDS {
            *contention = Contention {
                last_probe: contention.last_probe,
                ..Contention::default()
            };
        }
    }

    /// Whether a lease that goes back to the server should be left to other processes for a
    /// while (its hand-off term ran out, and others wait or it is time to probe; one that comes
    /// back earlier had nobody to pass to); if so, the head waits until [`Queue::yield_until`].
    pub(crate) fn yields(&self, lease: &Lease) -> bool {
        if !lease.term_over() {
            return false;
        }
        let mut contention = self.contention.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let wait = if contention.seen_until.is_some_and(|until| until > now) {
            contention
                .retry_after
                .mul_f64(1.25)
                .clamp(MIN_YIELD, CONTENTION_YIELD)
        } else if contention
            .last_probe
            .is_none_or(|at| now.duration_since(at) >= PROBE_INTERVAL)
        {
            contention.last_probe = Some(now);
            CONTENTION_YIELD
        } else {
            return false;
        };
        let until = now + wait;
        contention.yield_until = Some(contention.yield_until.map_or(until, |u| u.max(until)));
        true
    }

    /// Whether remote contention is current: the head then polls the server at most
    /// [`CONTENTION_POLL`](crate::waits::CONTENTION_POLL) apart.
    pub(crate) fn contended(&self) -> bool {
        let contention = self.contention.lock().unwrap_or_else(|p| p.into_inner());
        contention.seen_until.is_some_and(|until| until > Instant::now())
    }

    /// Until when the head should leave a yielded slot to other processes.
    pub(crate) fn yield_until(&self) -> Option<Instant> {
        let contention = self.contention.lock().unwrap_or_else(|p| p.into_inner());
        contention.yield_until.filter(|until| *until > Instant::now())
    }

    /// Records that a guard gave back `slots` on the server; the head of the queue asks at once.
    pub(crate) fn on_released(&self, slots: u32) {
        let _ = self.held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
            Some(h.saturating_sub(u64::from(slots)))
        });
        *self.next_ask.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Term;
    use crate::waits::HANDOFF_TERM;

    fn terms(slots: u32) -> LeaseTerms {
        LeaseTerms::new(slots)
    }

    fn lease(slots: u32) -> Lease {
        let term = Term {
            since: Instant::now(),
            duration: Duration::from_secs(60),
        };
        Lease::granted(uuid::Uuid::new_v4(), Vec::new(), terms(slots), term, true)
    }

    fn worn(slots: u32) -> Lease {
        let mut lease = lease(slots);
        lease.hand_off_until = Instant::now();
        lease
    }

    #[test]
    fn local_fullness_follows_held_slots_and_known_limit() {
        let queue = Queue::default();
        assert!(!queue.locally_full(1), "unknown limit: ask the server");
        queue.on_granted(1, Some(2));
        assert!(!queue.locally_full(1));
        assert!(queue.locally_full(2));
        queue.on_granted(1, None);
        assert!(queue.locally_full(1));
        queue.on_released(1);
        assert!(!queue.locally_full(1));
        queue.on_released(5);
        assert_eq!(queue.held.load(Ordering::Relaxed), 0, "never below zero");
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
        let taken = queue.take_parked().expect("parked lease");
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

    #[tokio::test]
    async fn only_complete_lasting_leases_are_handed_on_and_only_to_waiters() {
        let queue = Arc::new(Queue::default());
        assert!(!queue.wants_handoff(&lease(1)), "nobody waits");
        let _waiting = Waiting::enter(&queue);
        assert!(queue.wants_handoff(&lease(1)));
        let mut partial = lease(1);
        partial.complete = false;
        assert!(
            !queue.wants_handoff(&partial),
            "a lease missing a limit the waiter would be limited by"
        );
        assert!(!queue.wants_handoff(&worn(1)), "its hand-off term ran out");
        let mut ending = lease(1);
        ending.term.duration = PARK_TIMEOUT;
        assert!(!queue.wants_handoff(&ending), "about to expire");
    }

    #[tokio::test]
    async fn an_expired_parked_lease_is_never_taken() {
        let queue = Arc::new(Queue::default());
        let _waiting = Waiting::enter(&queue);
        let mut stale = lease(1);
        stale.term.since = Instant::now() - Duration::from_secs(61);
        let id = stale.id;
        let (sender, _taken) = tokio::sync::oneshot::channel();
        queue.parked.lock().unwrap().push((stale, sender));
        assert!(queue.take_parked().is_none());
        assert!(queue.unpark(id).is_some(), "left for its releaser");
    }

    #[test]
    fn a_worn_lease_probes_now_and_then_and_yields_each_time_under_contention() {
        let queue = Queue::default();
        assert!(
            !queue.yields(&lease(1)),
            "in its term: it came back for want of a waiter"
        );
        assert!(queue.yield_until().is_none());
        assert!(!queue.yields(&worn(1)), "no probe in the queue's first interval");
        queue.contention.lock().unwrap().last_probe = Some(Instant::now() - PROBE_INTERVAL);
        assert!(
            queue.yields(&worn(1)),
            "a worn lease probes once the interval has passed"
        );
        let wait = queue.yield_until().expect("a probe window") - Instant::now();
        assert!(
            wait > CONTENTION_YIELD - Duration::from_millis(20) && wait <= CONTENTION_YIELD,
            "{wait:?}"
        );
        assert!(
            !queue.yields(&worn(1)),
            "the next ones within the probe interval do not"
        );
        assert!(!queue.contended());
        queue.on_remote_refusal(Duration::from_millis(150));
        assert!(queue.contended());
        assert!(queue.yields(&worn(1)), "under contention every worn lease yields");
        assert!(queue.yields(&worn(1)));
        let wait = queue.yield_until().expect("the head leaves it to the others") - Instant::now();
        assert!(wait <= CONTENTION_YIELD, "{wait:?}");
        queue.on_remote_refusal(Duration::from_millis(10));
        assert!(queue.yields(&worn(1)));
        queue.on_remote_refusal(Duration::from_secs(5));
        assert!(queue.yields(&worn(1)));
        let wait = queue.yield_until().unwrap() - Instant::now();
        assert!(wait <= CONTENTION_YIELD, "bounded: {wait:?}");
        for _ in 0..UNTAKEN_YIELDS {
            queue.on_untaken_yield();
        }
        assert!(!queue.contended(), "nobody took the yielded slots");
    }

    #[test]
    fn hand_off_terms_are_spread_around_the_nominal_term() {
        let terms: Vec<Duration> = (0..200)
            .map(|_| {
                let l = lease(1);
                l.hand_off_until - l.term.since
            })
            .collect();
        assert!(
            terms
                .iter()
                .all(|t| *t >= HANDOFF_TERM.mul_f64(0.75) && *t <= HANDOFF_TERM.mul_f64(1.25))
        );
        assert!(terms.iter().any(|t| *t != terms[0]), "drawn, not fixed");
    }

    #[test]
    fn queues_are_shared_per_name_set_in_any_order_and_terms() {
        let coordinator = Coordinator::default();
        let a = coordinator.queue(&["x".into(), "y".into()], &terms(1), true);
        let b = coordinator.queue(&["y".into(), "x".into()], &terms(1), true);
        let c = coordinator.queue(&["x".into()], &terms(1), true);
        let d = coordinator.queue(&["x".into(), "y".into()], &terms(2), true);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(!Arc::ptr_eq(&a, &d), "other terms queue apart");
        let e = coordinator.queue(&["x".into(), "y".into()], &terms(1), false);
        assert!(!Arc::ptr_eq(&a, &e), "another strictness queues apart");
    }

    #[test]
    fn queues_nobody_uses_are_shed() {
        let coordinator = Coordinator::default();
        let kept = coordinator.queue(&["kept".into()], &terms(1), true);
        for i in 0..10_000 {
            drop(coordinator.queue(&[format!("dynamic-{i}")], &terms(1), true));
        }
        assert!(coordinator.len() <= MIN_PRUNE_AT, "{}", coordinator.len());
        assert!(Arc::ptr_eq(
            &kept,
            &coordinator.queue(&["kept".into()], &terms(1), true)
        ));
    }
}
