//! [`SlotGuard`]: slots held under a lease, renewed in the background, given back on release or
//! drop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::queue::{Lease, Queue};
use super::{PARK_TIMEOUT, RELEASE_RETRY_BUDGET};
use crate::error::LeaseLoss;
use crate::retry::Backoff;
use crate::types::MinimalConcurrencyLimitResponse;
use crate::{Client, Error};

/// Slots of global concurrency limits, held under a lease; from [`Acquire`](super::Acquire).
///
/// Give them back with [`release`](SlotGuard::release). Dropped without it (early return, `?`,
/// panic), the guard releases in a background task of the current Tokio runtime; with no runtime
/// left, the server frees the slots when the lease expires.
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
    /// The lease; `renewed_at` is kept current by the renewer through `renewed_at`.
    lease: Lease,
    renewed_at: Arc<std::sync::Mutex<Instant>>,
    queue: Arc<Queue>,
    renewer: JoinHandle<()>,
    lost: watch::Receiver<Option<Loss>>,
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
    /// the background.
    pub(crate) fn start(client: Client, lease: Lease, queue: Arc<Queue>) -> SlotGuard {
        let (sender, lost) = watch::channel(None);
        let renewed_at = Arc::new(std::sync::Mutex::new(lease.renewed_at));
        let renewer = tokio::spawn(renew(
            client.clone(),
            lease.id,
            lease.terms.lease_duration,
            renewed_at.clone(),
            sender,
        ));
        SlotGuard {
            held: Some(Held {
                client,
                lease,
                renewed_at,
                queue,
                renewer,
                lost: lost.clone(),
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

    /// Whether the lease was lost (expired or revoked): the slots may be someone else's now.
    pub fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// `Err(`[`Error::LeaseLost`]`)` once the lease is lost; check it between steps of long work.
    pub fn check(&self) -> Result<(), Error> {
        match &*self.lost.borrow() {
            Some((lease_id, reason)) => Err(Error::LeaseLost {
                lease_id: *lease_id,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Resolves with [`Error::LeaseLost`] when the lease is lost; pending while it is held.
    pub async fn lost(&self) -> Error {
        let mut lost = self.lost.clone();
        let reason = lost.wait_for(Option::is_some).await.ok().and_then(|r| r.clone());
        match reason {
            Some((lease_id, reason)) => Error::LeaseLost { lease_id, reason },
            // The renewer stopped without a loss (the guard is being released): never resolve.
            None => std::future::pending().await,
        }
    }

    /// Gives the slots back and waits until the server has them.
    ///
    /// Returns [`Error::LeaseLost`] if the lease had been lost meanwhile (the work may have
    /// over-run the limit), after releasing what is left.
    pub async fn release(mut self) -> Result<(), Error> {
        let lost = self.check();
        if let Some(held) = self.held.take() {
            held.release().await?;
        }
        lost
    }
}

impl Held {
    /// Hands the lease to a local waiter if one wants it, or gives the slots back on the server.
    async fn release(self) -> Result<(), Error> {
        self.renewer.abort();
        let Held {
            client,
            mut lease,
            renewed_at,
            queue,
            lost,
            ..
        } = self;
        lease.renewed_at = *renewed_at.lock().unwrap_or_else(|p| p.into_inner());
        let healthy = lost.borrow().is_none()
            && lease.renewed_at.elapsed() + PARK_TIMEOUT * 2 < lease.terms.lease_duration;
        if healthy && queue.wants_handoff(&lease) {
            match queue.hand_off(lease).await {
                None => return Ok(()),
                // Nobody took it in time: give it back to the server.
                Some(untaken) => lease = untaken,
            }
        }
        release_on_server(&client, &lease, &queue).await
    }
}

/// Gives a lease's slots back on the server, retrying transient failures for up to
/// [`RELEASE_RETRY_BUDGET`]; then the next local waiter asks at once.
async fn release_on_server(client: &Client, lease: &Lease, queue: &Queue) -> Result<(), Error> {
    let limits = client.global_concurrency_limits();
    let started = Instant::now();
    let mut pauses = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(2), None);
    let result = loop {
        let pause = pauses.next_delay().unwrap_or(Duration::from_secs(2));
        match limits.decrement_with_lease(lease.id).await {
            Err(e) if e.is_transient() && started.elapsed() + pause < RELEASE_RETRY_BUDGET => {
                tracing::debug!(lease_id = %lease.id, error = %e, "releasing slots failed; retrying");
                tokio::time::sleep(pause).await;
            }
            result => break result,
        }
    };
    // Released (or failed to: then the lease expires), the slots are not ours any more.
    queue.on_released(lease.terms.slots);
    result
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let lease_id = held.lease.id;
                    if let Err(e) = held.release().await {
                        tracing::warn!(%lease_id, error = %e, "releasing dropped concurrency slots failed; the server frees them when the lease expires");
                    }
                });
            }
            Err(_) => {
                held.renewer.abort();
                held.queue.on_released(held.lease.terms.slots);
                tracing::warn!(lease_id = %held.lease.id, "slot guard dropped outside a Tokio runtime; the server frees the slots when the lease expires");
            }
        }
    }
}

/// Renews the lease every third of its duration until aborted; reports a loss on 410, or when
/// renewals failed until the lease may have expired.
async fn renew(
    client: Client,
    lease_id: Uuid,
    lease_duration: Duration,
    renewed_at: Arc<std::sync::Mutex<Instant>>,
    lost: watch::Sender<Option<Loss>>,
) {
    let interval = lease_duration / 3;
    let last = *renewed_at.lock().unwrap_or_else(|p| p.into_inner());
    let mut valid_until = last + lease_duration;
    let mut next = last + interval;
    let limits = client.global_concurrency_limits();
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        let remaining = valid_until.saturating_duration_since(sent);
        let attempt = tokio::time::timeout(remaining, limits.renew_lease(lease_id, lease_duration));
        match attempt.await {
            Ok(Ok(())) => {
                // The server's new term began at most when the request was sent.
                *renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = sent;
                valid_until = sent + lease_duration;
                next = sent + interval;
            }
            Ok(Err(Error::LeaseLost { reason, .. })) => {
                tracing::error!(%lease_id, %reason, "concurrency lease lost");
                let _ = lost.send(Some((lease_id, reason)));
                return;
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "renewal timed out".to_string(),
                };
                if Instant::now() >= valid_until {
                    let reason = LeaseLoss::NotRenewed { last_error: error };
                    tracing::error!(%lease_id, %reason, "concurrency lease lost");
                    let _ = lost.send(Some((lease_id, reason)));
                    return;
                }
                tracing::warn!(%lease_id, %error, "renewing the concurrency lease failed; retrying");
                let left = valid_until.saturating_duration_since(Instant::now());
                next = Instant::now() + (left / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
            }
        }
    }
}
