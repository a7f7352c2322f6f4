//! Flow runs: get, list, watch, wait for a state, set state, cancel, delete, read logs.
//!
//! `watch` (the run as its state changes, woken by its events, polled as a fallback) has a file
//! of its own; the waits here are that watch, consumed until the state waited for.

mod watch;

use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::time::Instant;
use uuid::Uuid;

use crate::query::{FlowRunQuery, LogQuery};
use crate::resources::{call, send_on_await};
use crate::types::{
    FlowRunCreate, FlowRunResponse, Log, LogFilter, LogFilterFlowRunId, LogSort, OrchestrationResult,
    SetFlowRunStateBody, State, StateCreate, StateType,
};
use crate::{Client, Error};

/// Whether a run in this state is done for good: completed, failed, cancelled or crashed. A
/// state type this SDK does not know (a newer server's) is not final.
pub fn is_final(state: &StateType) -> bool {
    matches!(
        state,
        StateType::Completed | StateType::Failed | StateType::Cancelled | StateType::Crashed
    )
}

/// Flow runs; from [`Client::flow_runs`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, id: uuid::Uuid) -> Result<(), prefect_client::Error> {
/// use futures_util::TryStreamExt;
/// use prefect_client::types::StateType;
///
/// let run = client.flow_runs().get(id).await?;
/// client.flow_runs().set_state(run.id, StateType::Running).message("picked up").await?;
/// let logs: Vec<_> = client.flow_runs().logs(run.id).try_collect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FlowRuns<'a> {
    client: &'a Client,
}

impl<'a> FlowRuns<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        FlowRuns { client }
    }

    /// The flow run with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no flow run has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<FlowRunResponse, Error> {
        call!(self.client, read_flow_run(&id))
    }

    crate::resources::list_verbs!("flow runs", FlowRunQuery => FlowRunResponse);

    /// The run now, then again each time its state changes, for as long as the stream is
    /// polled (a final state too: a run can be retried from the UI). The run's events (the
    /// `/events/out` websocket) wake a read as they happen, and it is read at least every 10 s
    /// anyway; while the socket cannot be used, polls (from 0.5 s growing to 10 s) stand in, and
    /// the socket is opened again when it can be. A state the run passes through between two
    /// reads may be skipped; the state it is in is always seen.
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client, id: uuid::Uuid) -> Result<(), prefect_client::Error> {
    /// use futures_util::StreamExt;
    /// use prefect_client::resources::flow_runs::is_final;
    ///
    /// let mut runs = client.flow_runs().watch(id);
    /// while let Some(run) = runs.next().await {
    ///     let run = run?;
    ///     println!("{:?} {:?}", run.state_type, run.state_name);
    ///     if run.state_type.as_ref().is_some_and(is_final) {
    ///         break;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The stream ends after its first error, its last item: [`Error::NotFound`] for no such
    /// run (or one deleted meanwhile); any other error of reading it. A socket that cannot be
    /// used is not an error (the watch polls).
    pub fn watch(
        &self,
        id: Uuid,
    ) -> impl Stream<Item = Result<FlowRunResponse, Error>> + Send + Unpin + use<> {
        watch::watch(self.client, id, |_: &StateType| true)
    }

    /// [`watch`](FlowRuns::watch), with only the events naming a state `wakes` accepts (or no
    /// state) waking a read: a caller waiting for some states saves the reads of the others
    /// (the polls still read the run whatever its state).
    pub(crate) fn watch_woken_by<W>(
        &self,
        id: Uuid,
        wakes: W,
    ) -> impl Stream<Item = Result<FlowRunResponse, Error>> + Send + Unpin + use<W>
    where
        W: Fn(&StateType) -> bool + Send + Sync + 'static,
    {
        watch::watch(self.client, id, wakes)
    }

    /// Waits until the run reaches a final state ([`is_final`]) and returns it: the run's
    /// [`watch`](FlowRuns::watch) (woken by its state-change events, polled as a fallback),
    /// consumed until then.
    ///
    /// # Errors
    /// [`Error::WaitTimeout`] after `timeout`, saying which state the run was still in;
    /// [`Error::NotFound`] for no such run; any error of reading it.
    pub async fn wait_for_completion(&self, id: Uuid, timeout: Duration) -> Result<FlowRunResponse, Error> {
        self.wait_until(id, timeout, is_final).await
    }

    /// Waits until the run is in one of `states` (or in a final state, which it cannot leave)
    /// and returns it, as [`wait_for_completion`](FlowRuns::wait_for_completion) does.
    ///
    /// # Errors
    /// As [`wait_for_completion`](FlowRuns::wait_for_completion).
    pub async fn wait_for_state(
        &self,
        id: Uuid,
        states: &[StateType],
        timeout: Duration,
    ) -> Result<FlowRunResponse, Error> {
        let states = states.to_vec();
        self.wait_until(id, timeout, move |state| {
            states.contains(state) || is_final(state)
        })
        .await
    }

    /// The run once it is in a state `done` accepts, within `timeout`: its watch, woken only by
    /// the events of such states, then one last read at the timeout.
    async fn wait_until(
        &self,
        id: Uuid,
        timeout: Duration,
        done: impl Fn(&StateType) -> bool + Send + Sync + 'static,
    ) -> Result<FlowRunResponse, Error> {
        let started = Instant::now();
        let done = Arc::new(done);
        let wakes = {
            let done = done.clone();
            move |state: &StateType| done(state)
        };
        let mut runs = self.watch_woken_by(id, wakes);
        let left = || timeout.saturating_sub(started.elapsed());
        while let Ok(Some(run)) = tokio::time::timeout(left(), runs.next()).await {
            let run = run?;
            match &run.state_type {
                Some(state) if done(state) => return Ok(run),
                Some(StateType::Unknown(name)) => tracing::warn!(
                    flow_run_id = %id,
                    state_type = %name,
                    "the flow run is in a state type this SDK does not know; waiting until a known final state"
                ),
                _ => {}
            }
        }
        // The time is up: the run as it is now decides.
        let run = self.get(id).await?;
        match &run.state_type {
            Some(state) if done(state) => Ok(run),
            state => Err(Error::WaitTimeout {
                flow_run_id: id,
                waited: started.elapsed(),
                state: state.as_ref().map(ToString::to_string),
            }),
        }
    }

    /// Proposes a new state; set its options, then [`send`](SetState::send). The server's
    /// orchestration rules may accept, reject or change it (see the result's `status`).
    pub fn set_state(&self, id: Uuid, state: StateType) -> SetState {
        SetState {
            client: self.client.clone(),
            id,
            state,
            message: None,
            force: false,
        }
    }

    /// Cancels the run as Prefect's CLI does: proposes CANCELLING and lets the server and the
    /// executing side end it. The server sets a scheduled run that no infrastructure holds
    /// CANCELLED at once; a pending or running one stays CANCELLING until the process executing
    /// it stops it and sets CANCELLED (or the server gives up after 300 s). The answer's state
    /// says which; a run already in a final state is refused (ABORT).
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such run; any error of the request.
    pub async fn cancel(&self, id: Uuid) -> Result<OrchestrationResult, Error> {
        self.set_state(id, StateType::Cancelling)
            .message("cancelled through the Rust client")
            .await
    }

    /// The states the run went through, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no flow run has this id; any other error of the request.
    pub async fn states(&self, id: Uuid) -> Result<Vec<State>, Error> {
        let mut states: Vec<State> = call!(self.client, read_flow_run_states(&id))?;
        states.sort_by_key(|s| s.timestamp);
        Ok(states)
    }

    /// Deletes the run.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_flow_run(&id))
    }

    /// The run's logs, oldest first.
    pub fn logs(&self, id: Uuid) -> impl Stream<Item = Result<Log, Error>> + Send + use<> {
        let filter = LogQuery {
            logs: Some(LogFilter {
                flow_run_id: Some(LogFilterFlowRunId { any: Some(vec![id]) }),
                ..Default::default()
            }),
            sort: Some(LogSort::TimestampAsc),
            ..Default::default()
        };
        self.client.logs().stream(filter)
    }
}

