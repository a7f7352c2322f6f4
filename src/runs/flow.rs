//! A flow run around a Rust future: created, moved through Prefect's states, watched for
//! cancellation, and ended with the future's outcome.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::context::RunContext;
use super::execution::{Execution, Heartbeat};
use super::outcome::FlowRunReport;
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
    /// "TimedOut" ([`Outcome::TimedOut`](super::Outcome::TimedOut)).
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
    /// The SDK's, not the body's (those are the [`Outcome`](super::Outcome)): [`Error::InvalidInput`] for a bad
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
            supervisor: None,
        };
        // One attempt: a run made here has no retries, and a body is run once.
        let mut body = Some(body);
        execution.run(move |ctx| body.take().map(|body| body(ctx))).await
    }
}
