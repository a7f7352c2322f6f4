//! A flow run around a Rust future: created, moved through Prefect's states, watched for
//! cancellation, and ended with the future's outcome.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::orchestration::{Answer, Run, propose, propose_with};
use super::task::TaskScope;
use crate::resources::call;
use crate::resources::flow_runs::state_create;
use crate::types::{FlowRunCreate, StateType};
use crate::waits::{CANCELLATION_WATCH_RETRY, LOG_FLUSH_BUDGET};
use crate::{Client, Error};

/// A flow run to start; from [`Client::new_flow_run`]. Set its options, then
/// [`run`](FlowScope::run).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use prefect_client::runs::Outcome;
///
/// let report = client
///     .new_flow_run("ingest")
///     .parameters(&serde_json::json!({ "day": "2026-11-29" }))
///     .tags(["rust"])
///     .run(|ctx| async move {
///         let rows = ctx.task("extract").run(|| async { Ok::<_, std::io::Error>(500) }).await?;
///         tracing::info!(rows, "extracted");
///         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(rows)
///     })
///     .await?;
/// println!("{}: {:?}", report.url, report.outcome.is_completed());
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call .run(...) to start the flow run"]
pub struct FlowScope {
    client: Client,
    name: String,
    parameters: Result<Map<String, Value>, String>,
    tags: Vec<String>,
    heartbeat: Option<Duration>,
}

/// How a run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome<T, E> {
    /// The future returned `Ok`; the run is COMPLETED.
    Completed(T),
    /// The future returned `Err`; the run is FAILED with the error as its message.
    Failed(E),
    /// The future panicked; the run is CRASHED with the panic's message.
    Panicked(String),
    /// The run was cancelled from outside (the UI or the API) and the future stopped; the run
    /// is CANCELLED.
    Cancelled,
    /// The server did not let the run start: it keeps the run in this state (with its
    /// message); the future never ran.
    NotStarted {
        /// The state the server keeps.
        state: StateType,
        /// Its message.
        message: Option<String>,
    },
}

impl<T, E> Outcome<T, E> {
    /// Whether the run completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed(_))
    }

    /// The value, if the run completed.
    pub fn completed(self) -> Option<T> {
        match self {
            Outcome::Completed(value) => Some(value),
            _ => None,
        }
    }
}

/// A finished flow run: its id, its page in Prefect's UI, and its outcome.
#[derive(Debug)]
#[non_exhaustive]
pub struct FlowRunReport<T, E> {
    /// The flow run.
    pub flow_run_id: Uuid,
    /// The run's page in Prefect's UI.
    pub url: String,
    /// How it ended.
    pub outcome: Outcome<T, E>,
}

/// The end a task run meant to report: its state and message.
pub(crate) type TaskEnd = (StateType, Option<String>);

/// What a running flow's code sees: its run, and task runs nested under it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RunContext {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) flow_run_id: Uuid,
    pub(crate) flow_name: String,
    pub(crate) url: String,
    /// Task runs per task name so far: each one's `dynamic_key`.
    pub(crate) task_counts: Mutex<HashMap<String, u64>>,
    /// Task runs that started and have not ended, each with the final state it meant to report
    /// if reporting it failed (the flow reports it at its end instead).
    pub(crate) active_tasks: Mutex<HashMap<Uuid, Option<TaskEnd>>>,
}

impl RunContext {
    /// The flow run's id.
    pub fn flow_run_id(&self) -> Uuid {
        self.shared.flow_run_id
    }

    /// The flow run's page in Prefect's UI.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The client the run reports through.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// A task run named `name`, nested under this flow run; set its options, then
    /// [`run`](TaskScope::run) it.
    pub fn task(&self, name: &str) -> TaskScope {
        TaskScope::new(self.clone(), name)
    }
}

impl FlowScope {
    pub(crate) fn new(client: &Client, name: &str) -> FlowScope {
        FlowScope {
            client: client.clone(),
            name: name.to_string(),
            parameters: Ok(Map::new()),
            tags: Vec::new(),
            heartbeat: None,
        }
    }

