//! Global concurrency limits (v2): named limits on anything, with leases and rate limits.
//!
//! For holding slots around work, prefer [`Client::concurrency`], which takes a lease, renews it
//! and gives the slots back; the methods here are the server's operations one for one.

use std::time::Duration;

use futures_core::Stream;
use futures_util::TryStreamExt;
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::pagination::paginate;
use crate::resources::{check_limit, check_name};
use crate::types::{
    self, ConcurrencyLimitV2, ConcurrencyLimitWithLeaseResponse, GlobalConcurrencyLimitResponse,
    MinimalConcurrencyLimitResponse,
};
use crate::{Client, Error};

/// The most limits one page of [`GlobalConcurrencyLimits::list_page`] returns (the server's cap).
pub const PAGE_SIZE: u32 = 200;
/// The shortest lease the server grants.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(60);
/// The longest lease the server grants.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(86_400);

/// How slots are counted: held until released, or decaying by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotMode {
    /// Slots are held until released.
    #[default]
    Concurrency,
    /// Slots decay at the limit's `slot_decay_per_second`; nothing is released.
    RateLimit,
}

/// Global concurrency limits; from [`Client::global_concurrency_limits`].
#[derive(Clone, Copy, Debug)]
pub struct GlobalConcurrencyLimits<'a> {
    client: &'a Client,
}

/// Settings of a new global limit beyond its name and size.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitOptions {
    /// Whether the limit is enforced (an inactive limit limits nothing).
    pub active: bool,
    /// Slots freed per second by themselves; above 0 makes the limit usable as a rate limit.
    pub slot_decay_per_second: f64,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            active: true,
            slot_decay_per_second: 0.0,
        }
    }
}

impl<'a> GlobalConcurrencyLimits<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        GlobalConcurrencyLimits { client }
    }

    /// Creates an active limit `name` of `limit` slots; [`Error::Conflict`] if the name exists.
    pub async fn create(&self, name: &str, limit: i64) -> Result<ConcurrencyLimitV2, Error> {
        self.create_with(name, limit, LimitOptions::default()).await
    }

    /// Creates a limit with options (inactive, or with slot decay for rate limiting).
    pub async fn create_with(
        &self,
        name: &str,
        limit: i64,
        options: LimitOptions,
    ) -> Result<ConcurrencyLimitV2, Error> {
        check_name("limit name", name)?;
        check_limit(limit)?;
        check_decay(options.slot_decay_per_second)?;
        let body: types::ConcurrencyLimitV2Create = serde_json::from_value(serde_json::json!({
            "name": name,
            "limit": limit,
            "active": options.active,
            "slot_decay_per_second": options.slot_decay_per_second,
        }))
        .map_err(|e| Error::invalid("limit", e.to_string()))?;
        unwrap_response(
            "create_concurrency_limit_v2",
            self.client.raw().create_concurrency_limit_v2(&body).await,
        )
        .await
    }

    /// Reads a limit by id or name; [`Error::NotFound`] when there is none.
    pub async fn read(&self, id_or_name: &str) -> Result<GlobalConcurrencyLimitResponse, Error> {
        check_id_or_name(id_or_name)?;
        unwrap_response(
            "read_concurrency_limit_v2",
            self.client.raw().read_concurrency_limit_v2(id_or_name).await,
        )
        .await
    }

    /// Changes a limit's settings; fields left `None` keep their value.
    pub async fn update(&self, id_or_name: &str, update: LimitUpdate) -> Result<(), Error> {
        check_id_or_name(id_or_name)?;
        if let Some(limit) = update.limit {
            check_limit(limit)?;
        }
        if let Some(name) = &update.name {
            check_name("limit name", name)?;
        }
        if let Some(decay) = update.slot_decay_per_second {
            check_decay(decay)?;
        }
        let body: types::ConcurrencyLimitV2Update = serde_json::from_value(serde_json::json!({
            "name": update.name,
            "limit": update.limit,
            "active": update.active,
            "active_slots": update.active_slots,
            "slot_decay_per_second": update.slot_decay_per_second,
        }))
        .map_err(|e| Error::invalid("update", e.to_string()))?;
        unwrap_response(
            "update_concurrency_limit_v2",
            self.client
                .raw()
                .update_concurrency_limit_v2(id_or_name, &body)
                .await,
        )
        .await
        .map(drop)
    }

    /// Deletes a limit by id or name.
    pub async fn delete(&self, id_or_name: &str) -> Result<(), Error> {
        check_id_or_name(id_or_name)?;
        unwrap_response(
            "delete_concurrency_limit_v2",
            self.client.raw().delete_concurrency_limit_v2(id_or_name).await,
        )
        .await
        .map(drop)
    }

    /// One page of limits: at most `limit` (up to [`PAGE_SIZE`]) from `offset`.
    pub async fn list_page(
        &self,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<GlobalConcurrencyLimitResponse>, Error> {
        if limit == 0 || limit > PAGE_SIZE {
            return Err(Error::invalid(
                "page size",
                format!("{limit}; ask for 1 to {PAGE_SIZE} per page"),
            ));
        }
        let body = types::ReadAllConcurrencyLimitsV2Body {
            limit: Some(i64::from(limit)),
            offset,
        };
        unwrap_response(
            "read_all_concurrency_limits_v2",
            self.client.raw().read_all_concurrency_limits_v2(&body).await,
        )
        .await
    }

    /// Every limit, reading page after page.
    pub async fn list(&self) -> Result<Vec<GlobalConcurrencyLimitResponse>, Error> {
        self.stream().try_collect().await
    }

    /// Every limit as a stream, reading page after page as it is consumed.
    pub fn stream(&self) -> impl Stream<Item = Result<GlobalConcurrencyLimitResponse, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(PAGE_SIZE, move |offset, limit| {
            let client = client.clone();
            async move { client.global_concurrency_limits().list_page(offset, limit).await }
        })
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
        unwrap_response(
            "bulk_increment_active_slots",
            self.client.raw().bulk_increment_active_slots(&body).await,
        )
        .await
    }

    /// Gives back `slots` of each named limit, recording how long they were held.
    pub async fn decrement(
        &self,
        names: &[&str],
        slots: u32,
        occupancy: Option<Duration>,
    ) -> Result<Vec<MinimalConcurrencyLimitResponse>, Error> {
        let body: types::BulkDecrementActiveSlotsBody = serde_json::from_value(serde_json::json!({
            "names": checked_names(names)?,
            "slots": checked_slots(slots)?,
            "occupancy_seconds": occupancy.map(|d| d.as_secs_f64()),
        }))
        .map_err(|e| Error::invalid("decrement", e.to_string()))?;
        unwrap_response(
            "bulk_decrement_active_slots",
            self.client.raw().bulk_decrement_active_slots(&body).await,
        )
        .await
    }

    /// Takes `slots` of each named limit under a lease of `lease_duration` (60 s to 24 h).
    ///
    /// The answer lists the limits that applied: names with no active limit are missing from
    /// it (and then nothing limits the caller on them). [`Error::SlotsUnavailable`] when taken.
    pub async fn increment_with_lease(
        &self,
        names: &[&str],
        slots: u32,
        mode: SlotMode,
        lease_duration: Duration,
        holder: Option<LeaseHolder>,
    ) -> Result<ConcurrencyLimitWithLeaseResponse, Error> {
        let body = lease_body(&checked_names(names)?, slots, mode, lease_duration, holder)?;
        unwrap_response(
            "bulk_increment_active_slots_with_lease",
            self.client
                .raw()
                .bulk_increment_active_slots_with_lease(&body)
                .await,
        )
        .await
        .map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE))
    }

    /// Gives back the slots of a lease and ends it.
    pub async fn decrement_with_lease(&self, lease_id: Uuid) -> Result<(), Error> {
        let body = types::BulkDecrementActiveSlotsWithLeaseBody { lease_id };
        unwrap_response(
            "bulk_decrement_active_slots_with_lease",
            self.client
                .raw()
                .bulk_decrement_active_slots_with_lease(&body)
                .await,
        )
        .await
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
        match unwrap_response(
            "renew_concurrency_lease",
            self.client.raw().renew_concurrency_lease(&lease_id, &body).await,
        )
        .await
        {
            Err(Error::Api(api)) if api.status.as_u16() == 410 => Err(Error::LeaseLost(format!(
                "lease {lease_id} is gone (410 from {}): it expired, was revoked, or - with several \
                 server replicas - the replica that answered does not share lease storage with the one \
                 that granted it (configure PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect_redis.lease_storage); \
                 its slots may be held by others now",
                api.path
            ))),
            other => other.map_err(|e| e.if_route_missing(LEASES, LEASES_SINCE)),
        }
    }
}

