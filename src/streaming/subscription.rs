//! A subscription: a websocket that reconnects, resumes where it left off and drops what it
//! delivered already, consumed as a [`Stream`].

use std::collections::{HashSet, VecDeque};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::socket::{self, Frame, Socket};
use crate::retry::{Backoff, Retries, Verdict};
use crate::waits::{KEEPALIVE, LATE_CATCH_UP_FACTOR, POLL_MARGIN, QUICK_DROP, RECONNECT, RESUME_MARGIN};
use crate::{Client, Error};

/// Reconnection attempts in a row, by default, before a subscription ends with
/// [`Error::SocketLost`] (with the default backoff, about a minute of trying).
pub const DEFAULT_MAX_RECONNECTS: u32 = 10;
/// The most item ids remembered to drop repeats; older ones are forgotten first. Ids are also
/// forgotten once older than twice [`RESUME_MARGIN`] behind the newest item.
const MAX_REMEMBERED: usize = 200_000;

/// A boxed future, for [`Feed`]'s REST catch-up.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Opens a subscription another way than the websocket.
pub(crate) type OpenWith<T> = fn(Subscribe<T>) -> BoxFuture<Result<Subscription<T>, Error>>;

/// What one kind of subscription reads: its route, frames and filter.
pub(crate) trait Feed<T>: Send + Sync + 'static {
    /// The websocket's route under the API URL.
    fn route(&self) -> &'static str;
    /// The `type` of frames carrying an item.
    fn frame(&self) -> &'static str;
    /// The filter message sent after authenticating; `resume_from` is the newest item's time
    /// after a reconnect.
    fn filter_message(&self, resume_from: Option<DateTime<Utc>>) -> Value;
    /// An item's id (repeats are dropped).
    fn id(&self, item: &T) -> Uuid;
    /// An item's time.
    fn timestamp(&self, item: &T) -> DateTime<Utc>;
    /// Items since `since` the socket does not resend after a reconnect, read over REST
    /// (`None`: this feed cannot be read over REST).
    fn catch_up(&self, client: &Client, since: DateTime<Utc>) -> Option<BoxFuture<Result<Vec<T>, Error>>>;
    /// How long after a reconnect the REST catch-up waits (items arriving meanwhile are held
    /// and merged in order): the time the server may take to store an item it already
    /// published.
    fn catch_up_delay(&self) -> Duration;
}

/// Live items as a [`Stream`]: events from [`Events::subscribe`](crate::resources::events::Events::subscribe)
/// or log lines from [`Logs::subscribe`](crate::resources::logs::Logs::subscribe).
///
/// A dropped connection is reopened (up to the configured attempts, with backoff) and resumed
/// from the newest item seen; repeats are dropped by id. Items are read from the socket only as
/// the stream is polled, so a slow consumer holds at most the socket's buffers; if it falls so
/// far behind that the server drops the connection, the subscription reconnects and resumes.
/// The stream ends with one error when it cannot go on: [`Error::SocketUnauthorized`],
/// [`Error::SocketRejected`] (a bad filter) or [`Error::SocketLost`].
#[must_use = "a subscription does nothing unless polled"]
pub struct Subscription<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl<T> Stream for Subscription<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T: Send + 'static> Subscription<T> {
    pub(crate) fn from_stream(stream: impl Stream<Item = Result<T, Error>> + Send + 'static) -> Self {
        Subscription {
            inner: Box::pin(stream),
        }
    }
}

/// Options of a subscription; from [`Events::subscribe`](crate::resources::events::Events::subscribe)
/// or [`Logs::subscribe`](crate::resources::logs::Logs::subscribe). Await it (or call
/// [`open`](Subscribe::open)) to connect: the first connection's failure is returned at once.
#[must_use = "await the subscription (or call .open()) to connect"]
pub struct Subscribe<T> {
    pub(crate) client: Client,
    pub(crate) feed: Arc<dyn Feed<T>>,
    pub(crate) options: Options,
    /// Opens the subscription another way (logs when the server does not stream them).
    pub(crate) open_with: Option<OpenWith<T>>,
}

