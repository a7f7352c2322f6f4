//! Watching one flow run: the run now, then again each time its state changes, for as long as
//! the stream is polled. Its events (the `/events/out` websocket) wake a read of it as they
//! happen; reads at least every [`MAX_POLL_INTERVAL`] cover events the socket missed, and polls
//! stand in while the socket cannot be used, which is opened again (with backoff) when it ends.
//!
//! Waiting for a state ([`FlowRuns::wait_for_state`](super::FlowRuns::wait_for_state)) and a
//! run's own cancellation watch are both this stream, consumed until the state they wait for.

use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use uuid::Uuid;

use crate::retry::Pauses;
use crate::streaming::Subscription;
use crate::streaming::lasting::Lasting;
use crate::types::{
    EventFilter, EventNameFilter, EventResourceFilter, FlowRunResponse, ReceivedEvent, StateType,
};
use crate::waits::{self, MAX_POLL_INTERVAL};
use crate::{Client, Error};

/// Reconnection attempts one subscription makes before it ends and the watch polls (it
/// subscribes again later).
const SUBSCRIPTION_RECONNECTS: u32 = 3;

/// The stream of run `id` as its state changes (see the module documentation). `wakes` says
/// which states an event must name to be worth a read (an event naming none always is): a
/// caller that waits for some states saves the reads of the others; the polls read the run
/// whatever its state. The stream ends after its first error, which is its last item.
pub(super) fn watch<W>(
    client: &Client,
    id: Uuid,
    wakes: W,
) -> impl Stream<Item = Result<FlowRunResponse, Error>> + Send + Unpin + 'static + use<W>
where
    W: Fn(&StateType) -> bool + Send + Sync + 'static,
{
    let watch = Watch {
        client: client.clone(),
        id,
        wakes,
        changes: changes(client, id),
        seen: None,
        pauses: waits::flow_run_poll(),
    };
    Box::pin(futures_util::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        match watch.next().await {
            Ok(run) => Some((Ok(run), Some(watch))),
            Err(error) => Some((Err(error), None)),
        }
    }))
}

/// One watch under way.
struct Watch<W> {
    client: Client,
    id: Uuid,
    /// Which states an event must name to wake a read.
    wakes: W,
    /// The run's events, when they can be had.
    changes: Lasting,
    /// The state the run was in when last yielded (`None` before the first read).
    seen: Option<Seen>,
    /// The pauses between polls while no subscription is open.
    pauses: Pauses,
}

impl<W: Fn(&StateType) -> bool> Watch<W> {
    /// The run the next time it is read in a state not yielded yet (at once the first time).
    async fn next(&mut self) -> Result<FlowRunResponse, Error> {
        loop {
            if self.seen.is_some() {
                self.woken().await;
            }
            // Subscribed before the read, so a change between the two is not missed.
            self.changes.open_if_due().await;
            let run = self.client.flow_runs().get(self.id).await?;
            let seen = Seen::of(&run);
            if self.seen.as_ref() != Some(&seen) {
                self.seen = Some(seen);
                return Ok(run);
            }
        }
    }

    /// Waits until the run may have changed: an event worth a read, the socket ending (then
    /// the watch polls), or the time for a read anyway.
    async fn woken(&mut self) {
        let Watch {
            changes,
            seen,
            wakes,
            pauses,
            id,
            ..
        } = self;
        let Some(events) = changes.open.as_mut() else {
            let pause = pauses.next_delay().unwrap_or(MAX_POLL_INTERVAL);
            tokio::time::sleep(pause).await;
            return;
        };
        let poll = tokio::time::sleep(MAX_POLL_INTERVAL);
        tokio::pin!(poll);
        let mut alive = false;
        let ended = loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        alive = true;
                        if worth_a_read(&event, seen.as_ref(), wakes) {
                            // One read covers the events already here: a burst (the events a
                            // new subscription replays) costs one read, not one each.
                            break drain_ready(events);
                        }
                    }
                    Some(Err(_)) | None => break true,
                },
                () = &mut poll => break false,
            }
        };
        if alive {
            changes.alive();
        }
        if ended {
            tracing::debug!(flow_run_id = %id, "the event socket ended; polling until it opens again");
            changes.lost();
            *pauses = waits::flow_run_poll();
        }
    }
}

/// Takes the events that are already here (at most [`MAX_DRAINED`]) without waiting for more;
/// whether the subscription ended meanwhile.
fn drain_ready(events: &mut Subscription<ReceivedEvent>) -> bool {
    for _ in 0..MAX_DRAINED {
        match events.next().now_or_never() {
            None => return false,
            Some(Some(Ok(_))) => {}
            Some(Some(Err(_)) | None) => return true,
        }
    }
    false
}

/// The most events one read covers: as many as the server holds for a subscriber that does
/// not keep up, so a run whose events never stop still gets read.
const MAX_DRAINED: usize = 256;

