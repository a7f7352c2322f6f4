//! A task run nested under a flow run: created, set RUNNING once the server allows it (tag
//! concurrency limits answer WAIT while full), and ended with the future's result.

use std::fmt::{self, Display};
use std::future::Future;

use tracing::Instrument;
use uuid::Uuid;

use super::flow::RunContext;
use super::orchestration::{Answer, Run, propose_with};
use crate::Error;
use crate::lease::LeaseHolder;
use crate::resources::call;
use crate::resources::flow_runs::state_create;
use crate::types::{StateType, TaskRunCreate};

/// The longest a task run waits for the slots of its tags' limits.
const TAG_SLOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A task run to start; from [`RunContext::task`]. Set its options, then
/// [`run`](TaskScope::run) it. Task runs may run one after another or at once (join their
/// futures); each costs two requests (three with tags).
#[derive(Debug)]
#[must_use = "call .run(...) to run the task"]
pub struct TaskScope {
    ctx: RunContext,
    name: String,
    tags: Vec<String>,
}

/// Why a task run did not return a value.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError<E> {
    /// The task's future returned `Err`; the task run is FAILED with its message.
    Failed(E),
    /// The server did not let the task start (e.g. its flow run is no longer running): it
    /// keeps this state.
    NotStarted {
        /// The state the server keeps.
        state: StateType,
        /// Its message.
        message: Option<String>,
    },
    /// Reporting the task run to Prefect failed.
    Prefect(Error),
}

impl<E: Display> Display for TaskError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(error) => write!(f, "{error}"),
            TaskError::NotStarted { state, message } => write!(
                f,
                "Prefect did not let the task start: it stays {state}{}",
                message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
            ),
            TaskError::Prefect(error) => write!(f, "reporting the task run to Prefect failed: {error}"),
        }
    }
}

/// An error for any task error that can be shown (a boxed error included), so `?` turns it
/// into `Box<dyn Error>` or `anyhow::Error`; the task's own error is shown, not chained, and a
/// failed report shows its cause in the message (the flow run's FAILED message in Prefect's UI
/// is the message alone); match [`TaskError::Prefect`] for the [`Error`] itself.
impl<E: Display + fmt::Debug> std::error::Error for TaskError<E> {}

impl<E> From<Error> for TaskError<E> {
    fn from(error: Error) -> Self {
        TaskError::Prefect(error)
    }
}

impl TaskScope {
    pub(crate) fn new(ctx: RunContext, name: &str) -> TaskScope {
        TaskScope {
            ctx,
            name: name.to_string(),
            tags: Vec::new(),
        }
    }

