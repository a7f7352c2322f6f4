//! The vocabulary of concurrency leases, shared by the global limits handle
//! ([`increment_with_lease`](crate::resources::global_concurrency_limits::GlobalConcurrencyLimits::increment_with_lease)),
//! slot guards ([`Client::concurrency`](crate::Client::concurrency)), task runs that hold tag
//! limits and served runs that hold a deployment's slot: who holds a lease, how its slots
//! count, how long it lasts, the request that asks the server for one, a lease as this process
//! holds it and its current term, and the one renewer that keeps a lease (a slot guard's or a
//! deployment run's) alive.

use std::future::Future;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::Error;
use crate::error::LeaseLoss;
use crate::retry::{Backoff, Retries, Verdict};
use crate::types;
use crate::waits::HANDOFF_TERM;

/// The shortest lease the server grants.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(60);
/// The longest lease the server grants.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(86_400);
/// The lease asked for unless told otherwise (the server's and Prefect's default).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(300);

/// How slots are counted: held until released, or decaying by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SlotMode {
    /// Slots are held until released.
    #[default]
    Concurrency,
    /// Slots decay at the limit's `slot_decay_per_second`; nothing is released.
    RateLimit,
}

/// Who holds a lease, as shown in Prefect's UI and API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LeaseHolder {
    /// A flow run, by id.
    FlowRun(Uuid),
    /// A task run, by id.
    TaskRun(Uuid),
    /// A deployment, by id.
    Deployment(Uuid),
}

impl LeaseHolder {
    fn to_generated(self) -> types::ConcurrencyLeaseHolder {
        use types::ConcurrencyLeaseHolderType as Kind;
        let (type_, id) = match self {
            LeaseHolder::FlowRun(id) => (Kind::FlowRun, id),
            LeaseHolder::TaskRun(id) => (Kind::TaskRun, id),
            LeaseHolder::Deployment(id) => (Kind::Deployment, id),
        };
        types::ConcurrencyLeaseHolder { id, type_ }
    }
}

/// What a lease is asked for besides the limit names. Slot guards hand a released lease on only
/// to a waiter asking for the same names and terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LeaseTerms {
    pub(crate) slots: u32,
    pub(crate) mode: SlotMode,
    /// The duration asked for (a slot guard's first term may be shorter, see [`FIRST_TERM`]).
    pub(crate) lease_duration: Duration,
    pub(crate) holder: Option<LeaseHolder>,
}

impl LeaseTerms {
    /// One slot of each limit, held for [`DEFAULT_LEASE_DURATION`], by nobody in particular.
    pub(crate) fn new(slots: u32) -> LeaseTerms {
        LeaseTerms {
            slots,
            mode: SlotMode::Concurrency,
            lease_duration: DEFAULT_LEASE_DURATION,
            holder: None,
        }
    }

    /// Checks the terms and builds the `increment-with-lease` body for `names` (checked already).
    pub(crate) fn request(
        &self,
        names: Vec<String>,
    ) -> Result<types::BulkIncrementActiveSlotsWithLeaseBody, Error> {
        check_lease_duration(self.lease_duration)?;
        Ok(types::BulkIncrementActiveSlotsWithLeaseBody {
            holder: self.holder.map(LeaseHolder::to_generated),
            lease_duration: self.lease_duration.as_secs_f64(),
            mode: match self.mode {
                SlotMode::Concurrency => types::BulkIncrementActiveSlotsWithLeaseBodyMode::Concurrency,
                SlotMode::RateLimit => types::BulkIncrementActiveSlotsWithLeaseBodyMode::RateLimit,
            },
            names,
            slots: checked_slots(self.slots)?,
        })
    }
}

/// The first term a slot guard asks of the server, whatever the duration asked for: the shortest
/// it grants. The first renewal (a third of the way in) extends it to the duration asked for,
/// so a grant whose answer is lost holds its slots for at most this (plus the server's 15 s
/// sweep).
pub(crate) const FIRST_TERM: Duration = MIN_LEASE_DURATION;