/// Whether `event` may show something the last read did not: it is not about the state read
/// last (a state change's event has that state's id), and it names a state `wakes` accepts,
/// or none.
fn worth_a_read(event: &ReceivedEvent, seen: Option<&Seen>, wakes: &impl Fn(&StateType) -> bool) -> bool {
    if seen.is_some_and(|seen| seen.state_id == Some(event.id)) {
        return false;
    }
    match state_of(event) {
        Some(state) => wakes(&state),
        None => true,
    }
}

/// The state a flow-run event reports (its resource's `prefect.state-type` label).
fn state_of(event: &ReceivedEvent) -> Option<StateType> {
    let label = event.resource.0.get("prefect.state-type")?;
    serde_json::from_value(serde_json::Value::String(label.clone())).ok()
}

/// The state a run was read in: a new state has a new id (a RUNNING after a RUNNING too).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state_id: Option<Uuid>,
    state_type: Option<StateType>,
}

impl Seen {
    fn of(run: &FlowRunResponse) -> Seen {
        Seen {
            state_id: run.state_id.or(run.state.as_ref().map(|state| state.id)),
            state_type: run.state_type.clone(),
        }
    }
}

/// Run `id`'s state-change events, subscribed again whenever the subscription ends (a new
/// subscription replays the last ones: the watch drops the one of the state it read last).
fn changes(client: &Client, id: Uuid) -> Lasting {
    let filter = EventFilter {
        event: Some(EventNameFilter {
            prefix: Some(vec!["prefect.flow-run.".into()]),
            ..Default::default()
        }),
        resource: Some(EventResourceFilter {
            id: Some(vec![format!("prefect.flow-run.{id}")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Lasting::new(client, filter, "a flow run's watch").max_reconnects(SUBSCRIPTION_RECONNECTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Resource;

    fn event(id: Uuid, state: Option<&str>) -> ReceivedEvent {
        let mut labels = std::collections::HashMap::new();
        labels.insert(
            "prefect.resource.id".to_string(),
            format!("prefect.flow-run.{}", Uuid::nil()),
        );
        if let Some(state) = state {
            labels.insert("prefect.state-type".to_string(), state.to_string());
        }
        ReceivedEvent {
            event: "prefect.flow-run.Running".into(),
            follows: None,
            id,
            occurred: chrono::Utc::now(),
            payload: serde_json::Map::new(),
            received: None,
            related: Vec::new(),
            resource: Resource(labels),
        }
    }

    fn seen(state_id: u128, state: StateType) -> Seen {
        Seen {
            state_id: Some(Uuid::from_u128(state_id)),
            state_type: Some(state),
        }
    }

    #[test]
    fn an_event_names_its_state_by_its_label() {
        assert_eq!(
            state_of(&event(Uuid::nil(), Some("COMPLETED"))),
            Some(StateType::Completed)
        );
        assert_eq!(
            state_of(&event(Uuid::nil(), None)),
            None,
            "a heartbeat names none"
        );
        assert!(
            matches!(
                state_of(&event(Uuid::nil(), Some("PONDERING"))),
                Some(StateType::Unknown(_))
            ),
            "a newer server's state is kept as unknown"
        );
    }

    #[test]
    fn only_events_of_the_states_waited_for_wake_a_read() {
        let is_final = |state: &StateType| super::super::is_final(state);
        let running = seen(1, StateType::Running);
        let new = Uuid::from_u128(2);
        assert!(worth_a_read(
            &event(new, Some("COMPLETED")),
            Some(&running),
            &is_final
        ));
        assert!(!worth_a_read(
            &event(new, Some("PENDING")),
            Some(&running),
            &is_final
        ));
        // An event naming no state (a heartbeat) may hide anything: read.
        assert!(worth_a_read(&event(new, None), Some(&running), &is_final));
        // Before the first read, any state the caller wants.
        assert!(worth_a_read(&event(new, Some("FAILED")), None, &is_final));
    }

    #[test]
    fn the_event_of_the_state_read_last_wakes_nothing() {
        let everything = |_: &StateType| true;
        let completed = seen(7, StateType::Completed);
        assert!(!worth_a_read(
            &event(Uuid::from_u128(7), Some("COMPLETED")),
            Some(&completed),
            &everything
        ));
        assert!(worth_a_read(
            &event(Uuid::from_u128(8), Some("COMPLETED")),
            Some(&completed),
            &everything
        ));
    }

    #[test]
    fn a_new_state_of_the_same_type_is_a_change() {
        assert_eq!(seen(1, StateType::Running), seen(1, StateType::Running));
        assert_ne!(
            seen(1, StateType::Running),
            seen(2, StateType::Running),
            "a retry's RUNNING"
        );
        assert_ne!(seen(1, StateType::Running), seen(2, StateType::Completed));
    }
}
