//! Global concurrency limits (v2): named limits on anything, with leases and rate limits.
//!
//! For holding slots around work, prefer [`Client::concurrency`], which takes a lease, renews it
//! and gives the slots back; the methods here are the server's operations one for one.

use std::time::Duration;

use uuid::Uuid;

use crate::error::LeaseLoss;
use crate::lease::{LeaseHolder, LeaseTerms, SlotMode, check_lease_duration, checked_slots};
use crate::query::GlobalConcurrencyLimitQuery;
use crate::resources::{call, check_limit, check_name, generated_name, send_on_await};
use crate::types::{
    self, ConcurrencyLimitV2, ConcurrencyLimitWithLeaseResponse, GlobalConcurrencyLimitResponse,
    MinimalConcurrencyLimitResponse,
};
use crate::{Client, Error};

/// Global concurrency limits; from [`Client::global_concurrency_limits`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let limits = client.global_concurrency_limits();
/// limits.create("database", 5).await?;
/// limits.create("external-api", 10).slot_decay_per_second(2.0).await?;
/// limits.update_by_name("database").limit(8).await?;
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

    /// A new active limit `name` of `limit` slots; set its options, then await it (or
    /// [`send`](CreateLimit::send) it).
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
    ///
    /// # Errors
    /// [`Error::NotFound`] when no limit has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<GlobalConcurrencyLimitResponse, Error> {
        call!(self.client, read_concurrency_limit_v2(&id.to_string()))
    }

    /// The limit named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_concurrency_limit_v2(&id.to_string())).map(drop)
    }

    /// Deletes the limit named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete_by_name(&self, name: &str) -> Result<(), Error> {
        check_name("limit name", name)?;
        call!(self.client, delete_concurrency_limit_v2(name)).map(drop)
    }

    crate::resources::list_verbs!("global concurrency limits", GlobalConcurrencyLimitQuery => GlobalConcurrencyLimitResponse);

    /// Takes `slots` of each named limit without a lease ([`Error::SlotsUnavailable`] when
    /// taken). Slots taken this way are only freed by [`decrement`](Self::decrement) or decay:
    /// prefer [`Client::concurrency`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no names, a bad name or 0 slots (nothing sent);
    /// [`Error::SlotsUnavailable`] when a limit is full; any error of the request.
    pub async fn increment(
        &self,
        names: impl IntoIterator<Item = impl AsRef<str>>,
        slots: u32,
        mode: SlotMode,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let body = types::BulkIncrementActiveSlotsBody {
            create_if_missing: None,
            mode: match mode {
                SlotMode::Concurrency => types::BulkIncrementActiveSlotsBodyMode::Concurrency,
                SlotMode::RateLimit => types::BulkIncrementActiveSlotsBodyMode::RateLimit,
            },
            names: checked_names(names)?,
            slots: checked_slots(slots)?,
        };
        call!(self.client, bulk_increment_active_slots(&body))
    }

    /// Gives back `slots` of each named limit, held for `occupancy` (the server's `Retry-After`
    /// advice follows how long slots are held).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no names, a bad name or 0 slots (nothing sent); any error of
    /// the request.
    pub async fn decrement(
        &self,
        names: impl IntoIterator<Item = impl AsRef<str>>,
        slots: u32,
        occupancy: Duration,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let body = types::BulkDecrementActiveSlotsBody {
            create_if_missing: None,
            names: checked_names(names)?,
            occupancy_seconds: Some(occupancy.as_secs_f64()),
            slots: checked_slots(slots)?,
        };
        call!(self.client, bulk_decrement_active_slots(&body))
    }

    /// Takes `slots` of each named limit under a lease; set its options, then await it (or
    /// [`send`](IncrementWithLease::send) it).
    ///
    /// The answer lists the limits that applied: names with no active limit are missing from
    /// it (and then nothing limits the caller on them). [`Error::SlotsUnavailable`] when taken.
    pub fn increment_with_lease(
        &self,
        names: impl IntoIterator<Item = impl AsRef<str>>,
        slots: u32,
    ) -> IncrementWithLease {
        IncrementWithLease {
            client: self.client.clone(),
            names: names.into_iter().map(|n| n.as_ref().to_string()).collect(),
            terms: LeaseTerms::new(slots),
        }
    }

    /// `increment-with-lease` for names checked already.
    pub(crate) async fn lease(
        &self,
        names: Vec<String>,
        terms: LeaseTerms,
    ) -> Result<ConcurrencyLimitWithLeaseResponse, Error> {
        let body = terms.request(names)?;
        call!(self.client, bulk_increment_active_slots_with_lease(&body))
            .map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE))
    }

    /// Gives back the slots of a lease and ends it.
    ///
    /// # Errors
    /// [`Error::ServerTooOld`] on a server without leases; any other error of the request.
    pub async fn decrement_with_lease(&self, lease_id: Uuid) -> Result<(), Error> {
        let body = types::BulkDecrementActiveSlotsWithLeaseBody { lease_id };
        call!(self.client, bulk_decrement_active_slots_with_lease(&body))
            .map(drop)
            .map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE))
    }

    /// Extends a lease to `lease_duration` from now.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the lease has expired or was revoked (410);
    /// [`Error::InvalidInput`] for a duration outside 60 s to 24 h; [`Error::ServerTooOld`] on
    /// a server without leases; any error of the request.
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
#[must_use = "await it (or call .send().await) to create the limit"]
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, limit or decay (nothing sent);
    /// [`Error::Conflict`] if a limit of that name exists; any error of the request.
    pub async fn send(self) -> Result<ConcurrencyLimitV2, Error> {
        let body = types::ConcurrencyLimitV2Create {
            active: self.active,
            active_slots: 0,
            denied_slots: 0,
            limit: checked_limit(self.limit)?,
            name: generated_name("limit name", &self.name)?,
            slot_decay_per_second: check_decay(self.slot_decay_per_second)?,
        };
        call!(self.client, create_concurrency_limit_v2(&body))
    }
}

