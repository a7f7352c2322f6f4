//! Global concurrency limits (v2): named limits on anything, with leases and rate limits.
//!
//! For holding slots around work, prefer [`Client::concurrency`], which takes a lease, renews it
//! and gives the slots back; the methods here are the server's operations one for one.

use std::time::Duration;

use futures_core::Stream;
use uuid::Uuid;

use crate::error::LeaseLoss;
use crate::resources::pagination;
use crate::resources::{call, check_limit, check_name};
use crate::types::{
    self, ConcurrencyLimitV2, ConcurrencyLimitWithLeaseResponse, GlobalConcurrencyLimitResponse,
    MinimalConcurrencyLimitResponse, ReadAllConcurrencyLimitsV2Body,
};
use crate::{Client, Error};

/// The shortest lease the server grants.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(60);
/// The longest lease the server grants.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(86_400);
/// The lease the server grants when none is asked for (and what slot guards ask for).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(300);

/// How slots are counted: held until released, or decaying by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    fn to_json(self) -> serde_json::Value {
        let (kind, id) = match self {
            LeaseHolder::FlowRun(id) => ("flow_run", id),
            LeaseHolder::TaskRun(id) => ("task_run", id),
            LeaseHolder::Deployment(id) => ("deployment", id),
        };
        serde_json::json!({ "type": kind, "id": id })
    }
}

/// Global concurrency limits; from [`Client::global_concurrency_limits`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let limits = client.global_concurrency_limits();
/// limits.create("database", 5).send().await?;
/// limits.create("external-api", 10).slot_decay_per_second(2.0).send().await?;
/// limits.update_by_name("database").limit(8).send().await?;
/// assert_eq!(limits.get_by_name("database").await?.limit, 8);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GlobalConcurrencyLimits<'a> {
    client: &'a Client,
}