    /// The run's parameters, shown in the UI: any value serializing to a JSON object.
    pub fn parameters(mut self, parameters: &impl Serialize) -> Self {
        self.parameters = match serde_json::to_value(parameters) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(_) => Err("must serialize to a JSON object".into()),
            Err(e) => Err(format!("cannot be serialized: {e}")),
        };
        self
    }

    /// The run's tags.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Emits `prefect.flow-run.heartbeat` events this often while the run runs, so that a
    /// server with a heartbeat automation (or Prefect Cloud) marks a run whose process died as
    /// crashed. Prefect's own runs beat every 30 s or more.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every.max(Duration::from_secs(1)));
        self
    }

    /// Creates the flow (by name) and a flow run, proposes RUNNING (waiting while the server
    /// says WAIT), runs `body` inside the run (its `tracing` events go to the run's logs when a
    /// [`PrefectLogLayer`](super::PrefectLogLayer) is installed), and ends the run COMPLETED,
    /// FAILED (the error's `Display` as the message), CRASHED (a panic) or CANCELLED (a
    /// cancellation from outside stops the future within moments).
    ///
    /// # Errors
    /// The SDK's, not the body's (those are the [`Outcome`]): [`Error::InvalidInput`] for a bad
    /// name or parameters (nothing sent); [`Error::RunAborted`] when Prefect aborts the run;
    /// the error of a request that creates the run or reports its state.
    pub async fn run<F, Fut, T, E>(self, body: F) -> Result<FlowRunReport<T, E>, Error>
    where
        F: FnOnce(RunContext) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let parameters = self
            .parameters
            .map_err(|problem| Error::invalid("flow run parameters", problem))?;
        super::check_run_name("flow name", &self.name)?;
        let client = self.client;
        let flow = client.flows().create(&self.name).await?;
        let create = FlowRunCreate {
            context: Map::new(),
            deployment_id: None,
            empirical_policy: None,
            flow_id: flow.id,
            flow_version: None,
            idempotency_key: None,
            infrastructure_document_id: None,
            job_variables: None,
            labels: None,
            name: None,
            parameters,
            parent_task_run_id: None,
            state: Some(state_create(StateType::Pending, None, None)),
            tags: self.tags,
            work_pool_name: None,
            work_queue_name: None,
        };
        let run = call!(client, create_flow_run(&create))?;
        let execution = Execution {
            client,
            flow_run_id: run.id,
            flow_name: self.name,
            heartbeat: self.heartbeat,
        };
        execution.run(body).await
    }
}

/// Executing one flow run that exists already (created here, or by Prefect for a deployment):
/// RUNNING, the body in a task of its own, the cancellation watch and heartbeats, the end.
pub(crate) struct Execution {
    pub(crate) client: Client,
    pub(crate) flow_run_id: Uuid,
    pub(crate) flow_name: String,
    pub(crate) heartbeat: Option<Duration>,
}

