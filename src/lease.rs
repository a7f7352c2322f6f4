//! The vocabulary of concurrency leases, shared by the global limits handle
//! ([`increment_with_lease`](crate::resources::global_concurrency_limits::GlobalConcurrencyLimits::increment_with_lease)),
//! slot guards ([`Client::concurrency`](crate::Client::concurrency)) and task runs that hold tag
//! limits: who holds a lease, how its slots count, how long it lasts, and the request that asks
//! the server for one.

use std::num::NonZeroU64;
use std::time::Duration;

use uuid::Uuid;

use crate::Error;
use crate::types;

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