impl<'a> GlobalConcurrencyLimits<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        GlobalConcurrencyLimits { client }
    }

    /// A new active limit `name` of `limit` slots; set its options, then
    /// [`send`](CreateLimit::send). [`Error::Conflict`] if the name exists.
    pub fn create(&self, name: &str, limit: i64) -> CreateLimit {
        CreateLimit {
            client: self.client.clone(),
            name: name.to_string(),
            limit,
            active: true,
            slot_decay_per_second: 0.0,
        }
    }

    /// The limit with this id.
    pub async fn get(&self, id: Uuid) -> Result<GlobalConcurrencyLimitResponse, Error> {
        call!(self.client, read_concurrency_limit_v2(&id.to_string()))
    }

    /// The limit named `name`.
    pub async fn get_by_name(&self, name: &str) -> Result<GlobalConcurrencyLimitResponse, Error> {
        check_name("limit name", name)?;
        call!(self.client, read_concurrency_limit_v2(name))
    }

    /// Changes the limit with this id; fields not set keep their value.
    pub fn update(&self, id: Uuid) -> UpdateLimit {
        UpdateLimit::new(self.client, id.to_string())
    }

    /// Changes the limit named `name`; fields not set keep their value.
    pub fn update_by_name(&self, name: &str) -> UpdateLimit {
        UpdateLimit::new(self.client, name.to_string())
    }

    /// Deletes the limit with this id.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_concurrency_limit_v2(&id.to_string())).map(drop)
    }

    /// Deletes the limit named `name`.
    pub async fn delete_by_name(&self, name: &str) -> Result<(), Error> {
        check_name("limit name", name)?;
        call!(self.client, delete_concurrency_limit_v2(name)).map(drop)
    }

    /// One page of limits (the body's `limit`, at most 200, and `offset` apply).
    pub async fn list_page(
        &self,
        filter: &ReadAllConcurrencyLimitsV2Body,
    ) -> Result<Vec<GlobalConcurrencyLimitResponse>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every limit (`ReadAllConcurrencyLimitsV2Body::default()`), page after page as consumed.
    pub fn stream(
        &self,
        filter: ReadAllConcurrencyLimitsV2Body,
    ) -> impl Stream<Item = Result<GlobalConcurrencyLimitResponse, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
    }

    /// Takes `slots` of each named limit without a lease ([`Error::SlotsUnavailable`] when
    /// taken). Slots taken this way are only freed by [`decrement`](Self::decrement) or decay:
    /// prefer [`Client::concurrency`].
    pub async fn increment(
        &self,
        names: &[&str],
        slots: u32,
        mode: SlotMode,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let body: types::BulkIncrementActiveSlotsBody = serde_json::from_value(serde_json::json!({
            "names": checked_names(names)?,
            "slots": checked_slots(slots)?,
            "mode": mode_name(mode),
        }))
        .map_err(|e| Error::invalid("increment", e.to_string()))?;
        call!(self.client, bulk_increment_active_slots(&body))
    }

    /// Gives back `slots` of each named limit, held for `occupancy` (the server's `Retry-After`
    /// advice follows how long slots are held).
    pub async fn decrement(
        &self,
        names: &[&str],
        slots: u32,
        occupancy: Duration,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let body: types::BulkDecrementActiveSlotsBody = serde_json::from_value(serde_json::json!({
            "names": checked_names(names)?,
            "slots": checked_slots(slots)?,
            "occupancy_seconds": occupancy.as_secs_f64(),
        }))
        .map_err(|e| Error::invalid("decrement", e.to_string()))?;
        call!(self.client, bulk_decrement_active_slots(&body))
    }

    /// Takes `slots` of each named limit under a lease; set its options, then
    /// [`send`](IncrementWithLease::send).
    ///
    /// The answer lists the limits that applied: names with no active limit are missing from
    /// it (and then nothing limits the caller on them). [`Error::SlotsUnavailable`] when taken.
    pub fn increment_with_lease(&self, names: &[&str], slots: u32) -> IncrementWithLease {
        IncrementWithLease {
            client: self.client.clone(),
            names: names.iter().map(|n| n.to_string()).collect(),
            terms: LeaseRequest {
                slots,
                mode: SlotMode::Concurrency,
                lease_duration: DEFAULT_LEASE_DURATION,
                holder: None,
            },
        }
    }

    /// Gives back the slots of a lease and ends it.
    pub async fn decrement_with_lease(&self, lease_id: Uuid) -> Result<(), Error> {
        let body = types::BulkDecrementActiveSlotsWithLeaseBody { lease_id };
        call!(self.client, bulk_decrement_active_slots_with_lease(&body))
            .map(drop)
            .map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE))
    }

    /// Extends a lease to `lease_duration` from now. A lease that has expired or was revoked
    /// answers 410, returned as [`Error::LeaseLost`].
    pub async fn renew_lease(&self, lease_id: Uuid, lease_duration: Duration) -> Result<(), Error> {
        check_lease_duration(lease_duration)?;
        let body = types::RenewConcurrencyLeaseBody {
            lease_duration: lease_duration.as_secs_f64(),
        };
        match call!(self.client, renew_concurrency_lease(&lease_id, &body)) {
            Err(Error::Api(api)) if api.status.as_u16() == 410 => Err(Error::LeaseLost {
                lease_id,
                reason: LeaseLoss::Gone { path: api.path },
            }),
            other => other.map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE)),
        }
    }
}

/// A global limit to create; from [`GlobalConcurrencyLimits::create`].
#[derive(Debug, Clone)]
#[must_use = "call .send().await to create the limit"]
pub struct CreateLimit {
    client: Client,
    name: String,
    limit: i64,
    active: bool,
    slot_decay_per_second: f64,
}