impl<T: 'static> std::fmt::Debug for Subscribe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribe")
            .field("route", &self.feed.route())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The settings of one subscription.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) keepalive: Duration,
    pub(crate) max_reconnects: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keepalive: KEEPALIVE,
            max_reconnects: DEFAULT_MAX_RECONNECTS,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Subscribe<T> {
    pub(crate) fn new(client: &Client, feed: impl Feed<T>) -> Self {
        Subscribe {
            client: client.clone(),
            feed: Arc::new(feed),
            options: Options::default(),
            open_with: None,
        }
    }

    /// How long the socket may stay silent before the client pings the server; with no answer
    /// within as long again, the connection counts as dead and is reopened (default 15 s).
    pub fn keepalive(mut self, every: Duration) -> Self {
        self.options.keepalive = every.max(Duration::from_millis(100));
        self
    }

    /// Reconnection attempts in a row before the stream ends with [`Error::SocketLost`]
    /// (default [`DEFAULT_MAX_RECONNECTS`]; 0: end at the first drop).
    pub fn max_reconnects(mut self, attempts: u32) -> Self {
        self.options.max_reconnects = attempts;
        self
    }

    /// Connects and authenticates; errors of this first connection are returned as they are.
    ///
    /// # Errors
    /// Those of the first connection: [`Error::Connect`], [`Error::Tls`],
    /// [`Error::SocketUnauthorized`] (refused credentials), [`Error::SocketRejected`] (a
    /// refused upgrade), [`Error::SocketClosed`] (a handshake that did not finish in time).
    pub async fn open(self) -> Result<Subscription<T>, Error> {
        if let Some(open_with) = self.open_with {
            return open_with(self).await;
        }
        self.open_socket().await
    }

    /// Connects over the websocket (never the fallback).
    pub(crate) async fn open_socket(self) -> Result<Subscription<T>, Error> {
        let path = socket::route_path(&self.client, self.feed.route());
        let mut state = State {
            reconnects: Retries::new(RECONNECT.at_most(self.options.max_reconnects)),
            client: self.client,
            feed: self.feed,
            options: self.options,
            path,
            socket: None,
            ping_outstanding: false,
            recent: RecentIds::default(),
            ready: Ready::default(),
            last_error: None,
            catching_up: None,
            late_catch_up: None,
            held: Vec::new(),
            opened_at: tokio::time::Instant::now(),
            started: Utc::now(),
            heard: false,
            quick_drops: 0,
        };
        state.socket = Some(state.connect(None).await?);
        Ok(Subscription::from_stream(futures_util::stream::unfold(
            state,
            |mut state| async move { state.next().await.map(|item| (item, state)) },
        )))
    }
}

impl<T: DeserializeOwned + Send + 'static> Subscribe<T> {
    /// Reads the feed over REST every `interval` instead of a websocket (logs, when the server
    /// does not stream them): the same stream, later by up to `interval`.
    pub(crate) async fn open_polling(self, interval: Duration) -> Result<Subscription<T>, Error> {
        let path = socket::route_path(&self.client, self.feed.route());
        let start = Utc::now() - chrono::Duration::seconds(1);
        let mut state = Polling {
            client: self.client,
            feed: self.feed,
            path,
            interval,
            start,
            recent: RecentIds::default(),
            ready: Ready::default(),
            failures: Retries::new(Backoff::constant(interval).at_most(self.options.max_reconnects)),
            first: true,
        };
        // The first read checks the server answers; its errors are returned at once.
        state.read().await?;
        Ok(Subscription::from_stream(futures_util::stream::unfold(
            state,
            |mut state| async move { state.next().await.map(|item| (item, state)) },
        )))
    }
}

/// A feed read over REST in rounds.
struct Polling<T> {
    client: Client,
    feed: Arc<dyn Feed<T>>,
    path: String,
    interval: Duration,
    start: DateTime<Utc>,
    recent: RecentIds,
    ready: Ready<T>,
    /// Failed rounds in a row: each is tried again at the next round (one interval later), as
    /// many as the subscription's `max_reconnects` allows.
    failures: Retries,
    first: bool,
}

