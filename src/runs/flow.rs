//! A flow run around a Rust future: created, moved through Prefect's states, watched for
//! cancellation, and ended with the future's outcome.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::execution::{Execution, Heartbeat};
use super::task::TaskScope;
use crate::resources::flow_runs::flow_run_create;
use crate::resources::{InvalidField, call, json_object};
use crate::types::{FlowRunCreate, StateType};
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
    parameters: Result<Map<String, Value>, InvalidField>,
    tags: Vec<String>,
    heartbeat: Option<Duration>,
    timeout: Option<Duration>,
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
    /// is CANCELLED. A cancellation that came as the future ended wins over its value, as in
    /// Prefect's UI: the run is CANCELLED and the value dropped.
    Cancelled,
    /// One attempt took longer than the run's timeout and was stopped; the run is FAILED,
    /// named "TimedOut".
    TimedOut(Duration),
    /// The run was stopped from outside its own code (the process serving it shutting down,
    /// its deployment's concurrency slot lost) and the future dropped; the run is in `state`:
    /// SCHEDULED again (for another process), CANCELLED or CRASHED.
    Stopped {
        /// The state the run was left in.
        state: StateType,
        /// Why.
        message: String,
    },
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
    /// Why the end could not be reported to Prefect, when it could not (the server refused it,
    /// or stayed away past the resends): the outcome above stands in this process, but Prefect
    /// still shows the run as it last was. Its heartbeats have stopped, so Prefect's zombie-run
    /// automation marks it CRASHED in time when it watches heartbeats.
    pub unreported: Option<Error>,
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
            timeout: None,
        }
    }

    /// The run's parameters, shown in the UI: any value serializing to a JSON object.
    pub fn parameters(mut self, parameters: &impl Serialize) -> Self {
        self.parameters = json_object("flow run parameters", parameters);
        self
    }

    /// The run's tags.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Emits `prefect.flow-run.heartbeat` events this often while the run runs, so that a
    /// server with a heartbeat automation (or Prefect Cloud) marks a run whose process died as
    /// crashed. By default every run beats as the client's
    /// [`flow_heartbeat`](crate::Config::flow_heartbeat) says (Prefect's
    /// `PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, 180 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every.max(Duration::from_secs(1)));
        self
    }

    /// Stops the future if it runs longer than this, and ends the run FAILED, named
    /// "TimedOut" ([`Outcome::TimedOut`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
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
    /// the error of a request that creates the run or starts it. Once the body ran, its outcome
    /// is always returned: an end Prefect did not record is in [`FlowRunReport::unreported`].
    pub async fn run<F, Fut, T, E>(self, body: F) -> Result<FlowRunReport<T, E>, Error>
    where
        F: FnOnce(RunContext) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let parameters = self.parameters?;
        super::check_run_name("flow name", &self.name)?;
        let client = self.client;
        let flow = client.flows().create(&self.name).await?;
        let create = FlowRunCreate {
            parameters,
            tags: self.tags,
            ..flow_run_create(flow.id, StateType::Pending)
        };
        let run = call!(client, create_flow_run(&create))?;
        let heartbeat = self
            .heartbeat
            .or(client.config().flow_heartbeat())
            .map(|every| Heartbeat {
                every,
                run_name: run.name.clone().unwrap_or_default(),
                flow_id: flow.id,
                flow_name: self.name.clone(),
                deployment_id: None,
                tags: run.tags.clone(),
            });
        let execution = Execution {
            client,
            flow_run_id: run.id,
            flow_name: self.name,
            heartbeat,
            timeout: self.timeout,
            stop: None,
            running: None,
            watch_cancellation: true,
        };
        // One attempt: a run made here has no retries, and a body is run once.
        let mut body = Some(body);
        execution.run(move |ctx| body.take().map(|body| body(ctx))).await
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
}