/// The lease operations, for [`Error::ServerTooOld`].
const LEASES: &str =
    "concurrency leases (/v2/concurrency_limits/increment-with-lease, renew, decrement-with-lease)";
/// The Prefect release that added them.
const LEASES_SINCE: &str = "3.4.9";

/// Changes to a global limit; `None` keeps a field's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new number of slots.
    pub limit: Option<i64>,
    /// Enforce the limit, or not.
    pub active: Option<bool>,
    /// Overwrite the count of slots in use (0 frees all).
    pub active_slots: Option<u64>,
    /// A new decay rate.
    pub slot_decay_per_second: Option<f64>,
}

/// Who holds a lease, as shown in Prefect's UI and API.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseHolder {
    /// `flow_run`, `task_run` or `deployment`.
    pub kind: String,
    /// The holder's id.
    pub id: Uuid,
}

pub(crate) fn lease_body(
    names: &[String],
    slots: u32,
    mode: SlotMode,
    lease_duration: Duration,
    holder: Option<LeaseHolder>,
) -> Result<types::BulkIncrementActiveSlotsWithLeaseBody, Error> {
    check_lease_duration(lease_duration)?;
    let holder = match holder {
        Some(h) => {
            if !matches!(h.kind.as_str(), "flow_run" | "task_run" | "deployment") {
                return Err(Error::invalid(
                    "lease holder",
                    format!("kind {:?}; use flow_run, task_run or deployment", h.kind),
                ));
            }
            Some(serde_json::json!({ "type": h.kind, "id": h.id }))
        }
        None => None,
    };
    serde_json::from_value(serde_json::json!({
        "names": names,
        "slots": checked_slots(slots)?,
        "mode": mode_name(mode),
        "lease_duration": lease_duration.as_secs_f64(),
        "holder": holder,
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

fn check_id_or_name(id_or_name: &str) -> Result<(), Error> {
    check_name("limit id or name", id_or_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_requests_are_checked() {
        let names = vec!["a".to_string()];
        assert!(lease_body(&names, 1, SlotMode::Concurrency, Duration::from_secs(5), None).is_err());
        assert!(lease_body(&names, 0, SlotMode::Concurrency, MIN_LEASE_DURATION, None).is_err());
        let holder = LeaseHolder {
            kind: "robot".into(),
            id: Uuid::nil(),
        };
        assert!(lease_body(&names, 1, SlotMode::Concurrency, MIN_LEASE_DURATION, Some(holder)).is_err());
        let body = lease_body(&names, 2, SlotMode::RateLimit, MIN_LEASE_DURATION, None).unwrap();
        assert_eq!(body.slots.get(), 2);
        assert_eq!(body.lease_duration, 60.0);
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