/// At least one slot.
pub(crate) fn checked_slots(slots: u32) -> Result<NonZeroU64, Error> {
    NonZeroU64::new(u64::from(slots)).ok_or_else(|| Error::invalid("slots", "0; ask for at least 1 slot"))
}

/// A lease the server grants: 60 s to 24 h.
pub(crate) fn check_lease_duration(duration: Duration) -> Result<(), Error> {
    if duration < MIN_LEASE_DURATION || duration > MAX_LEASE_DURATION {
        return Err(Error::invalid(
            "lease duration",
            format!("{duration:?}; the server grants leases of 60 s to 24 h"),
        ));
    }
    Ok(())
}

/// A lease the server granted, as this process holds it.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: uuid::Uuid,
    pub(crate) limits: Vec<crate::types::MinimalConcurrencyLimitResponse>,
    pub(crate) terms: LeaseTerms,
    /// When the server last extended it (granted or renewed) and for how long.
    pub(crate) term: Term,
    /// Whether it holds slots on every name asked for (no name lacked an active limit).
    pub(crate) complete: bool,
    /// How many times it passed from one guard to the next.
    pub(crate) handoffs: u32,
    /// Until when it may pass from guard to guard: its hand-off term, drawn at the grant.
    pub(crate) hand_off_until: Instant,
}

impl Lease {
    /// A lease the server just granted, for its first `term`; its hand-off term is drawn
    /// within ±25 % of [`HANDOFF_TERM`].
    pub(crate) fn granted(
        id: uuid::Uuid,
        limits: Vec<crate::types::MinimalConcurrencyLimitResponse>,
        terms: LeaseTerms,
        term: Term,
        complete: bool,
    ) -> Lease {
        Lease {
            id,
            limits,
            terms,
            term,
            complete,
            handoffs: 0,
            hand_off_until: term.since + HANDOFF_TERM.mul_f64(0.75 + 0.5 * fastrand::f64()),
        }
    }

    /// Whether its hand-off term has run out: it goes back to the server at its next release.
    pub(crate) fn term_over(&self) -> bool {
        Instant::now() >= self.hand_off_until
    }
}

/// The server's current term of a lease: from `since` (when the granting or renewing request
/// was sent, so never later than the server's) for `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Term {
    pub(crate) since: Instant,
    pub(crate) duration: Duration,
}

impl Term {
    /// When the server may consider the lease expired.
    pub(crate) fn ends(&self) -> Instant {
        self.since + self.duration
    }

    /// Whether the lease still has at least `margin` to run.
    pub(crate) fn lasts(&self, margin: Duration) -> bool {
        Instant::now() + margin < self.ends()
    }
}

/// A lease's current term as its [`Renewer`] last extended it, shared with the lease's owner,
/// which reads it (`None` until a term is known: a lease another process's request granted).
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedTerm(Arc<Mutex<Option<Term>>>);

impl SharedTerm {
    /// A term shared from now, starting as `term`.
    pub(crate) fn new(term: Option<Term>) -> SharedTerm {
        SharedTerm(Arc::new(Mutex::new(term)))
    }

    /// The current term, if one is known.
    pub(crate) fn get(&self) -> Option<Term> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, term: Term) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(term);
    }
}

/// When a lease's renewals come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cadence {
    /// A third of the way into the current term (the first, then each renewal's), so a
    /// renewal that fails has the other two thirds to get through.
    ThirdOfTerm,
    /// This long after the last renewal ended (renewed, or given up), and at each wake.
    Every(Duration),
}

/// What the renewer does when a renewal fails past its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// Tries again while the current term lasts, each try cut off at its end; a term that ends
    /// unrenewed is a loss ([`LeaseLoss::NotRenewed`]): the slots may be someone else's now.
    AtTermEnd,
    /// Tries again as the retry schedule allows, then waits for the next renewal: the term
    /// asked for outlasts several renewals, so one that fails is not a loss.
    UntilNextRenewal,
}