/// A state to propose for a flow run; from [`FlowRuns::set_state`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to propose the state"]
pub struct SetState {
    client: Client,
    id: Uuid,
    state: StateType,
    message: Option<String>,
    force: bool,
}

impl SetState {
    /// The state's message, shown in Prefect's UI.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Skips the server's orchestration rules: the state is set as given.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// Sends the proposal; the result's `status` says whether the server accepted it.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such run; any error of the request.
    pub async fn send(self) -> Result<OrchestrationResult, Error> {
        let body = SetFlowRunStateBody {
            force: self.force,
            state: state_create(self.state, None, self.message),
        };
        call!(self.client, set_flow_run_state(&self.id, &body))
    }
}

send_on_await! {
    SetState => OrchestrationResult;
}

/// The body creating a flow run of `flow_id` in `state`, with no parameters, tags or
/// deployment (set the fields that differ with `..flow_run_create(..)`).
pub(crate) fn flow_run_create(flow_id: Uuid, state: StateType) -> FlowRunCreate {
    FlowRunCreate {
        context: serde_json::Map::new(),
        deployment_id: None,
        empirical_policy: None,
        flow_id,
        flow_version: None,
        idempotency_key: None,
        infrastructure_document_id: None,
        job_variables: None,
        labels: None,
        name: None,
        parameters: serde_json::Map::new(),
        parent_task_run_id: None,
        state: Some(state_create(state, None, None)),
        tags: Vec::new(),
        work_pool_name: None,
        work_queue_name: None,
    }
}

/// A state to propose: its type, and optionally its name (else the type's) and message.
pub(crate) fn state_create(state: StateType, name: Option<String>, message: Option<String>) -> StateCreate {
    StateCreate {
        data: None,
        message,
        name,
        state_details: None,
        type_: state,
    }
}
