//! Events: emit (one by one over REST, or many over the `/events/in` websocket), read with
//! filters page by page or as a stream, and subscribe to live events.

use std::collections::VecDeque;

use chrono::Utc;
use futures_core::Stream;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::query::EventQuery;
use crate::resources::{InvalidField, call, json_object, send_on_await};
use crate::streaming::subscription::{BoxFuture, Feed};
use crate::streaming::{EventEmitter, Subscribe};
use crate::types::{Event, EventFilter, EventOccurredFilter, EventOrder, EventPage, ReceivedEvent, Resource};
use crate::waits::{EVENT_STORE_DELAY, RESUME_MARGIN};
use crate::{Client, Error};

/// The most events one page holds (the server's cap).
pub(crate) const EVENT_PAGE_SIZE: i64 = 50;

/// Events; from [`Client::events`]. Automations react to them; the UI's event feed shows them.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// client
///     .events()
///     .emit("etl.batch.loaded", "rust.service.etl")
///     .payload(&serde_json::json!({ "rows": 500 }))
///     .await?;
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

    /// An event `name` about the resource `resource_id`, occurring now; set its options, then
    /// [`send`](EmitEvent::send).
    pub fn emit(&self, name: &str, resource_id: &str) -> EmitEvent {
        EmitEvent {
            client: self.client.clone(),
            name: name.to_string(),
            resource_id: resource_id.to_string(),
            payload: Ok(Map::new()),
        }
    }

    /// Emits events as given (each needs a unique `id`; repeating one is harmless: the server
    /// keeps an event id once).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an event Prefect would refuse (see [`check_event`]; nothing
    /// sent); any error of the request.
    pub async fn emit_all(&self, events: &[Event]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            check_event(event)?;
        }
        let body = events.to_vec();
        call!(self.client, create_events(&body))
    }

    /// The first page of events matching `filter` (newest first by default; `limit` 1 to 50),
    /// with the total count and the next page's URL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` below 1 (nothing sent);
    /// [`Error::Validation`] for a filter or page size the server refuses; any other error of the request.
    pub async fn list_page(&self, filter: &EventQuery) -> Result<EventPage, Error> {
        if !(1..=EVENT_PAGE_SIZE).contains(&filter.limit) {
            return Err(Error::invalid(
                "page size",
                format!(
                    "limit {}; the server pages 1 to {EVENT_PAGE_SIZE} events",
                    filter.limit
                ),
            ));
        }
        call!(self.client, read_events(filter))
    }

    /// Every event matching `filter`, following the server's page tokens. The tokens are sent
    /// to this client's API URL (the server's own `next_page` URL may name another host behind
    /// a proxy).
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(
        &self,
        mut filter: EventQuery,
    ) -> impl Stream<Item = Result<ReceivedEvent, Error>> + Send + use<> {
        enum Next {
            First(Box<EventQuery>),
            Token(String),
            Done,
        }
        filter.limit = EVENT_PAGE_SIZE;
        let start = (
            self.client.clone(),
            Next::First(Box::new(filter)),
            VecDeque::new(),
        );
        futures_util::stream::unfold(start, |(client, mut next, mut buffer)| async move {
            loop {
                if let Some(event) = buffer.pop_front() {
                    return Some((Ok(event), (client, next, buffer)));
                }
                let page = match std::mem::replace(&mut next, Next::Done) {
                    Next::Done => return None,
                    Next::First(filter) => client.events().list_page(&filter).await,
                    Next::Token(token) => call!(client, read_account_events_page(&token)),
                };
                match page {
                    Ok(page) => {
                        if let Some(token) = page.next_page.as_deref().and_then(|url| page_token(url)) {
                            next = Next::Token(token);
                        }
                        buffer.extend(page.events);
                    }
                    Err(e) => return Some((Err(e), (client, Next::Done, buffer))),
                }
            }
        })
    }
}

