//! The local side of contention: per-client queues of acquisitions, one per set of names, and
//! leases handed from a released guard to the next waiter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{MAX_HANDOFFS, PARK_TIMEOUT};
use crate::resources::global_concurrency_limits::LeaseHolder;

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

/// Per-client queues of acquisitions, one per set of names.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    queues: Mutex<HashMap<Vec<String>, Arc<Queue>>>,
}

impl Coordinator {
    pub(crate) fn queue(&self, names: &[String]) -> Arc<Queue> {
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
    pub(crate) turn: tokio::sync::Mutex<()>,
    /// Signalled when a guard of this queue has released its slots on the server.
    pub(crate) released: Notify,
    /// Slots held by this process's live guards of this queue.
    pub(crate) held: AtomicU64,
    /// The smallest limit among the names, from the server's last grant (`u64::MAX` unknown).
    pub(crate) limit: AtomicU64,
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
    pub(crate) fn locally_full(&self, slots: u32) -> bool {
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
    pub(crate) fn take_parked(&self, terms: &LeaseTerms) -> Option<Lease> {
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

    pub(crate) fn has_parked(&self) -> bool {
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
    use crate::concurrency::DEFAULT_LEASE_DURATION;

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
}
