//! Task runs: get, list, and the states a run went through.

use uuid::Uuid;

use crate::query::TaskRunQuery;
use crate::resources::call;
use crate::types::{State, TaskRun};
use crate::{Client, Error};

/// Task runs; from [`Client::task_runs`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, flow_run: uuid::Uuid) -> Result<(), prefect_client::Error> {
/// use futures_util::TryStreamExt;
/// use prefect_client::query::{TaskRunFilter, TaskRunFilterFlowRunId, TaskRunQuery};
///
/// let query = TaskRunQuery {
///     task_runs: Some(TaskRunFilter {
///         flow_run_id: Some(TaskRunFilterFlowRunId { any: Some(vec![flow_run]), ..Default::default() }),
///         ..Default::default()
///     }),
///     ..Default::default()
/// };
/// let runs: Vec<_> = client.task_runs().stream(query).try_collect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TaskRuns<'a> {
    client: &'a Client,
}

impl<'a> TaskRuns<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        TaskRuns { client }
    }

    /// The task run with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no task run has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<TaskRun, Error> {
        call!(self.client, read_task_run(&id))
    }

    crate::resources::list_verbs!("task runs", TaskRunQuery => TaskRun);

    /// Deletes the task run with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no task run has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_task_run(&id))
    }

    /// The states the task run went through, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no task run has this id; any other error of the request.
    pub async fn states(&self, id: Uuid) -> Result<Vec<State>, Error> {
        let mut states: Vec<State> = call!(self.client, read_task_run_states(&id))?;
        states.sort_by_key(|s| s.timestamp);
        Ok(states)
    }
}