/// How a lease is renewed: the term each renewal asks for, when renewals come, the pauses
/// between the tries of a renewal that fails transiently, and when the renewer gives up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RenewalRule {
    /// The term each renewal asks the server for.
    pub(crate) term: Duration,
    /// When renewals come.
    pub(crate) cadence: Cadence,
    /// The pauses between the tries of a renewal that failed transiently (see `src/waits.rs`).
    pub(crate) retry: Backoff,
    /// When a failing renewal is given up, and what that means.
    pub(crate) give_up: GiveUp,
}

/// Why a renewal did not renew.
#[derive(Debug)]
enum Unrenewed {
    /// The server no longer has the lease (410).
    Lost(LeaseLoss),
    /// The renewal failed (or was cut off at the term's end), as this says.
    Failed(String),
}

impl std::fmt::Display for Unrenewed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unrenewed::Lost(reason) => reason.fmt(f),
            Unrenewed::Failed(error) => f.write_str(error),
        }
    }
}

/// The one renewer of a lease: keeps its term (shared with the owner through
/// [`Renewer::term`]), renews it as its [`RenewalRule`] says, tries failed renewals again
/// through [`Retries`], and tells its owner once the lease is lost (the server answered 410, or
/// a rule that gives up at the term's end saw it end unrenewed). Slot guards and deployment
/// runs each start one with their own rule.
#[derive(Debug)]
pub(crate) struct Renewer {
    lease_id: Uuid,
    what: &'static str,
    rule: RenewalRule,
    term: SharedTerm,
    wake: Option<Arc<Notify>>,
}

impl Renewer {
    /// A renewer of lease `lease_id` (called `what` in logs) under `rule`, its term unknown:
    /// the first renewal waits for a wake ([`woken_by`](Renewer::woken_by)), or comes at once
    /// without one.
    pub(crate) fn new(lease_id: Uuid, what: &'static str, rule: RenewalRule) -> Renewer {
        Renewer {
            lease_id,
            what,
            rule,
            term: SharedTerm::default(),
            wake: None,
        }
    }

    /// The lease's current term (the one just granted): the first renewal comes as the rule's
    /// cadence says from it.
    pub(crate) fn with_term(self, term: Term) -> Renewer {
        Renewer {
            term: SharedTerm::new(Some(term)),
            ..self
        }
    }

    /// Renews also at each notification of `wake` (a served run's RUNNING: the lease then
    /// counts from the start of the work).
    pub(crate) fn woken_by(self, wake: Arc<Notify>) -> Renewer {
        Renewer {
            wake: Some(wake),
            ..self
        }
    }

    /// The lease's term as the renewer keeps it, for its owner to read.
    pub(crate) fn term(&self) -> SharedTerm {
        self.term.clone()
    }

