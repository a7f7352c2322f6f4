//! Events: emit, and read with filters.

use chrono::Utc;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::pagination::typed;
use crate::types::{Event, EventPage, ReadEventsBody};
use crate::{Client, Error};

/// Events; from [`Client::events`]. Automations react to them; the UI's event feed shows them.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let payload = serde_json::json!({ "rows": 500 });
/// client.events().emit("etl.batch.loaded", "rust.service.etl", payload.as_object().cloned()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Events<'a> {
    client: &'a Client,
}

impl<'a> Events<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Events { client }
    }

    /// Emits one event `name` about the resource `resource_id`, occurring now; returns its id.
    pub async fn emit(
        &self,
        name: &str,
        resource_id: &str,
        payload: Option<Map<String, Value>>,
    ) -> Result<Uuid, Error> {
        if name.is_empty() || resource_id.is_empty() {
            return Err(Error::invalid(
                "event",
                "the event name and resource id must not be empty, e.g. (\"etl.batch.loaded\", \"rust.service.etl\")",
            ));
        }
        let id = Uuid::new_v4();
        let event: Event = typed(
            "event",
            json!({
                "id": id,
                "occurred": Utc::now(),
                "event": name,
                "resource": { "prefect.resource.id": resource_id },
                "payload": payload.unwrap_or_default(),
            }),
        )?;
        self.emit_all(&[event]).await?;
        Ok(id)
    }

    /// Emits events as given (each needs a unique `id`; repeating one is harmless: the server
    /// keeps an event id once).
    pub async fn emit_all(&self, events: &[Event]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let body = events.to_vec();
        unwrap_response("create_events", self.client.raw().create_events(&body).await).await
    }

    /// The first page of events matching `filter` (newest first by default), with the total
    /// count and the next page's URL.
    pub async fn read(&self, filter: &ReadEventsBody) -> Result<EventPage, Error> {
        unwrap_response("read_events", self.client.raw().read_events(filter).await).await
    }

    /// Up to `limit` recent events named `name` (`limit` 1 to 50).
    pub async fn read_named(&self, name: &str, limit: i64) -> Result<EventPage, Error> {
        if !(1..=50).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("{limit}; the server pages 1 to 50 events"),
            ));
        }
        let filter = typed(
            "event filter",
            json!({ "filter": { "event": { "name": [name] } }, "limit": limit }),
        )?;
        self.read(&filter).await
    }
}
