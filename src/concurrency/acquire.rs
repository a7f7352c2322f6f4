//! [`Acquire`]: the options of an acquisition, and the loop that asks the server for a lease in
//! this process's turn.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::guard::SlotGuard;
use super::queue::{Queue, Waiting};
use crate::lease::{
    FIRST_TERM, Lease, LeaseHolder, LeaseTerms, SlotMode, Term, check_lease_duration, checked_slots,
};
use crate::resources::global_concurrency_limits::checked_names;
use crate::retry::{Retries, Verdict};
use crate::waits::{
    CONTENTION_POLL, DEFAULT_SLOT_RETRY_WAIT, LEASE_FAILURE, LOCAL_FULL_RECHECK, MAX_SLOT_RETRY_WAIT,
    SLOT_REFUSAL,
};
use crate::{Client, Error};

/// An acquisition of slots; from [`Client::concurrency`]. Set options, then
/// [`acquire`](Acquire::acquire) a guard (or await the acquisition itself, which does the same)
/// or [`hold`](Acquire::hold) a future while holding.
#[derive(Debug, Clone)]
#[must_use = "await it (or call .acquire()) for a guard, or call .run(future)"]
pub struct Acquire {
    client: Client,
    names: Vec<String>,
    terms: LeaseTerms,
    timeout: Option<Duration>,
    strict: bool,
    max_retries: Option<u32>,
}

impl Acquire {
    pub(crate) fn new(client: Client, names: Vec<String>) -> Acquire {
        Acquire {
            client,
            names,
            terms: LeaseTerms::new(1),
            timeout: None,
            strict: true,
            max_retries: None,
        }
    }

    /// Slots to take on each limit (default 1).
    pub fn slots(mut self, slots: u32) -> Self {
        self.terms.slots = slots;
        self
    }