impl Execution {
    /// Proposes RUNNING (waiting while the server says WAIT), runs `body` and reports its end.
    /// Dropping this future before the end is reported stops the body and the heartbeats and
    /// ends the run CANCELLED (see [`Abandon`]).
    pub(crate) async fn run<F, Fut, T, E>(self, body: F) -> Result<FlowRunReport<T, E>, Error>
    where
        F: FnOnce(RunContext) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let Execution {
            client,
            flow_run_id: id,
            flow_name,
            heartbeat,
        } = self;
        let url = ui_url(client.api_url(), "flow-run", id);
        let report = |outcome| FlowRunReport {
            flow_run_id: id,
            url: url.clone(),
            outcome,
        };
        match propose(&client, Run::Flow(id), StateType::Running, None).await? {
            Answer::Accepted => {}
            Answer::Rejected(state, message) => return Ok(report(Outcome::NotStarted { state, message })),
            Answer::Aborted(reason) => return Err(Error::RunAborted { run_id: id, reason }),
        }
        let ctx = RunContext {
            shared: Arc::new(Shared {
                client: client.clone(),
                flow_run_id: id,
                flow_name: flow_name.clone(),
                url: url.clone(),
                task_counts: Mutex::default(),
                active_tasks: Mutex::default(),
            }),
        };
        let span =
            tracing::info_span!("prefect_flow_run", prefect.flow_run_id = %id, prefect.flow = %flow_name);
        let work = tokio::spawn(body(ctx.clone()).instrument(span));
        let heartbeat = heartbeat.map(|every| tokio::spawn(beat(client.clone(), id, every)));
        let mut abandon = Abandon {
            shared: ctx.shared.clone(),
            work: work.abort_handle(),
            heartbeat: heartbeat.as_ref().map(|h| h.abort_handle()),
            end: Some((StateType::Cancelled, DROPPED.to_string())),
        };
        let outcome = watch(&client, id, work).await;
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
        }
        let (state, message) = match &outcome {
            Outcome::Completed(_) => (StateType::Completed, None),
            Outcome::Failed(e) => (StateType::Failed, Some(e.to_string())),
            Outcome::Panicked(message) => (
                StateType::Crashed,
                Some(format!("the Rust future panicked: {message}")),
            ),
            Outcome::Cancelled => (
                StateType::Cancelled,
                Some("cancelled; the Rust future was stopped".to_string()),
            ),
            Outcome::NotStarted { .. } => {
                abandon.disarm();
                return Ok(report(outcome));
            }
        };
        // Dropped from here on, the run still ends as the body did.
        abandon.end = Some((state.clone(), message.clone().unwrap_or_default()));
        end_tasks(&ctx.shared, &outcome).await;
        let _ = tokio::time::timeout(LOG_FLUSH_BUDGET, super::flush_logs()).await;
        let answer = propose(&client, Run::Flow(id), state, message.as_deref()).await;
        abandon.disarm();
        match answer? {
            Answer::Accepted | Answer::Rejected(..) => Ok(report(outcome)),
            Answer::Aborted(reason) => Err(Error::RunAborted { run_id: id, reason }),
        }
    }
}

/// The message of a run whose future was dropped before it ended.
const DROPPED: &str = "the Rust future running this flow run was dropped before it finished \
                       (cancelled by its caller, e.g. a timeout around it); its work was stopped";

/// A flow run under way whose end has not been reported. Dropped so (the future of
/// [`FlowScope::run`] dropped by a timeout or a `select!`, or its runtime shutting down), it
/// stops the body and the heartbeats, ends the task runs left running, and ends the flow run
/// with `end` (CANCELLED, saying why, unless the body had ended already), on the runtime while
/// it runs and from a thread of its own at program end.
struct Abandon {
    shared: Arc<Shared>,
    work: tokio::task::AbortHandle,
    heartbeat: Option<tokio::task::AbortHandle>,
    end: Option<(StateType, String)>,
}