    /// Renews until the lease is lost (then `on_lost` hears why, once, and the renewer ends)
    /// or the future is dropped. `renew` asks the server to extend the lease for the given
    /// term ([`renew_lease`](crate::resources::global_concurrency_limits::GlobalConcurrencyLimits::renew_lease)).
    pub(crate) async fn run<F, Fut>(self, mut renew: F, on_lost: impl FnOnce(LeaseLoss))
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let mut due = self.term.get().map(|term| self.due_after(term));
        loop {
            self.wait_until(due).await;
            match self.renew_once(&mut renew).await {
                Ok(term) => self.term.set(term),
                Err(Unrenewed::Lost(reason)) => return on_lost(reason),
                Err(Unrenewed::Failed(last_error)) => match self.rule.give_up {
                    GiveUp::AtTermEnd => return on_lost(LeaseLoss::NotRenewed { last_error }),
                    GiveUp::UntilNextRenewal => {
                        tracing::warn!(lease_id = %self.lease_id, error = %last_error, "renewing the {} failed; trying again at the next renewal", self.what)
                    }
                },
            }
            due = match (self.rule.cadence, self.term.get()) {
                (Cadence::ThirdOfTerm, Some(term)) => Some(self.due_after(term)),
                (Cadence::ThirdOfTerm, None) => None,
                (Cadence::Every(every), _) => Some(Instant::now() + every),
            };
        }
    }

    /// When the renewal after `term`'s start is due, by the cadence.
    fn due_after(&self, term: Term) -> Instant {
        match self.rule.cadence {
            Cadence::ThirdOfTerm => term.since + term.duration / 3,
            Cadence::Every(every) => term.since + every,
        }
    }

    /// Waits until `due`, or a wake, whichever comes first; with no time due, for a wake (or
    /// not at all without one).
    async fn wait_until(&self, due: Option<Instant>) {
        let woken = async {
            match &self.wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        match due {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = woken => {}
            },
            None if self.wake.is_some() => woken.await,
            None => {}
        }
    }

    /// One renewal, tried again along the rule's schedule; the new term on success.
    async fn renew_once<F, Fut>(&self, renew: &mut F) -> Result<Term, Unrenewed>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let asked = self.rule.term;
        let term_end = match self.rule.give_up {
            GiveUp::AtTermEnd => self.term.get().map(|term| term.ends()),
            GiveUp::UntilNextRenewal => None,
        };
        let retries = match term_end {
            Some(end) => Retries::new(self.rule.retry).until(end),
            None => Retries::new(self.rule.retry),
        };
        retries
            .run(
                |unrenewed: &Unrenewed| Verdict::retry_if(matches!(unrenewed, Unrenewed::Failed(_))),
                |error, pause| tracing::warn!(lease_id = %self.lease_id, %error, retry_in = ?pause, "renewing the {} failed; retrying", self.what),
                |_| {
                    // The server's new term begins at most when the request is sent.
                    let sent = Instant::now();
                    let renewal = renew(asked);
                    async move {
                        let answer = match term_end {
                            // Cut off at the term's end: an answer after it comes too late.
                            Some(end) => match tokio::time::timeout(end.saturating_duration_since(sent), renewal).await {
                                Ok(answer) => answer,
                                Err(_) => return Err(Unrenewed::Failed("renewal timed out".into())),
                            },
                            None => renewal.await,
                        };
                        match answer {
                            Ok(()) => Ok(Term {
                                since: sent,
                                duration: asked,
                            }),
                            Err(Error::LeaseLost { reason, .. }) => Err(Unrenewed::Lost(reason)),
                            Err(e) => Err(Unrenewed::Failed(e.to_string())),
                        }
                    }
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(slots: u32, lease_duration: Duration) -> LeaseTerms {
        LeaseTerms {
            slots,
            mode: SlotMode::RateLimit,
            lease_duration,
            holder: None,
        }
    }

    /// A renewal that answers by its number (from 1) as `answer` says, counting the calls.
    fn renewals(
        answer: impl Fn(u32) -> Result<(), Error> + Send + 'static,
    ) -> (
        Arc<std::sync::atomic::AtomicU32>,
        impl FnMut(Duration) -> std::future::Ready<Result<(), Error>>,
    ) {
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = calls.clone();
        let renew = move |_| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            std::future::ready(answer(n))
        };
        (calls, renew)
    }

    fn gone() -> Error {
        Error::LeaseLost {
            lease_id: Uuid::nil(),
            reason: LeaseLoss::Gone {
                path: "/v2/concurrency_limits/leases/x/renew".into(),
            },
        }
    }

    fn third_of_term(term: Duration, retry: Backoff) -> RenewalRule {
        RenewalRule {
            term,
            cadence: Cadence::ThirdOfTerm,
            retry,
            give_up: GiveUp::AtTermEnd,
        }
    }

    fn calls(counter: &std::sync::atomic::AtomicU32) -> u32 {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_lease_is_renewed_every_third_of_its_term_and_its_term_kept() {
        let term = Term {
            since: Instant::now(),
            duration: Duration::from_millis(150),
        };
        let quick = Backoff::constant(Duration::from_millis(5));
        let renewer = Renewer::new(Uuid::nil(), "lease", third_of_term(term.duration, quick)).with_term(term);
        let shared = renewer.term();
        let (counter, renew) = renewals(|_| Ok(()));
        let run = renewer.run(renew, |reason| panic!("lost: {reason}"));
        assert!(
            tokio::time::timeout(Duration::from_millis(270), run)
                .await
                .is_err()
        );
        // Due at 50, 100, 150, 200, 250 ms (fewer on a busy machine, never more).
        assert!((2..=5).contains(&calls(&counter)), "{} renewals", calls(&counter));
        assert!(shared.get().is_some_and(|now| now.since > term.since));
    }

    #[tokio::test]
    async fn a_lease_the_server_no_longer_has_is_lost_at_once() {
        let term = Term {
            since: Instant::now() - Duration::from_secs(1),
            duration: Duration::from_secs(3),
        };
        let quick = Backoff::constant(Duration::from_millis(5));
        let (counter, renew) = renewals(|n| {
            if n == 1 {
                Err(Error::invalid("x", "busy"))
            } else {
                Err(gone())
            }
        });
        let mut lost = None;
        Renewer::new(Uuid::nil(), "lease", third_of_term(term.duration, quick))
            .with_term(term)
            .run(renew, |reason| lost = Some(reason))
            .await;
        assert!(matches!(lost, Some(LeaseLoss::Gone { .. })), "{lost:?}");
        assert_eq!(
            calls(&counter),
            2,
            "a transient failure is tried again; a 410 is not"
        );
    }

    #[tokio::test]
    async fn renewals_failing_until_the_term_ends_lose_the_lease() {
        let started = Instant::now();
        let term = Term {
            since: started,
            duration: Duration::from_millis(300),
        };
        let retry = Backoff::share_of_time_left(4, Duration::from_millis(10), Duration::from_millis(50));
        let (counter, renew) = renewals(|_| Err(Error::invalid("x", "the server is away")));
        let mut lost = None;
        Renewer::new(Uuid::nil(), "lease", third_of_term(term.duration, retry))
            .with_term(term)
            .run(renew, |reason| lost = Some(reason))
            .await;
        assert!(started.elapsed() >= term.duration, "lost before the term ended");
        match lost {
            Some(LeaseLoss::NotRenewed { last_error }) => assert!(last_error.contains("the server is away")),
            other => panic!("{other:?}"),
        }
        assert!(calls(&counter) >= 3, "{} tries", calls(&counter));
    }

    #[tokio::test]
    async fn a_renewal_that_keeps_failing_waits_for_the_next_and_a_wake_brings_it() {
        let rule = RenewalRule {
            term: Duration::from_secs(300),
            cadence: Cadence::Every(Duration::from_secs(60)),
            retry: Backoff::constant(Duration::from_millis(1)).at_most(2),
            give_up: GiveUp::UntilNextRenewal,
        };
        let wake = Arc::new(Notify::new());
        let renewer = Renewer::new(Uuid::nil(), "lease", rule).woken_by(wake.clone());
        let shared = renewer.term();
        let (counter, renew) = renewals(|n| {
            if n <= 3 {
                Err(Error::invalid("x", "busy"))
            } else {
                Ok(())
            }
        });
        let task = tokio::spawn(renewer.run(renew, |reason| panic!("lost: {reason}")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            calls(&counter),
            0,
            "no term known: the first renewal waits for a wake"
        );
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            calls(&counter),
            3,
            "one try and two retries, then the next renewal"
        );
        assert!(shared.get().is_none() && !task.is_finished());
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls(&counter), 4);
        assert_eq!(
            shared.get().map(|term| term.duration),
            Some(Duration::from_secs(300))
        );
        task.abort();
    }

    #[test]
    fn lease_requests_are_checked() {
        let names = || vec!["a".to_string()];
        assert!(terms(1, Duration::from_secs(5)).request(names()).is_err());
        assert!(terms(0, MIN_LEASE_DURATION).request(names()).is_err());
        let body = terms(2, MIN_LEASE_DURATION).request(names()).unwrap();
        assert_eq!(body.slots.get(), 2);
        assert_eq!(body.lease_duration, 60.0);
        let held = LeaseTerms {
            holder: Some(LeaseHolder::TaskRun(Uuid::nil())),
            ..terms(1, MIN_LEASE_DURATION)
        };
        let body = serde_json::to_value(held.request(names()).unwrap()).unwrap();
        assert_eq!(body["holder"]["type"], "task_run");
        assert_eq!(body["mode"], "rate_limit");
    }
}
