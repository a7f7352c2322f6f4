//! [`SlotGuard`]: slots held under a lease, renewed in the background, given back on release or
//! drop, and at program end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::queue::Queue;
use crate::error::LeaseLoss;
use crate::lease::{Cadence, GiveUp, Lease, RenewalRule, Renewer, SharedTerm};
use crate::retry::{Retries, Verdict};
use crate::types::MinimalConcurrencyLimitResponse;
use crate::waits::{RELEASE, RELEASE_RETRY_BUDGET, RENEWAL_RETRY};
use crate::{Client, Error};

/// Slots of global concurrency limits, held under a lease; from [`Acquire`](super::Acquire).
///
/// Give them back with [`release`](SlotGuard::release). Dropped without it (early return, `?`,
/// panic), the guard releases in a background task; if the program ends first (main returns or
/// panics, the runtime shuts down), the release finishes before the runtime is gone, waiting at
/// most a few seconds for the server. Only a process that dies without unwinding (SIGKILL,
/// `std::process::abort`, `std::process::exit`, `panic = "abort"`) leaves its slots to lease
/// expiry.
#[derive(Debug)]
#[must_use = "the slots are released when the guard is dropped"]
pub struct SlotGuard {
    held: Option<Held>,
    lost: watch::Receiver<Option<Loss>>,
    /// Keeps the loss channel of an unlimited guard open, so `lost()` stays pending.
    _never_lost: Option<watch::Sender<Option<Loss>>>,
}

/// A lost lease: its id and why.
type Loss = (Uuid, LeaseLoss);

#[derive(Debug)]
struct Held {
    client: Client,
    /// The lease; its `term` is kept current by the renewer through `term`.
    lease: Lease,
    term: SharedTerm,
    queue: Arc<Queue>,
    renewer: JoinHandle<()>,
}

impl SlotGuard {
    /// A guard for names that no active limit covers: it holds nothing and is never lost.
    pub(crate) fn unlimited() -> SlotGuard {
        let (sender, lost) = watch::channel(None);
        SlotGuard {
            held: None,
            lost,
            _never_lost: Some(sender),
        }
    }

    /// Starts holding a lease (granted now, or handed on by a released guard), renewing it in
    /// the background on the current runtime: every third of its current term, asking each
    /// time for the duration the holder wanted; failed renewals are tried again while the term
    /// lasts, and the lease counts as lost on 410 or when the term ended unrenewed.
    pub(crate) fn start(client: Client, lease: Lease, queue: Arc<Queue>) -> SlotGuard {
        let (sender, lost) = watch::channel(None);
        let lease_id = lease.id;
        let rule = RenewalRule {
            term: lease.terms.lease_duration,
            cadence: Cadence::ThirdOfTerm,
            retry: RENEWAL_RETRY,
            give_up: GiveUp::AtTermEnd,
        };
        let renewing = Renewer::new(lease_id, "concurrency lease", rule).with_term(lease.term);
        let term = renewing.term();
        let renew_client = client.clone();
        let renewer = tokio::spawn(async move {
            let limits = renew_client.global_concurrency_limits();
            let on_lost = move |reason: LeaseLoss| {
                tracing::error!(%lease_id, %reason, "concurrency lease lost");
                let _ = sender.send(Some((lease_id, reason)));
            };
            renewing
                .run(|term| limits.renew_lease(lease_id, term), on_lost)
                .await;
        });
        SlotGuard {
            held: Some(Held {
                client,
                lease,
                term,
                queue,
                renewer,
            }),
            lost,
            _never_lost: None,
        }
    }

    /// The server's lease id (`None` when no limit applied).
    pub fn lease_id(&self) -> Option<Uuid> {
        self.held.as_ref().map(|h| h.lease.id)
    }

    /// The limits the slots are held on, as the server reported them.
    pub fn limits(&self) -> &[MinimalConcurrencyLimitResponse] {
        self.held.as_ref().map_or(&[], |h| &h.lease.limits)
    }

    /// Whether the guard limits nothing: a lenient acquisition ([`strict(false)`]) whose names
    /// have no active limit.
    ///
    /// [`strict(false)`]: super::Acquire::strict
    pub fn is_unlimited(&self) -> bool {
        self.held.is_none()
    }

    /// Whether the lease was lost (expired, revoked, or no longer renewed because the runtime
    /// that renewed it shut down): the slots may be someone else's now.
    pub fn is_lost(&self) -> bool {
        self.loss().is_some()
    }

    /// `Err(`[`Error::LeaseLost`]`)` once the lease is lost; check it between steps of long work.
    pub fn check(&self) -> Result<(), Error> {
        match self.loss() {
            Some((lease_id, reason)) => Err(Error::LeaseLost { lease_id, reason }),
            None => Ok(()),
        }
    }

    fn loss(&self) -> Option<Loss> {
        let held = self.held.as_ref()?;
        if let Some(loss) = &*self.lost.borrow() {
            return Some(loss.clone());
        }
        if self.lost.has_changed().is_err() {
            // The renewer is gone without a word: its runtime shut down.
            return Some((held.lease.id, LeaseLoss::RuntimeShutdown));
        }
        let ended = held.term.get().is_some_and(|term| !term.lasts(Duration::ZERO));
        ended.then(|| {
            let last_error = "the lease's term ended before a renewal was answered".to_string();
            (held.lease.id, LeaseLoss::NotRenewed { last_error })
        })
    }