    /// The task run's tags; a tag with a concurrency limit (v1,
    /// [`concurrency_limits`](crate::Client::concurrency_limits), which Prefect keeps as the
    /// global limit `tag:<tag>`) lets only that many task runs of the tag run at once, across
    /// every process and Prefect's own Python tasks: the task run holds a slot of each under a
    /// lease while it runs, as Prefect's engine does.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Creates the task run (running; or pending until it holds the slots of its tags'
    /// limits), runs `body`, and ends the task run COMPLETED or FAILED (the error's `Display`
    /// as its message): two requests, three with tags. Its `tracing`
    /// events go to the task run's logs when a [`PrefectLogLayer`](super::PrefectLogLayer) is
    /// installed.
    ///
    /// # Errors
    /// [`TaskError::Failed`] with the body's error; [`TaskError::NotStarted`] when Prefect kept
    /// the task from running; [`TaskError::Prefect`] when the task run could not be created or
    /// its slots taken (a failed report of its end is not an error: the flow run reports it).
    pub async fn run<F, Fut, T, E>(self, body: F) -> Result<T, TaskError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
    {
        super::check_run_name("task name", &self.name)?;
        let shared = &self.ctx.shared;
        let client = &shared.client;
        let dynamic_key = {
            let mut counts = shared.task_counts.lock().unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(self.name.clone()).or_default();
            let key = *count;
            *count += 1;
            key
        };
        // Without tags nothing can hold the task back: it is created running (the server sets
        // a new task run's first state as given). With tags it waits pending for its slots.
        let first = if self.tags.is_empty() {
            StateType::Running
        } else {
            StateType::Pending
        };
        let create = TaskRunCreate {
            cache_expiration: None,
            cache_key: None,
            dynamic_key: dynamic_key.to_string(),
            empirical_policy: None,
            flow_run_id: Some(shared.flow_run_id),
            id: None,
            labels: None,
            name: Some(format!("{}-{dynamic_key}", self.name)),
            state: Some(state_create(first, None, None)),
            tags: self.tags.clone(),
            task_inputs: Default::default(),
            task_key: format!("{}.{}", shared.flow_name, self.name),
            task_version: None,
        };
        // An upsert by (flow run, task key, dynamic key): sending it again is safe.
        let task = super::orchestration::resending("creating a task run", || async {
            call!(client, create_task_run(&create))
        })
        .await?;
        let id = task.id;
        // Until it ends, the flow ends it if the future is dropped (cancelled, or the flow
        // returned without awaiting it).
        set_active(&self.ctx, id, true);
        // Tag limits are held here, as Prefect's own engine does: a slot of the global limit
        // `tag:<tag>` per tag, under a lease held by this task run, taken before RUNNING and
        // freed after the end. The server's own rule for them is skipped (`force`): on Prefect
        // 3.8 with SQLite a REST state change of a task run under a tag limit hangs.
        let slots = if self.tags.is_empty() {
            None
        } else {
            let names = self.tags.iter().map(|tag| format!("tag:{tag}"));
            Some(
                client
                    .concurrency(names)
                    .strict(false)
                    .holder(LeaseHolder::TaskRun(id))
                    .timeout(TAG_SLOT_TIMEOUT)
                    .acquire()
                    .await?,
            )
        };
        let force = slots.is_some();
        if force {
            let answer = propose_with(client, Run::Task(id), StateType::Running, None, force).await?;
            match answer {
                Answer::Accepted(_) => {}
                Answer::Rejected(returned) => {
                    let (state, message) = Answer::rejected_state(&returned);
                    set_active(&self.ctx, id, false);
                    return Err(TaskError::NotStarted { state, message });
                }
                Answer::Aborted(reason) => {
                    set_active(&self.ctx, id, false);
                    return Err(TaskError::Prefect(Error::RunAborted { run_id: id, reason }));
                }
            }
        }
        // The flow run's id too: a task run started in a task of its own (`tokio::spawn`) has no
        // flow span above it, and its lines still belong to the flow run.
        let span = tracing::info_span!(
            "prefect_task_run",
            prefect.task_run_id = %id,
            prefect.flow_run_id = %shared.flow_run_id,
            prefect.task = %self.name
        );
        let lines_before = super::lines_queued();
        let result = body().instrument(span).await;
        // Lines the task logged go out before the task is reported done.
        if super::lines_queued() != lines_before {
            let _ = tokio::time::timeout(TASK_LOG_FLUSH_BUDGET, super::flush_logs()).await;
        }
        let (state, message) = match &result {
            Ok(_) => (StateType::Completed, None),
            Err(e) => (StateType::Failed, Some(e.to_string())),
        };
        let answer = propose_with(client, Run::Task(id), state.clone(), message.as_deref(), force).await;
        if let Some(slots) = slots
            && let Err(e) = slots.release().await
        {
            tracing::warn!(task_run_id = %id, error = %e, "releasing the task's tag slots failed; they come back when the lease expires");
        }
        match answer {
            Ok(Answer::Accepted(_) | Answer::Rejected(_)) => set_active(&self.ctx, id, false),
            Ok(Answer::Aborted(reason)) => {
                set_active(&self.ctx, id, false);
                return Err(TaskError::Prefect(Error::RunAborted { run_id: id, reason }));
            }
            // The body's result is not lost for a failed report: the flow run reports the
            // task's end at its own end, and the caller gets what the body returned.
            Err(e) => {
                tracing::warn!(task_run_id = %id, error = %e, "reporting the task run's end failed; the flow run reports it when it ends");
                intend(&self.ctx, id, state, message);
            }
        }
        result.map_err(TaskError::Failed)
    }
}

/// How long the end of a task run that logged waits for its lines to reach the server.
const TASK_LOG_FLUSH_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Records the end a task run could not report, for its flow run to report at its own end.
fn intend(ctx: &RunContext, id: Uuid, state: StateType, message: Option<String>) {
    let mut tasks = ctx.shared.active_tasks.lock().unwrap_or_else(|p| p.into_inner());
    tasks.insert(id, Some((state, message)));
}

fn set_active(ctx: &RunContext, id: Uuid, active: bool) {
    let mut tasks = ctx.shared.active_tasks.lock().unwrap_or_else(|p| p.into_inner());
    if active {
        tasks.insert(id, None);
    } else {
        tasks.remove(&id);
    }
}