impl CreateLimit {
    /// Whether the limit is enforced (default true; an inactive limit limits nothing).
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }

    /// Slots freed per second by themselves (default 0); above 0 makes the limit usable as a
    /// rate limit.
    pub fn slot_decay_per_second(mut self, decay: f64) -> Self {
        self.slot_decay_per_second = decay;
        self
    }

    /// Creates the limit.
    pub async fn send(self) -> Result<ConcurrencyLimitV2, Error> {
        check_name("limit name", &self.name)?;
        check_limit(self.limit)?;
        check_decay(self.slot_decay_per_second)?;
        let body: types::ConcurrencyLimitV2Create = serde_json::from_value(serde_json::json!({
            "name": self.name,
            "limit": self.limit,
            "active": self.active,
            "slot_decay_per_second": self.slot_decay_per_second,
        }))
        .map_err(|e| Error::invalid("limit", e.to_string()))?;
        call!(self.client, create_concurrency_limit_v2(&body))
    }
}

/// Changes to a global limit; from [`GlobalConcurrencyLimits::update`] or
/// [`update_by_name`](GlobalConcurrencyLimits::update_by_name). Fields not set keep their value.
#[derive(Debug, Clone)]
#[must_use = "call .send().await to change the limit"]
pub struct UpdateLimit {
    client: Client,
    id_or_name: String,
    name: Option<String>,
    limit: Option<i64>,
    active: Option<bool>,
    active_slots: Option<u64>,
    slot_decay_per_second: Option<f64>,
}

impl UpdateLimit {
    fn new(client: &Client, id_or_name: String) -> Self {
        UpdateLimit {
            client: client.clone(),
            id_or_name,
            name: None,
            limit: None,
            active: None,
            active_slots: None,
            slot_decay_per_second: None,
        }
    }

    /// A new name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A new number of slots.
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Enforce the limit, or not.
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Overwrites the count of slots in use (0 frees all).
    pub fn active_slots(mut self, slots: u64) -> Self {
        self.active_slots = Some(slots);
        self
    }

    /// A new decay rate, in slots per second.
    pub fn slot_decay_per_second(mut self, decay: f64) -> Self {
        self.slot_decay_per_second = Some(decay);
        self
    }

    /// Sends the changes.
    pub async fn send(self) -> Result<(), Error> {
        check_name("limit id or name", &self.id_or_name)?;
        if let Some(limit) = self.limit {
            check_limit(limit)?;
        }
        if let Some(name) = &self.name {
            check_name("limit name", name)?;
        }
        if let Some(decay) = self.slot_decay_per_second {
            check_decay(decay)?;
        }
        let body: types::ConcurrencyLimitV2Update = serde_json::from_value(serde_json::json!({
            "name": self.name,
            "limit": self.limit,
            "active": self.active,
            "active_slots": self.active_slots,
            "slot_decay_per_second": self.slot_decay_per_second,
        }))
        .map_err(|e| Error::invalid("update", e.to_string()))?;
        call!(self.client, update_concurrency_limit_v2(&self.id_or_name, &body)).map(drop)
    }
}

/// What a lease is asked for, beyond the names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LeaseRequest {
    pub(crate) slots: u32,
    pub(crate) mode: SlotMode,
    pub(crate) lease_duration: Duration,
    pub(crate) holder: Option<LeaseHolder>,
}

/// Slots under a lease; from [`GlobalConcurrencyLimits::increment_with_lease`].
#[derive(Debug, Clone)]
#[must_use = "call .send().await to take the slots"]
pub struct IncrementWithLease {
    client: Client,
    names: Vec<String>,
    terms: LeaseRequest,
}

impl IncrementWithLease {
    /// How the slots count (default [`SlotMode::Concurrency`]).
    pub fn mode(mut self, mode: SlotMode) -> Self {
        self.terms.mode = mode;
        self
    }