impl Events<'_> {
    /// Live events matching `filter` over the `/events/out` websocket, as a
    /// [`Subscription`](crate::streaming::Subscription) stream. The server first sends the
    /// matching events since `filter.occurred.since` (default: one minute ago, as Prefect's
    /// own subscriber; at most 15 minutes back), oldest first, then each new one as it happens
    /// (until `filter.occurred.until`, default a year from now). A dropped connection is
    /// reopened and resumed from the newest event seen, without repeats.
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
    /// use futures_util::StreamExt;
    /// use prefect_client::types::{EventFilter, EventNameFilter};
    ///
    /// let filter = EventFilter {
    ///     event: Some(EventNameFilter { prefix: Some(vec!["prefect.flow-run.".into()]), ..Default::default() }),
    ///     ..Default::default()
    /// };
    /// let mut runs = client.events().subscribe(filter).await?;
    /// while let Some(event) = runs.next().await {
    ///     println!("{}", event?.event);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, filter: EventFilter) -> Subscribe<ReceivedEvent> {
        let now = Utc::now();
        let mut filter = filter;
        let occurred = filter.occurred.get_or_insert_with(EventOccurredFilter::default);
        occurred.since.get_or_insert(now - chrono::Duration::minutes(1));
        occurred.until.get_or_insert(now + chrono::Duration::days(365));
        Subscribe::new(self.client, EventFeed { filter })
    }

    /// Opens an [`EventEmitter`]: many events over one websocket, with nothing lost or stored
    /// twice across reconnects.
    ///
    /// # Errors
    /// Those of opening the socket, as for [`Subscribe::open`](crate::streaming::Subscribe::open).
    pub async fn emitter(&self) -> Result<EventEmitter, Error> {
        EventEmitter::open(self.client).await
    }
}

/// The `/events/out` subscription.
struct EventFeed {
    filter: EventFilter,
}

impl Feed<ReceivedEvent> for EventFeed {
    fn route(&self) -> &'static str {
        "events/out"
    }

    fn frame(&self) -> &'static str {
        "event"
    }

    fn filter_message(&self, resume_from: Option<chrono::DateTime<Utc>>) -> Value {
        let mut filter = self.filter.clone();
        if let Some(newest) = resume_from {
            let resume = newest - chrono::Duration::from_std(RESUME_MARGIN).unwrap_or_default();
            let occurred = filter.occurred.get_or_insert_with(EventOccurredFilter::default);
            occurred.since = Some(occurred.since.map_or(resume, |since| since.max(resume)));
        }
        json!({ "type": "filter", "filter": filter })
    }

    fn id(&self, event: &ReceivedEvent) -> Uuid {
        event.id
    }

    fn timestamp(&self, event: &ReceivedEvent) -> chrono::DateTime<Utc> {
        event.occurred
    }

    fn catch_up(
        &self,
        client: &Client,
        since: chrono::DateTime<Utc>,
    ) -> Option<BoxFuture<Result<Vec<ReceivedEvent>, Error>>> {
        // The server backfills the resumed filter from its database, but an event it published
        // while the socket was down and stored only later is in neither the backfill nor the
        // live stream: read again once it is stored.
        let mut filter = self.filter.clone();
        let occurred = filter.occurred.get_or_insert_with(EventOccurredFilter::default);
        occurred.since = Some(occurred.since.map_or(since, |s| s.max(since)));
        filter.order = Some(EventOrder::Asc);
        let body = EventQuery {
            filter: Some(filter),
            limit: EVENT_PAGE_SIZE,
        };
        let client = client.clone();
        Some(Box::pin(async move {
            use futures_util::TryStreamExt;
            client.events().stream(body).try_collect().await
        }))
    }

    fn catch_up_delay(&self) -> std::time::Duration {
        EVENT_STORE_DELAY
    }
}

/// The most labels a resource may have (`PREFECT_SERVER_EVENTS_MAXIMUM_LABELS_PER_RESOURCE`).
const MAX_LABELS: usize = 500;
/// The most related resources an event may have (`PREFECT_SERVER_EVENTS_MAXIMUM_RELATED_RESOURCES`).
const MAX_RELATED: usize = 100;
/// The longest event name (`PREFECT_SERVER_EVENTS_MAXIMUM_EVENT_NAME_LENGTH`).
const MAX_NAME: usize = 1024;
/// The largest event, as JSON (`PREFECT_SERVER_EVENTS_MAXIMUM_SIZE_BYTES`).
const MAX_EVENT_BYTES: usize = 1_500_000;