/// Changes to a global limit; from [`GlobalConcurrencyLimits::update`] or
/// [`update_by_name`](GlobalConcurrencyLimits::update_by_name). Fields not set keep their value.
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to change the limit"]
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, limit or decay (nothing sent);
    /// [`Error::NotFound`] for no such limit; any error of the request.
    pub async fn send(self) -> Result<(), Error> {
        check_name("limit id or name", &self.id_or_name)?;
        let body = types::ConcurrencyLimitV2Update {
            active: self.active,
            active_slots: self.active_slots,
            denied_slots: None,
            limit: self.limit.map(checked_limit).transpose()?,
            name: self
                .name
                .as_deref()
                .map(|name| generated_name("limit name", name))
                .transpose()?,
            slot_decay_per_second: self.slot_decay_per_second.map(check_decay).transpose()?,
        };
        call!(self.client, update_concurrency_limit_v2(&self.id_or_name, &body)).map(drop)
    }
}

/// Slots under a lease; from [`GlobalConcurrencyLimits::increment_with_lease`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to take the slots"]
pub struct IncrementWithLease {
    client: Client,
    names: Vec<String>,
    terms: LeaseTerms,
}

impl IncrementWithLease {
    /// How the slots count (default [`SlotMode::Concurrency`]).
    pub fn mode(mut self, mode: SlotMode) -> Self {
        self.terms.mode = mode;
        self
    }

    /// The lease, 60 s to 24 h (default
    /// [`DEFAULT_LEASE_DURATION`](crate::lease::DEFAULT_LEASE_DURATION)).
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no names, a bad name, 0 slots or a duration outside 60 s to
    /// 24 h (nothing sent); [`Error::SlotsUnavailable`] when a limit is full;
    /// [`Error::ServerTooOld`] on a server without leases; any error of the request.
    pub async fn send(self) -> Result<ConcurrencyLimitWithLeaseResponse, Error> {
        let names = checked_names(&self.names)?;
        self.client
            .global_concurrency_limits()
            .lease(names, self.terms)
            .await
    }
}

send_on_await! {
    CreateLimit => ConcurrencyLimitV2;
    UpdateLimit => ();
    IncrementWithLease => ConcurrencyLimitWithLeaseResponse;
}

/// The lease operations, for [`Error::ServerTooOld`].
const LEASES: &str =
    "concurrency leases (/v2/concurrency_limits/increment-with-lease, renew, decrement-with-lease)";
/// The Prefect release that added them.
const LEASES_SINCE: &str = "3.4.9";

/// The names, checked and without repeats: at least one.
pub(crate) fn checked_names(names: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref();
        check_name("limit name", name)?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "limit names",
            "no names given; name at least one limit",
        ));
    }
    Ok(out)
}

/// A limit the server stores: 0 to [`MAX_LIMIT`](crate::resources::MAX_LIMIT).
fn checked_limit(limit: i64) -> Result<u64, Error> {
    check_limit(limit)?;
    Ok(limit.unsigned_abs())
}

fn check_decay(decay: f64) -> Result<f64, Error> {
    if !decay.is_finite() || decay < 0.0 {
        return Err(Error::invalid(
            "slot decay",
            format!("{decay}; use a finite number of slots per second >= 0"),
        ));
    }
    Ok(decay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_deduplicated() {
        assert_eq!(checked_names(["a", "b", "a"]).unwrap(), ["a", "b"]);
        assert_eq!(checked_names(&["a".to_string()]).unwrap(), ["a"]);
        assert!(checked_names(Vec::<String>::new()).is_err());
        assert!(checked_names(["a", "x/y"]).is_err());
        assert!(check_decay(f64::NAN).is_err());
        assert!(check_decay(-1.0).is_err());
    }
}