    /// The lease, 60 s to 24 h (default [`DEFAULT_LEASE_DURATION`]).
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.terms.lease_duration = duration;
        self
    }

    /// Who holds the lease, as shown in Prefect's UI and API.
    pub fn holder(mut self, holder: LeaseHolder) -> Self {
        self.terms.holder = Some(holder);
        self
    }

    /// Asks the server for the slots.
    pub async fn send(self) -> Result<ConcurrencyLimitWithLeaseResponse, Error> {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let body = lease_body(&checked_names(&names)?, self.terms)?;
        call!(self.client, bulk_increment_active_slots_with_lease(&body))
            .map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE))
    }
}

/// The lease operations, for [`Error::ServerTooOld`].
const LEASES: &str =
    "concurrency leases (/v2/concurrency_limits/increment-with-lease, renew, decrement-with-lease)";
/// The Prefect release that added them.
const LEASES_SINCE: &str = "3.4.9";

pub(crate) fn lease_body(
    names: &[String],
    terms: LeaseRequest,
) -> Result<types::BulkIncrementActiveSlotsWithLeaseBody, Error> {
    check_lease_duration(terms.lease_duration)?;
    serde_json::from_value(serde_json::json!({
        "names": names,
        "slots": checked_slots(terms.slots)?,
        "mode": mode_name(terms.mode),
        "lease_duration": terms.lease_duration.as_secs_f64(),
        "holder": terms.holder.map(LeaseHolder::to_json),
    }))
    .map_err(|e| Error::invalid("lease request", e.to_string()))
}

fn mode_name(mode: SlotMode) -> &'static str {
    match mode {
        SlotMode::Concurrency => "concurrency",
        SlotMode::RateLimit => "rate_limit",
    }
}

pub(crate) fn checked_names(names: &[&str]) -> Result<Vec<String>, Error> {
    if names.is_empty() {
        return Err(Error::invalid(
            "limit names",
            "no names given; name at least one limit",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        check_name("limit name", name)?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

pub(crate) fn checked_slots(slots: u32) -> Result<u32, Error> {
    if slots == 0 {
        return Err(Error::invalid("slots", "0; ask for at least 1 slot"));
    }
    Ok(slots)
}

pub(crate) fn check_lease_duration(duration: Duration) -> Result<(), Error> {
    if duration < MIN_LEASE_DURATION || duration > MAX_LEASE_DURATION {
        return Err(Error::invalid(
            "lease duration",
            format!("{duration:?}; the server grants leases of 60 s to 24 h"),
        ));
    }
    Ok(())
}

fn check_decay(decay: f64) -> Result<(), Error> {
    if !decay.is_finite() || decay < 0.0 {
        return Err(Error::invalid(
            "slot decay",
            format!("{decay}; use a finite number of slots per second >= 0"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(slots: u32, lease_duration: Duration) -> LeaseRequest {
        LeaseRequest {
            slots,
            mode: SlotMode::RateLimit,
            lease_duration,
            holder: None,
        }
    }

    #[test]
    fn lease_requests_are_checked() {
        let names = vec!["a".to_string()];
        assert!(lease_body(&names, terms(1, Duration::from_secs(5))).is_err());
        assert!(lease_body(&names, terms(0, MIN_LEASE_DURATION)).is_err());
        let body = lease_body(&names, terms(2, MIN_LEASE_DURATION)).unwrap();
        assert_eq!(body.slots.get(), 2);
        assert_eq!(body.lease_duration, 60.0);
        let held = LeaseRequest {
            holder: Some(LeaseHolder::TaskRun(Uuid::nil())),
            ..terms(1, MIN_LEASE_DURATION)
        };
        let body = serde_json::to_value(lease_body(&names, held).unwrap()).unwrap();
        assert_eq!(body["holder"]["type"], "task_run");
    }

    #[test]
    fn names_are_checked_and_deduplicated() {
        assert_eq!(checked_names(&["a", "b", "a"]).unwrap(), ["a", "b"]);
        assert!(checked_names(&[]).is_err());
        assert!(checked_names(&["a", "x/y"]).is_err());
        assert!(check_decay(f64::NAN).is_err());
        assert!(check_decay(-1.0).is_err());
    }
}