    /// Resolves with [`Error::LeaseLost`] when the lease is lost; pending while it is held.
    pub async fn lost(&self) -> Error {
        let Some(held) = &self.held else {
            return std::future::pending().await;
        };
        let mut lost = self.lost.clone();
        loop {
            let ends = held.term.get().map(|term| term.ends());
            let ended = async {
                match ends {
                    Some(ends) => tokio::time::sleep_until(ends).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = lost.changed() => {}
                () = ended => {}
            }
            if let Err(error) = self.check() {
                return error;
            }
        }
    }

    /// Gives the slots back and waits until the server (or a local waiter) has them.
    ///
    /// Returns [`Error::LeaseLost`] if the lease had been lost meanwhile (the work may have
    /// over-run the limit), after releasing what is left. Cancelling this future does not
    /// cancel the release: it goes on in the background.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the lease was lost while held; the error of the release when
    /// the server failed it for 10 s (the slots then come back when the lease expires);
    /// [`Error::RuntimeShutdown`] when the runtime stopped meanwhile.
    pub async fn release(mut self) -> Result<(), Error> {
        let lost = self.check();
        if let Some(held) = self.held.take() {
            let (releasing, lease) = held.into_release();
            tokio::spawn(releasing.run(lease, lost.is_ok()))
                .await
                .map_err(|_| Error::RuntimeShutdown {
                    what: "slots were being released",
                })??;
        }
        lost
    }
}

impl Held {
    /// Stops renewing and turns the lease into a release under way, which gives it back even if
    /// it is dropped before it ran.
    fn into_release(self) -> (Releasing, Lease) {
        self.renewer.abort();
        let Held {
            client,
            mut lease,
            term,
            queue,
            ..
        } = self;
        if let Some(term) = term.get() {
            lease.term = term;
        }
        let releasing = Releasing {
            client,
            lease_id: lease.id,
            slots: lease.terms.slots,
            queue,
            stage: Stage::Held,
        };
        (releasing, lease)
    }
}

/// A release under way. Dropped before it finished (its runtime shut down at program end), it
/// gives the slots back from a thread of its own before the drop returns.
struct Releasing {
    client: Client,
    lease_id: Uuid,
    slots: u32,
    queue: Arc<Queue>,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The lease is ours to give back.
    Held,
    /// Offered to a local waiter, who may have taken it.
    Parked,
    /// Given back, or taken by a waiter.
    Done,
}

impl Releasing {
    /// Hands the lease to a local waiter if one can take it, or gives the slots back on the
    /// server.
    async fn run(mut self, lease: Lease, healthy: bool) -> Result<(), Error> {
        let lease = if healthy && self.queue.wants_handoff(&lease) {
            self.stage = Stage::Parked;
            match self.queue.hand_off(lease).await {
                None => {
                    self.stage = Stage::Done;
                    return Ok(());
                }
                // Nobody took it in time: give it back to the server.
                Some(untaken) => {
                    self.stage = Stage::Held;
                    untaken
                }
            }
        } else {
            lease
        };
        // A lease at the end of its hand-off term is left to other processes a while.
        let yielded = self.queue.yields(&lease);
        let result = release_on_server(&self.client, self.lease_id).await;
        self.stage = Stage::Done;
        self.queue.on_released(self.slots);
        if yielded {
            tracing::trace!(lease_id = %self.lease_id, "slot left to other processes a while");
        }
        result
    }
}

impl Drop for Releasing {
    fn drop(&mut self) {
        let ours = match self.stage {
            Stage::Done => false,
            Stage::Held => true,
            Stage::Parked => self.queue.unpark(self.lease_id).is_some(),
        };
        if ours {
            release_blocking(&self.client, self.lease_id);
            self.queue.on_released(self.slots);
        }
    }
}

/// Gives a lease's slots back on the server, retrying transient failures for up to
/// [`RELEASE_RETRY_BUDGET`].
async fn release_on_server(client: &Client, lease_id: Uuid) -> Result<(), Error> {
    let limits = client.global_concurrency_limits();
    let limits = &limits;
    Retries::new(RELEASE)
        .starting_within(RELEASE_RETRY_BUDGET)
        .run(
            |e: &Error| Verdict::retry_if(e.is_transient()),
            |e, _| tracing::debug!(%lease_id, error = %e, "releasing slots failed; retrying"),
            |_| limits.decrement_with_lease(lease_id),
        )
        .await
}

/// Gives a lease back from a thread of its own, with its own runtime, and waits for it: for a
/// guard dropped where no runtime runs, or a release whose runtime is shutting down.
fn release_blocking(client: &Client, lease_id: Uuid) {
    crate::detached::run_blocking(
        client,
        "releasing concurrency slots (the server frees them when the lease expires)",
        Box::new(move |client| {
            Box::pin(async move {
                client
                    .global_concurrency_limits()
                    .decrement_with_lease(lease_id)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    );
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let healthy = !self.is_lost();
        let Some(held) = self.held.take() else { return };
        let (releasing, lease) = held.into_release();
        match tokio::runtime::Handle::try_current() {
            // If the runtime is shutting down, the task is dropped at once and `releasing`
            // gives the slots back from a thread of its own.
            Ok(runtime) => {
                runtime.spawn(async move {
                    let lease_id = lease.id;
                    if let Err(e) = releasing.run(lease, healthy).await {
                        tracing::warn!(%lease_id, error = %e, "releasing dropped concurrency slots failed; the server frees them when the lease expires");
                    }
                });
            }
            // No runtime here: dropping `releasing` gives the slots back from a thread.
            Err(_) => drop(releasing),
        }
    }
}