/// Checks an event as Prefect's server validates it (with its default limits): a resource with
/// a non-empty `prefect.resource.id`, related resources each with a `prefect.resource.id` and a
/// `prefect.resource.role`, at most 500 labels a resource, 100 related resources, a name of 1 to
/// 1,024 characters, 1.5 MB in all. Over REST the server answers 422 for such an event; over
/// the `/events/in` socket it drops it and every event after it, while still answering the
/// socket's pings: so the emitter refuses it before sending.
pub fn check_event(event: &Event) -> Result<(), Error> {
    let refuse = |problem: String| Err(Error::invalid("event", format!("{} {problem}", event.id)));
    if event.event.is_empty() || event.event.chars().count() > MAX_NAME {
        return refuse(format!(
            "has a name of {} characters; give a name of 1 to {MAX_NAME}",
            event.event.chars().count()
        ));
    }
    let resource_id = event.resource.0.get("prefect.resource.id");
    if resource_id.is_none_or(String::is_empty) {
        return refuse(
            "has no prefect.resource.id label on its resource; every event is about a resource, e.g. \"rust.service.etl\""
                .into(),
        );
    }
    if event.resource.0.len() > MAX_LABELS {
        return refuse(format!("has a resource of more than {MAX_LABELS} labels"));
    }
    if event.related.len() > MAX_RELATED {
        return refuse(format!("has more than {MAX_RELATED} related resources"));
    }
    for related in &event.related {
        for label in ["prefect.resource.id", "prefect.resource.role"] {
            if related.0.get(label).is_none_or(String::is_empty) {
                return refuse(format!("has a related resource without a {label} label"));
            }
        }
        if related.0.len() > MAX_LABELS {
            return refuse(format!("has a related resource of more than {MAX_LABELS} labels"));
        }
    }
    let size = serde_json::to_vec(event).map(|json| json.len()).unwrap_or(0);
    if size > MAX_EVENT_BYTES {
        return refuse(format!(
            "is {size} bytes as JSON; Prefect takes events of at most {MAX_EVENT_BYTES}"
        ));
    }
    Ok(())
}

/// The `page-token` of a `next_page` URL.
fn page_token(next_page: &str) -> Option<String> {
    let url = reqwest::Url::parse(next_page).ok()?;
    url.query_pairs()
        .find(|(name, _)| name == "page-token")
        .map(|(_, token)| token.into_owned())
}

/// An event to emit; from [`Events::emit`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to emit the event"]
pub struct EmitEvent {
    client: Client,
    name: String,
    resource_id: String,
    payload: Result<Map<String, Value>, InvalidField>,
}

impl EmitEvent {
    /// The event's payload: any value serializing to a JSON object.
    pub fn payload(mut self, payload: &impl Serialize) -> Self {
        self.payload = json_object("event payload", payload);
        self
    }

    /// Emits the event; returns its id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty name or resource id, a payload that is not a JSON
    /// object, or an event Prefect would refuse ([`check_event`]); any other error of the
    /// request.
    pub async fn send(self) -> Result<Uuid, Error> {
        if self.name.is_empty() || self.resource_id.is_empty() {
            return Err(Error::invalid(
                "event",
                "the event name and resource id must not be empty, e.g. (\"etl.batch.loaded\", \"rust.service.etl\")",
            ));
        }
        let payload = self.payload?;
        let id = Uuid::new_v4();
        let event = Event {
            event: self.name,
            follows: None,
            id,
            occurred: Utc::now(),
            payload,
            related: Vec::new(),
            resource: Resource([("prefect.resource.id".to_string(), self.resource_id)].into()),
        };
        self.client.events().emit_all(&[event]).await?;
        Ok(id)
    }
}

send_on_await! {
    EmitEvent => Uuid;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_event_filter_starts_a_margin_before_the_newest_event_seen() {
        let feed = EventFeed {
            filter: EventFilter::default(),
        };
        let fresh = feed.filter_message(None);
        assert_eq!(fresh, json!({ "type": "filter", "filter": {} }));
        let newest: chrono::DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        let resumed = feed.filter_message(Some(newest));
        assert_eq!(
            resumed["filter"]["occurred"]["since"],
            json!("2026-11-29T11:59:00Z")
        );
        // A caller's own later `since` is kept.
        let feed = EventFeed {
            filter: EventFilter {
                occurred: Some(EventOccurredFilter {
                    since: Some("2026-11-29T11:59:30Z".parse().unwrap()),
                    until: None,
                }),
                ..Default::default()
            },
        };
        let resumed = feed.filter_message(Some(newest));
        assert_eq!(
            resumed["filter"]["occurred"]["since"],
            json!("2026-11-29T11:59:30Z")
        );
    }

    #[test]
    fn the_page_token_is_read_from_the_servers_url_decoded() {
        assert_eq!(
            page_token("http://other-host:4200/api/events/filter/next?page-token=a%2Bb%3D").as_deref(),
            Some("a+b=")
        );
        assert_eq!(page_token("http://h/api/events/filter/next"), None);
        assert_eq!(page_token("not a url"), None);
    }
}
