//! [`Acquire`]: the options of an acquisition, and the loop that asks the server for a lease in
//! this process's turn.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::guard::SlotGuard;
use super::queue::{Lease, LeaseTerms, Queue, Waiting};
use super::{
    DEFAULT_LEASE_DURATION, DEFAULT_RETRY_WAIT, LOCAL_FULL_RECHECK, MAX_FAILURE_WAIT, MAX_TRANSIENT_FAILURES,
    failure_backoff,
};
use crate::resources::global_concurrency_limits::{
    LeaseHolder, SlotMode, check_lease_duration, checked_names, checked_slots,
};
use crate::types::ConcurrencyLimitWithLeaseResponse;
use crate::{Client, Error};

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

/// The names asked for that the server's answer does not list.
fn missing_names<'a>(asked: &[String], granted: impl Iterator<Item = &'a str>) -> Vec<String> {
    let granted: Vec<&str> = granted.collect();
    asked
        .iter()
        .filter(|n| !granted.contains(&n.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_are_those_not_granted() {
        let asked = vec!["a".to_string(), "b".to_string()];
        assert_eq!(missing_names(&asked, ["a"].into_iter()), ["b"]);
        assert!(missing_names(&asked, ["b", "a"].into_iter()).is_empty());
    }
}