impl Abandon {
    fn disarm(&mut self) {
        self.end = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some((state, message)) = self.end.take() else {
            return;
        };
        self.work.abort();
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.abort();
        }
        let shared = self.shared.clone();
        tracing::warn!(flow_run_id = %shared.flow_run_id, %state, "the flow run's future was dropped before its end was reported; ending it");
        crate::detached::finish(
            &shared.client.clone(),
            "ending a flow run whose future was dropped",
            Box::new(move |client| {
                let (shared, state, message) = (shared.clone(), state.clone(), message.clone());
                Box::pin(async move {
                    end_active_tasks(&client, &shared, StateType::Cancelled, DROPPED_TASK).await;
                    let message = (!message.is_empty()).then_some(message.as_str());
                    propose_with(&client, Run::Flow(shared.flow_run_id), state, message, true)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            }),
        );
    }
}

/// The message of a task run whose flow run's future was dropped while it ran.
const DROPPED_TASK: &str = "the flow run's future was dropped while this task ran";

/// Runs the work until it ends or the run is set cancelling (seen by its events, or by polls
/// when the event socket cannot be used).
async fn watch<T, E>(
    client: &Client,
    id: Uuid,
    mut work: tokio::task::JoinHandle<Result<T, E>>,
) -> Outcome<T, E> {
    let far = Duration::from_secs(365 * 24 * 3600);
    let client = client.clone();
    let cancelled = async move {
        loop {
            match client
                .flow_runs()
                .wait_for_state(id, &[StateType::Cancelling, StateType::Cancelled], far)
                .await
            {
                Ok(run) if matches!(run.state_type, Some(StateType::Cancelling | StateType::Cancelled)) => {
                    return;
                }
                // Another final state was forced from outside: the work goes on to its end.
                Ok(_) => std::future::pending::<()>().await,
                Err(e) => {
                    tracing::warn!(flow_run_id = %id, error = %e, "watching the flow run for cancellation failed; trying again");
                    tokio::time::sleep(CANCELLATION_WATCH_RETRY).await;
                }
            }
        }
    };
    tokio::select! {
        joined = &mut work => match joined {
            Ok(Ok(value)) => Outcome::Completed(value),
            Ok(Err(error)) => Outcome::Failed(error),
            Err(e) if e.is_panic() => Outcome::Panicked(panic_message(e.into_panic())),
            Err(_) => Outcome::Cancelled,
        },
        () = cancelled => {
            work.abort();
            let _ = work.await;
            Outcome::Cancelled
        }
    }
}

/// Ends task runs the flow left running: CANCELLED when the flow was cancelled, CRASHED when it
/// panicked, else CANCELLED (the flow returned before they ended).
async fn end_tasks<T, E>(shared: &Shared, outcome: &Outcome<T, E>) {
    let (state, message) = match outcome {
        Outcome::Panicked(_) => (
            StateType::Crashed,
            "the flow run's future panicked while this task ran",
        ),
        Outcome::Cancelled => (
            StateType::Cancelled,
            "the flow run was cancelled while this task ran",
        ),
        _ => (StateType::Cancelled, "the flow run ended while this task ran"),
    };
    end_active_tasks(&shared.client, shared, state, message).await;
}

/// Ends every task run of the flow run that started and has not ended, with `state` (forced:
/// the flow ends its own task runs, and a tagged one's rule could hang, see task.rs); a task run
/// whose own end could not be reported ends with the state it meant to report.
async fn end_active_tasks(client: &Client, shared: &Shared, state: StateType, message: &str) {
    let active: Vec<(Uuid, Option<TaskEnd>)> = shared
        .active_tasks
        .lock()
        .map(|mut tasks| tasks.drain().collect())
        .unwrap_or_default();
    for (task, intended) in active {
        let (state, message) = match intended {
            Some((state, message)) => (state, message),
            None => (state.clone(), Some(message.to_string())),
        };
        if let Err(e) = propose_with(client, Run::Task(task), state, message.as_deref(), true).await {
            tracing::warn!(task_run_id = %task, error = %e, "could not end a task run the flow left running");
        }
    }
}

async fn beat(client: Client, id: Uuid, every: Duration) {
    loop {
        let event = client
            .events()
            .emit("prefect.flow-run.heartbeat", &format!("prefect.flow-run.{id}"))
            .send()
            .await;
        if let Err(e) = event {
            tracing::debug!(flow_run_id = %id, error = %e, "a heartbeat failed");
        }
        tokio::time::sleep(every).await;
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

/// A run's page in Prefect's UI: the API URL without `/api` for a self-hosted server; Prefect
/// Cloud's app URL for its workspaces.
pub(crate) fn ui_url(api_url: &str, kind: &str, id: Uuid) -> String {
    let api = api_url.trim_end_matches('/');
    if let Some(rest) = api.strip_prefix("https://api.prefect.cloud/api/accounts/") {
        let mut parts = rest.split('/');
        if let (Some(account), Some("workspaces"), Some(workspace)) =
            (parts.next(), parts.next(), parts.next())
        {
            return format!(
                "https://app.prefect.cloud/account/{account}/workspace/{workspace}/runs/{kind}/{id}"
            );
        }
    }
    let base = api.strip_suffix("/api").unwrap_or(api);
    format!("{base}/runs/{kind}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_urls_of_a_local_server_and_of_prefect_cloud() {
        let id = Uuid::nil();
        assert_eq!(
            ui_url("http://127.0.0.1:4200/api", "flow-run", id),
            format!("http://127.0.0.1:4200/runs/flow-run/{id}")
        );
        assert_eq!(
            ui_url(
                "https://api.prefect.cloud/api/accounts/A/workspaces/W/",
                "flow-run",
                id
            ),
            format!("https://app.prefect.cloud/account/A/workspace/W/runs/flow-run/{id}")
        );
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7)), "a panic without a message");
    }
}
