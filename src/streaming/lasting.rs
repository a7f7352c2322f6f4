//! A subscription to events that lasts as long as its owner: opened when due, opened again
//! (with backoff) when it ends, given up only when the server refuses it for good. A run's
//! watch and a serving process's wake-ups both stand on it; each starts from the clock-skew
//! allowance ago, so a client clock ahead of the server's hides no event.

use futures_util::StreamExt;
use tokio::time::Instant;

use super::Subscription;
use crate::retry::Pauses;
use crate::types::{EventFilter, ReceivedEvent};
use crate::waits::{self, MAX_RECONNECT_DELAY};
use crate::{Client, Error};

/// The events matching a filter, subscribed to again whenever the subscription ends.
pub(crate) struct Lasting {
    client: Client,
    filter: EventFilter,
    /// Reconnection attempts of each subscription before it ends (`None`: the default).
    reconnects: Option<u32>,
    /// What subscribes, for the logs.
    what: &'static str,
    /// The subscription, while one is open.
    pub(crate) open: Option<Subscription<ReceivedEvent>>,
    /// The pauses between attempts to subscribe again; started afresh once an event arrives.
    retry: Pauses,
    /// When the next attempt is due (`None`: at once).
    next_try: Option<Instant>,
    /// The server refused the subscription itself (credentials, an upgrade a proxy refuses):
    /// trying again would not help.
    refused: bool,
}

impl Lasting {
    /// Events matching `filter` (its `occurred` is set at each subscription); none open yet.
    pub(crate) fn new(client: &Client, filter: EventFilter, what: &'static str) -> Lasting {
        Lasting {
            client: client.clone(),
            filter,
            reconnects: None,
            what,
            open: None,
            retry: waits::RECONNECT.pauses(),
            next_try: None,
            refused: false,
        }
    }

    /// Each subscription reconnects at most this many times before it ends (and is opened
    /// again after a pause).
    pub(crate) fn max_reconnects(mut self, attempts: u32) -> Lasting {
        self.reconnects = Some(attempts);
        self
    }

    /// Subscribes when no subscription is open and an attempt is due; a failure is logged and
    /// the next attempt comes after a pause.
    pub(crate) async fn open_if_due(&mut self) {
        if self.open.is_some() || self.refused || self.next_try.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let filter = EventFilter {
            occurred: Some(waits::since_skew_allowance()),
            ..self.filter.clone()
        };
        let mut subscribe = self.client.events().subscribe(filter);
        if let Some(attempts) = self.reconnects {
            subscribe = subscribe.max_reconnects(attempts);
        }
        match subscribe.open().await {
            Ok(events) => self.open = Some(events),
            Err(error) => {
                self.refused = is_refusal(&error);
                tracing::debug!(what = self.what, %error, refused = self.refused, "the event socket is not available; polling meanwhile");
                self.lost();
            }
        }
    }

    /// An event arrived: the next loss is paused for from the first pause again.
    pub(crate) fn alive(&mut self) {
        self.retry = waits::RECONNECT.pauses();
    }

    /// The subscription ended or could not be opened: the next attempt after a pause.
    pub(crate) fn lost(&mut self) {
        self.open = None;
        let pause = self.retry.next_delay().unwrap_or(MAX_RECONNECT_DELAY);
        self.next_try = Some(Instant::now() + pause);
    }

    /// The next event, subscribing (again) as needed and pausing between attempts; `None` only
    /// once the server refused the subscription for good.
    pub(crate) async fn next_event(&mut self) -> Option<ReceivedEvent> {
        loop {
            if self.refused {
                return None;
            }
            if let Some(at) = self.next_try
                && self.open.is_none()
            {
                tokio::time::sleep_until(at).await;
            }
            self.open_if_due().await;
            let Some(events) = self.open.as_mut() else {
                continue;
            };
            match events.next().await {
                Some(Ok(event)) => {
                    self.alive();
                    return Some(event);
                }
                Some(Err(error)) => {
                    tracing::debug!(what = self.what, %error, "the event subscription ended; subscribing again");
                    self.lost();
                }
                None => self.lost(),
            }
        }
    }
}

/// Whether a failed subscription was refused for good (its credentials, or an upgrade the
/// server or a proxy refuses), not lost to a server away for a while.
fn is_refusal(error: &Error) -> bool {
    matches!(
        error,
        Error::SocketUnauthorized { .. } | Error::SocketRejected { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_subscription_is_not_opened_again() {
        let path = "/api/events/out".to_string();
        assert!(is_refusal(&Error::SocketUnauthorized {
            path: path.clone(),
            detail: "bad key".into()
        }));
        assert!(is_refusal(&Error::SocketRejected {
            path: path.clone(),
            detail: "404".into()
        }));
        assert!(!is_refusal(&Error::SocketClosed {
            path,
            detail: "reset".into()
        }));
    }
}
