//! Flow runs: read, filter, wait for a final state, set state, cancel, delete, read logs.

use std::time::Duration;

use futures_core::Stream;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::pagination::{STREAM_PAGE_SIZE, paginate, typed};
use crate::types::{
    FlowRunResponse, Log, LogFilter, LogFilterFlowRunId, LogSort, OrchestrationResult, ReadFlowRunsBody,
    ReadLogsBody, StateType,
};
use crate::{Client, Error};

/// The first pause between polls of [`FlowRuns::wait_for_completion`]; it grows to
/// [`MAX_POLL_INTERVAL`].
pub const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The longest pause between polls of [`FlowRuns::wait_for_completion`].
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Whether a run in this state is done for good: completed, failed, cancelled or crashed.
pub fn is_final(state: StateType) -> bool {
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
/// let run = client.flow_runs().read(id).await?;
/// client.flow_runs().set_state(run.id, StateType::Running, None, false).await?;
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

    /// Reads a flow run by id.
    pub async fn read(&self, id: Uuid) -> Result<FlowRunResponse, Error> {
        unwrap_response("read_flow_run", self.client.raw().read_flow_run(&id).await).await
    }

    /// One page of flow runs matching `filter` (its `limit` and `offset` apply).
    pub async fn filter(&self, filter: &ReadFlowRunsBody) -> Result<Vec<FlowRunResponse>, Error> {
        unwrap_response("read_flow_runs", self.client.raw().read_flow_runs(filter).await).await
    }

    /// Every flow run matching `filter` (`ReadFlowRunsBody::default()` for all).
    pub fn stream(
        &self,
        filter: ReadFlowRunsBody,
    ) -> impl Stream<Item = Result<FlowRunResponse, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(STREAM_PAGE_SIZE, move |offset, limit| {
            let (client, mut page) = (client.clone(), filter.clone());
            page.offset = offset;
            page.limit = Some(i64::from(limit));
            async move { client.flow_runs().filter(&page).await }
        })
    }

    /// Polls the run until it reaches a final state ([`is_final`]) and returns it; polls
    /// start [`FIRST_POLL_INTERVAL`] apart and back off to [`MAX_POLL_INTERVAL`]. After
    /// `timeout`, [`Error::WaitTimeout`] says which state the run was still in.
    pub async fn wait_for_completion(&self, id: Uuid, timeout: Duration) -> Result<FlowRunResponse, Error> {
        let started = Instant::now();
        let mut pause = FIRST_POLL_INTERVAL;
        loop {
            let run = self.read(id).await?;
            if run.state_type.is_some_and(is_final) {
                return Ok(run);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::WaitTimeout {
                    flow_run_id: id,
                    waited,
                    state: run.state_type.map(|s| s.to_string()),
                });
            }
            tokio::time::sleep(pause.min(timeout - waited)).await;
            pause = (pause * 3 / 2).min(MAX_POLL_INTERVAL);
        }
    }

    /// Proposes a new state; the server's orchestration rules may accept, reject or change it
    /// (see the result's `status`). `force` skips those rules.
    pub async fn set_state(
        &self,
        id: Uuid,
        state: StateType,
        message: Option<&str>,
        force: bool,
    ) -> Result<OrchestrationResult, Error> {
        let body = typed(
            "state",
            json!({ "state": { "type": state, "message": message }, "force": force }),
        )?;
        unwrap_response(
            "set_flow_run_state",
            self.client.raw().set_flow_run_state(&id, &body).await,
        )
        .await
    }

    /// Cancels the run: a run that has not started (scheduled, pending, paused) is cancelled at
    /// once; a running one is set to cancelling, for its worker to stop it.
    pub async fn cancel(&self, id: Uuid) -> Result<OrchestrationResult, Error> {
        let run = self.read(id).await?;
        let target = match run.state_type {
            Some(StateType::Running | StateType::Cancelling) => StateType::Cancelling,
            _ => StateType::Cancelled,
        };
        self.set_state(id, target, Some("cancelled through the Rust client"), false)
            .await
    }

    /// Deletes the run.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        unwrap_response("delete_flow_run", self.client.raw().delete_flow_run(&id).await).await
    }

    /// The run's logs, oldest first.
    pub fn logs(&self, id: Uuid) -> impl Stream<Item = Result<Log, Error>> + Send + use<> {
        let filter = ReadLogsBody {
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