impl<T: Send + 'static> Polling<T> {
    async fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(next) = self.ready.take() {
                return next;
            }
            if !std::mem::take(&mut self.first) {
                tokio::time::sleep(self.interval).await;
            }
            if let Err(e) = self.read().await {
                let permanent = socket::is_permanent(&e);
                // Tried again at the next round, after the interval: the pause is the interval.
                let again = self.failures.failed(Verdict::retry_if(!permanent)).is_some();
                if permanent {
                    self.ready.done = true;
                    return Some(Err(e));
                }
                tracing::warn!(path = %self.path, error = %e, "polling failed; trying again");
                if !again {
                    self.ready.done = true;
                    return Some(Err(Error::SocketLost {
                        path: self.path.clone(),
                        attempts: self.failures.failures(),
                        last: Box::new(e),
                    }));
                }
            }
        }
    }

    /// One round: every item since the newest seen (less the margin), new ones queued.
    async fn read(&mut self) -> Result<(), Error> {
        let since = match self.recent.newest {
            Some(newest) => {
                (newest - chrono::Duration::from_std(POLL_MARGIN).unwrap_or_default()).max(self.start)
            }
            None => self.start,
        };
        let Some(read) = self.feed.catch_up(&self.client, since) else {
            return Err(Error::invalid("subscription", "this feed cannot be polled"));
        };
        for item in read.await? {
            if self
                .recent
                .insert(self.feed.id(&item), self.feed.timestamp(&item))
            {
                self.ready.pending.push_back(item);
            }
        }
        self.failures.reset();
        Ok(())
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for Subscribe<T> {
    type Output = Result<Subscription<T>, Error>;
    type IntoFuture = BoxFuture<Result<Subscription<T>, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}

struct State<T> {
    client: Client,
    feed: Arc<dyn Feed<T>>,
    options: Options,
    path: String,
    socket: Option<Socket>,
    ping_outstanding: bool,
    recent: RecentIds,
    ready: Ready<T>,
    /// Reconnection attempts since the connection last proved alive (its `retries`), at most
    /// the subscription's `max_reconnects`; their pauses start again from the first once a
    /// connection answers.
    reconnects: Retries,
    last_error: Option<Error>,
    /// After a reconnect: until when items are held for the catch-up, and from when it reads.
    catching_up: Option<(tokio::time::Instant, DateTime<Utc>)>,
    /// A second catch-up, later, for items the server stored later still (a loaded server);
    /// what it finds is delivered at once.
    late_catch_up: Option<(tokio::time::Instant, DateTime<Utc>)>,
    /// Items that arrived while catching up.
    held: Vec<T>,
    /// When the current socket's filter was sent, and whether any frame came since.
    opened_at: tokio::time::Instant,
    /// When the subscription began: what a reconnect catches up from before any item came.
    started: DateTime<Utc>,
    heard: bool,
    /// Sockets in a row that broke at once after the filter, before any frame.
    quick_drops: u32,
}

/// Sockets in a row that break right after the filter, before any frame, that make the
/// filter count as refused: Prefect 3.8 resets the connection instead of closing it with 1002
/// when its message about an invalid filter is too long for a close frame.
const QUICK_DROPS_FOR_REFUSAL: u32 = 3;

impl<T: DeserializeOwned + Send + 'static> State<T> {
    async fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(next) = self.ready.take() {
                return next;
            }
            if let Some((until, since)) = self.catching_up
                && tokio::time::Instant::now() >= until
            {
                self.catching_up = None;
                self.catch_up(since).await;
                continue;
            }
            if let Some((at, since)) = self.late_catch_up
                && tokio::time::Instant::now() >= at
            {
                self.late_catch_up = None;
                self.catch_up(since).await;
                continue;
            }
            let Some(socket) = self.socket.as_mut() else {
                if let Err(e) = self.reconnect().await {
                    self.ready.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            let silence = tokio::time::Instant::now() + self.options.keepalive;
            let wake = [self.catching_up, self.late_catch_up]
                .into_iter()
                .flatten()
                .map(|(at, _)| at)
                .fold(silence, tokio::time::Instant::min);
            let message = match tokio::time::timeout_at(wake, socket.next()).await {
                Err(_) if wake < silence => continue,
                Err(_silent) if self.ping_outstanding => {
                    let detail = format!(
                        "no frame and no answer to a ping for {:?}: the connection stalled",
                        self.options.keepalive * 2
                    );
                    self.drop_socket(socket::closed(&self.path, detail));
                    continue;
                }
                Err(_silent) => {
                    self.ping_outstanding = true;
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        self.drop_socket(socket::closed(&self.path, format!("ping failed: {e}")));
                    }
                    continue;
                }
                Ok(None) => {
                    self.drop_socket(socket::closed(&self.path, "the server ended the connection"));
                    continue;
                }
                Ok(Some(Err(e))) => {
                    self.drop_socket(socket::closed(&self.path, e.to_string()));
                    continue;
                }
                Ok(Some(Ok(message))) => message,
            };
            self.ping_outstanding = false;
            if !self.heard {
                // The connection works: the next break starts the backoff again.
                self.reconnects.reset_pauses();
            }
            self.heard = true;
            self.quick_drops = 0;
            match message {
                Message::Text(text) => match serde_json::from_str::<Frame<T>>(&text) {
                    Ok(Frame {
                        kind,
                        item: Some(item),
                    }) if kind == self.feed.frame() => {
                        if self.remember(&item) {
                            // Only a new item proves the connection serves: repeats of a
                            // backfill do not reset the count of failed reconnects.
                            self.reconnects.reset();
                            if self.catching_up.is_some() {
                                self.held.push(item);
                                continue;
                            }
                            return Some(Ok(item));
                        }
                    }
                    // Another kind of frame (a newer server's): not for this subscription.
                    Ok(_) => {}
                    Err(e) => {
                        let detail = format!(
                            "a frame is not Prefect's JSON ({e}): {}",
                            crate::response::excerpt(text.as_bytes())
                        );
                        self.drop_socket(socket::closed(&self.path, detail));
                    }
                },
                // A pong proves a quiet connection alive.
                Message::Pong(_) => self.reconnects.reset(),
                Message::Close(frame) => {
                    let error = socket::close_error(&self.path, frame);
                    if socket::is_permanent(&error) {
                        self.ready.done = true;
                        return Some(Err(error));
                    }
                    self.drop_socket(error);
                }
                Message::Binary(bytes) => {
                    let detail = format!(
                        "a binary frame, not Prefect's JSON: {}",
                        crate::response::excerpt(&bytes)
                    );
                    self.drop_socket(socket::closed(&self.path, detail));
                }
                Message::Ping(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Whether the item is new; remembers it.
    fn remember(&mut self, item: &T) -> bool {
        self.recent.insert(self.feed.id(item), self.feed.timestamp(item))
    }

    fn drop_socket(&mut self, error: Error) {
        if !self.heard && self.opened_at.elapsed() < QUICK_DROP {
            self.quick_drops += 1;
        }
        tracing::warn!(path = %self.path, error = %error, "subscription connection lost; reconnecting");
        self.socket = None;
        self.ping_outstanding = false;
        self.last_error = Some(error);
    }

    /// Reopens the socket, resuming after the newest item, with backoff between attempts.
    async fn reconnect(&mut self) -> Result<(), Error> {
        if self.quick_drops >= QUICK_DROPS_FOR_REFUSAL {
            return Err(Error::SocketRejected {
                path: self.path.clone(),
                detail: format!(
                    "the server broke the connection right after reading the filter, {} times in a row, \
                     without a frame: it most likely refuses the filter (Prefect resets instead of \
                     closing with 1002 when its reason is long)",
                    self.quick_drops
                ),
            });
        }
        loop {
            let Some(pause) = self.reconnects.failed(Verdict::Retry) else {
                let last = self
                    .last_error
                    .take()
                    .unwrap_or_else(|| socket::closed(&self.path, "the connection was lost"));
                return Err(Error::SocketLost {
                    path: self.path.clone(),
                    attempts: self.reconnects.retries(),
                    last: Box::new(last),
                });
            };
            tokio::time::sleep(pause).await;
            // From the newest item seen, or, before any came, from when the subscription
            // began: what was published while the socket was down is read back either way.
            let resume_from = self.recent.newest.unwrap_or(self.started);
            match self.connect(Some(resume_from)).await {
                Ok(socket) => {
                    tracing::info!(path = %self.path, attempt = self.reconnects.retries(), "subscription reconnected");
                    self.socket = Some(socket);
                    let since = resume_from - chrono::Duration::from_std(RESUME_MARGIN).unwrap_or_default();
                    let delay = self.feed.catch_up_delay();
                    let now = tokio::time::Instant::now();
                    self.catching_up = Some((now + delay, since));
                    if !delay.is_zero() {
                        self.late_catch_up = Some((now + delay * LATE_CATCH_UP_FACTOR, since));
                    }
                    return Ok(());
                }
                Err(e) if socket::is_permanent(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(path = %self.path, attempt = self.reconnects.retries(), error = %e, "reconnecting failed");
                    self.last_error = Some(e);
                }
            }
        }
    }

    /// Reads over REST what the socket missed while it was down and queues it with the items
    /// held meanwhile, in time order; a failure drops the socket again (and a later reconnect
    /// catches up again).
    async fn catch_up(&mut self, since: DateTime<Utc>) {
        let mut items = std::mem::take(&mut self.held);
        if let Some(read) = self.feed.catch_up(&self.client, since) {
            match read.await {
                Ok(missed) => {
                    for item in missed {
                        if self.remember(&item) {
                            items.push(item);
                        }
                    }
                }
                Err(e) => self.drop_socket(e),
            }
        }
        items.sort_by_key(|item| self.feed.timestamp(item));
        self.ready.pending.extend(items);
    }

    /// Opens and authenticates a socket and sends the filter.
    async fn connect(&mut self, resume_from: Option<DateTime<Utc>>) -> Result<Socket, Error> {
        let mut socket = socket::open(&self.client, self.feed.route()).await?;
        let message = self.feed.filter_message(resume_from);
        socket::send(&mut socket, &self.path, &message).await?;
        self.opened_at = tokio::time::Instant::now();
        self.heard = false;
        Ok(socket)
    }
}

/// Items ready to hand out, and whether the stream is over.
struct Ready<T> {
    pending: VecDeque<T>,
    done: bool,
}

impl<T> Default for Ready<T> {
    fn default() -> Self {
        Ready {
            pending: VecDeque::new(),
            done: false,
        }
    }
}

impl<T> Ready<T> {
    /// The next item, or the stream's end, when either is at hand (`None`: read on).
    fn take(&mut self) -> Option<Option<Result<T, Error>>> {
        if let Some(item) = self.pending.pop_front() {
            return Some(Some(Ok(item)));
        }
        self.done.then_some(None)
    }
}

/// Ids of recent items, to drop repeats; bounded by age behind the newest item and by count.
#[derive(Debug, Default)]
pub(crate) struct RecentIds {
    order: VecDeque<(DateTime<Utc>, Uuid)>,
    ids: HashSet<Uuid>,
    /// The newest item's time.
    pub(crate) newest: Option<DateTime<Utc>>,
}

impl RecentIds {
    /// Whether `id` is new (then it is remembered).
    pub(crate) fn insert(&mut self, id: Uuid, at: DateTime<Utc>) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back((at, id));
        let newest = self.newest.map_or(at, |n| n.max(at));
        self.newest = Some(newest);
        let horizon = newest - chrono::Duration::from_std(RESUME_MARGIN * 2).unwrap_or_default();
        while let Some(&(oldest_at, oldest)) = self.order.front() {
            if oldest_at >= horizon && self.order.len() <= MAX_REMEMBERED {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&oldest);
        }
        true
    }

    /// How many ids are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_drop_repeats_and_forget_old_ones() {
        let mut recent = RecentIds::default();
        let start = Utc::now();
        let first = Uuid::new_v4();
        assert!(recent.insert(first, start));
        assert!(!recent.insert(first, start));
        // An item far newer pushes the first out of the horizon: it is forgotten.
        let later = start + chrono::Duration::seconds(600);
        assert!(recent.insert(Uuid::new_v4(), later));
        assert_eq!(recent.len(), 1);
        assert!(recent.insert(first, start), "a forgotten id counts as new");
        assert_eq!(recent.newest, Some(later));
    }

    #[test]
    fn recent_ids_stay_bounded_at_any_rate() {
        let mut recent = RecentIds::default();
        let at = Utc::now();
        for _ in 0..MAX_REMEMBERED + 10 {
            recent.insert(Uuid::new_v4(), at);
        }
        assert_eq!(recent.len(), MAX_REMEMBERED);
    }
}