    /// The lease asked for, 60 s to 24 h (default 300 s); renewed while held.
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.terms.lease_duration = duration;
        self
    }

    /// Give up with [`Error::AcquireTimeout`] after waiting this long (default: wait).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Whether a name without an active limit is an error (default true).
    ///
    /// Strict (the default): an acquisition naming a limit that does not exist or is inactive
    /// fails with [`Error::MissingLimits`], so a typo never silently limits nothing.
    /// `strict(false)` is Prefect's Python default: such names are logged as a warning and not
    /// limited; if no name is limited the guard holds nothing ([`SlotGuard::is_unlimited`]).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Record who holds the lease (`flow_run`, `task_run` or `deployment`, and its id).
    pub fn holder(mut self, holder: LeaseHolder) -> Self {
        self.terms.holder = Some(holder);
        self
    }

    /// Give up with the server's [`Error::SlotsUnavailable`] after this many refusals
    /// (default: keep trying until the timeout).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Waits for the slots and returns a guard holding them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no names, a bad name, 0 slots or a lease duration outside
    /// 60 s to 24 h (nothing sent); [`Error::MissingLimits`] (strict) for a name without an
    /// active limit; [`Error::AcquireTimeout`] when the timeout passes;
    /// [`Error::SlotsUnavailable`] after `max_retries` refusals; [`Error::ServerTooOld`] on a
    /// server without leases; the error of a request that failed for good.
    pub async fn acquire(self) -> Result<SlotGuard, Error> {
        let names = checked_names(&self.names)?;
        checked_slots(self.terms.slots)?;
        check_lease_duration(self.terms.lease_duration)?;
        let started = Instant::now();
        let attempt = self.acquire_in_turn(names.clone());
        match self.timeout {
            None => attempt.await,
            Some(timeout) => match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(Error::AcquireTimeout {
                    names,
                    slots: self.terms.slots,
                    waited: started.elapsed(),
                }),
            },
        }
    }

    /// Holds the slots while `work` runs, then releases them and returns its output.
    ///
    /// `work` is first polled once the slots are held. A timer made outside it starts counting
    /// when made, not then: write `hold(async { sleep(d).await })`, not `hold(sleep(d))`.
    ///
    /// If the lease is lost before `work` finished, the result is [`Error::LeaseLost`], never
    /// `Ok`: while `work` runs it is dropped (cancelled) at once, so it never runs on beyond the
    /// limit. Another failure to release afterwards is logged, not returned: the output is not
    /// lost, and the server frees the slots when the lease expires.
    ///
    /// # Errors
    /// Those of [`acquire`](Acquire::acquire), and [`Error::LeaseLost`] when the lease was lost
    /// before `work` finished.
    pub async fn hold<F: Future>(self, work: F) -> Result<F::Output, Error> {
        let guard = self.acquire().await?;
        let output = tokio::select! {
            biased;
            lost = guard.lost() => return Err(lost),
            output = work => output,
        };
        // Finished: but was the lease held until then?
        guard.check()?;
        match guard.release().await {
            Err(lost @ Error::LeaseLost { .. }) => Err(lost),
            Err(e) => {
                tracing::warn!(error = %e, "releasing concurrency slots failed; the server frees them when the lease expires");
                Ok(output)
            }
            Ok(()) => Ok(output),
        }
    }

    /// Takes `slots` of rate limits (limits with slot decay): waits until the server grants
    /// them; nothing is released afterwards, the slots decay. Prefect's `rate_limit()`.
    /// Strict by default, as [`acquire`](Acquire::acquire): a name without an active limit is
    /// [`Error::MissingLimits`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no names, a bad name or 0 slots (nothing sent);
    /// [`Error::MissingLimits`] (strict) for a name without an active limit;
    /// [`Error::AcquireTimeout`] when the timeout passes; [`Error::SlotsUnavailable`] after
    /// `max_retries` refusals; the error of a request that failed for good.
    pub async fn rate_limit(self) -> Result<(), Error> {
        let names = checked_names(&self.names)?;
        checked_slots(self.terms.slots)?;
        let started = Instant::now();
        let client = self.client.clone();
        let max_retries = self.max_retries;
        let slots = self.terms.slots;
        let strict = self.strict;
        let attempt = async move {
            // Refusals are asked again as each says, `max_retries` times at most; any other
            // failure is returned.
            let (client, names) = (&client, &names);
            let limits = Retries::new(SLOT_REFUSAL.limit(max_retries))
                .run(
                    |e: &Error| match e {
                        Error::SlotsUnavailable { .. } => Verdict::RetryAfter(refusal_wait(e.retry_after())),
                        _ => Verdict::Stop,
                    },
                    |_, _| {},
                    |_| async move {
                        client
                            .global_concurrency_limits()
                            .increment(names, slots, SlotMode::RateLimit)
                            .await
                    },
                )
                .await?;
            let missing = missing_names(names, limits.iter().map(|l| l.name.as_str()));
            if strict && !missing.is_empty() {
                return Err(Error::MissingLimits { names: missing });
            }
            if !missing.is_empty() {
                tracing::warn!(names = ?missing, "no active global concurrency limit with these names; not limiting (strict(false))");
            }
            Ok(())
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

    /// Queues behind the other acquisitions of the same names and terms in this process, then
    /// asks the server until it grants the slots.
    async fn acquire_in_turn(&self, names: Vec<String>) -> Result<SlotGuard, Error> {
        let queue = self.client.coordinator.queue(&names, &self.terms, self.strict);
        let _waiting = Waiting::enter(&queue);
        let _turn = queue.turn.lock().await;
        let mut refusals = 0u32;
        // Failed lease requests in a row (a refusal starts the count again).
        let mut failures = Retries::new(LEASE_FAILURE);
        let mut after_yield = false;
        loop {
            if let Some(lease) = queue.take_parked() {
                return Ok(SlotGuard::start(self.client.clone(), lease, queue.clone()));
            }
            if queue.locally_full(self.terms.slots) {
                // Only a release of ours can free a slot: wait for one, or ask the server anyway
                // after a while (the limit may have been raised).
                let recheck = Instant::now() + LOCAL_FULL_RECHECK;
                while queue.locally_full(self.terms.slots) && !queue.has_parked() {
                    let wake = tokio::time::timeout_at(recheck, queue.released.notified());
                    if wake.await.is_err() {
                        break;
                    }
                }
                if queue.has_parked() {
                    continue;
                }
            }
            if queue.is_asking() {
                // An earlier head's request is still answered: its grant, if any, is handed on.
                let asked = queue.asked.notified();
                tokio::pin!(asked);
                asked.as_mut().enable();
                if queue.is_asking() {
                    tokio::select! {
                        () = asked => {}
                        () = queue.released.notified() => {}
                        () = tokio::time::sleep(LOCAL_FULL_RECHECK) => {}
                    }
                }
                continue;
            }
            if let Some(at) = queue.next_ask() {
                // Refused a moment ago (this acquisition or one before it): wait as the server
                // said, or for a local release.
                let _ = tokio::time::timeout_at(at, queue.released.notified()).await;
                continue;
            }
            if let Some(until) = queue.yield_until() {
                // A slot of ours was left to other processes: do not take it straight back.
                let _ = tokio::time::timeout_at(until, queue.released.notified()).await;
                after_yield = true;
                continue;
            }
            let full_here = queue.locally_full(self.terms.slots);
            let request = self.request_lease(&names, &queue, full_here);
            tokio::pin!(request);
            // While the server answers, the head takes a lease a local guard hands on at once;
            // the grant answered later then passes to the next waiter, or back to the server.
            let answer = loop {
                tokio::select! {
                    biased;
                    answer = &mut request => break answer,
                    () = queue.released.notified() => {
                        if let Some(lease) = queue.take_parked() {
                            return Ok(SlotGuard::start(self.client.clone(), lease, queue.clone()));
                        }
                    }
                }
            };
            match answer {
                Ok(guard) => {
                    if std::mem::take(&mut after_yield) {
                        queue.on_untaken_yield();
                    }
                    return self.checked(guard, &names).await;
                }
                Err(e @ Error::SlotsUnavailable { .. }) => {
                    // Refused after a yield: someone else took the slot, as meant. The wait
                    // before the next ask was set by the request.
                    after_yield = false;
                    refusals += 1;
                    failures.reset();
                    if self.max_retries.is_some_and(|m| refusals > m) {
                        return Err(e);
                    }
                }
                // A broken connection or a failing replica: the slot may have been taken, but
                // then it returns when the unanswered lease's first term ends; the limit holds
                // either way. A server that could not be reached at all was already tried again
                // by the transport, with its whole backoff: that error is returned as it is.
                Err(e) => {
                    let transient = e.is_transient() && !matches!(e, Error::Connect { .. });
                    let Some(pause) = failures.failed(Verdict::retry_if(transient)) else {
                        return Err(e);
                    };
                    tracing::warn!(error = %e, attempt = failures.retries(), "a lease request failed; asking again (a lease the server granted unanswered expires by itself)");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// One `increment-with-lease` request for the shortest first term, in a task of its own
    /// that turns the grant into a guard: if this acquisition is cancelled meanwhile (or took a
    /// lease handed on), the guard nobody receives is dropped, and passes to the next waiter or
    /// back to the server. A refusal sets the queue's wait before its next ask, whoever asks.
    async fn request_lease(
        &self,
        names: &[String],
        queue: &Arc<Queue>,
        full_here: bool,
    ) -> Result<SlotGuard, Error> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let client = self.client.clone();
        let names = names.to_vec();
        let terms = self.terms;
        let queue = queue.clone();
        let asking = queue.asking();
        tokio::spawn(async move {
            let _asking = asking;
            let first = LeaseTerms {
                lease_duration: FIRST_TERM.min(terms.lease_duration),
                ..terms
            };
            let sent = Instant::now();
            let granted = client
                .global_concurrency_limits()
                .lease(names.clone(), first)
                .await;
            if let Err(e @ Error::SlotsUnavailable { .. }) = &granted {
                if !full_here {
                    // This process's guards did not fill the limit: others hold slots.
                    queue.on_remote_refusal(e.retry_after().unwrap_or(DEFAULT_SLOT_RETRY_WAIT));
                }
                let mut base = e.retry_after().unwrap_or(DEFAULT_SLOT_RETRY_WAIT);
                if queue.contended() {
                    // Other processes yield slots at the end of their hand-off terms: look
                    // often enough to find one.
                    base = base.min(CONTENTION_POLL);
                }
                queue.ask_after(Instant::now() + refusal_wait(Some(base)));
            }
            let result = granted.map(|granted| {
                let complete =
                    missing_names(&names, granted.limits.iter().map(|l| l.name.as_str())).is_empty();
                queue.on_granted(terms.slots, granted.limits.iter().map(|l| l.limit).min());
                let term = Term {
                    since: sent,
                    duration: FIRST_TERM.min(terms.lease_duration),
                };
                let lease = Lease::granted(granted.lease_id, granted.limits, terms, term, complete);
                SlotGuard::start(client, lease, queue)
            });
            if let Err(Ok(orphan)) = sender.send(result) {
                tracing::debug!(lease_id = ?orphan.lease_id(), "acquisition cancelled; releasing the lease it was granted");
                drop(orphan);
            }
        });
        receiver.await.unwrap_or_else(|_| {
            Err(Error::RuntimeShutdown {
                what: "a lease request was under way",
            })
        })
    }

    /// Checks which names a granted lease really limits: strict, a missing name is an error;
    /// lenient, it is a warning (and a lease that limits nothing is given back).
    async fn checked(&self, guard: SlotGuard, names: &[String]) -> Result<SlotGuard, Error> {
        let missing = missing_names(names, guard.limits().iter().map(|l| l.name.as_str()));
        if missing.is_empty() {
            return Ok(guard);
        }
        if self.strict || guard.limits().is_empty() {
            // Nothing (or not everything asked for) is limited: hand the lease back.
            if let Err(e) = guard.release().await {
                tracing::warn!(error = %e, "releasing an unneeded lease failed; it expires by itself");
            }
            if self.strict {
                return Err(Error::MissingLimits { names: missing });
            }
            tracing::warn!(names = ?missing, "no active global concurrency limit with these names; not limiting (strict(false))");
            return Ok(SlotGuard::unlimited());
        }
        tracing::warn!(names = ?missing, "no active global concurrency limit with these names; limiting by the others only (strict(false))");
        Ok(guard)
    }
}

impl IntoFuture for Acquire {
    type Output = Result<SlotGuard, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Awaiting an acquisition acquires: `client.concurrency(["db"]).await?` is
    /// `client.concurrency(["db"]).acquire().await?`.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.acquire())
    }
}

/// How long to wait after a refusal: the server's `Retry-After` (or 1 s), with ±20 % jitter so
/// waiters of several processes do not ask in lockstep, at most 30 s at once.
fn refusal_wait(retry_after: Option<Duration>) -> Duration {
    let base = retry_after.unwrap_or(DEFAULT_SLOT_RETRY_WAIT);
    base.mul_f64(0.8 + 0.4 * fastrand::f64()).min(MAX_SLOT_RETRY_WAIT)
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
    fn refusal_waits_follow_the_server_within_bounds() {
        for _ in 0..1000 {
            let wait = refusal_wait(Some(Duration::from_secs(10)));
            assert!(
                wait >= Duration::from_secs(8) && wait <= Duration::from_secs(12),
                "{wait:?}"
            );
            assert!(refusal_wait(Some(Duration::from_secs(3600))) <= MAX_SLOT_RETRY_WAIT);
            assert!(refusal_wait(None) <= DEFAULT_SLOT_RETRY_WAIT.mul_f64(1.2));
        }
    }

    #[test]
    fn missing_names_are_those_not_granted() {
        let asked = vec!["a".to_string(), "b".to_string()];
        assert_eq!(missing_names(&asked, ["a"].into_iter()), ["b"]);
        assert!(missing_names(&asked, ["b", "a"].into_iter()).is_empty());
    }
}
