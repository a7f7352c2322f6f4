//! Serving deployments from this process, as Prefect's `flow.serve()` does: [`Serve`], and the
//! [`Serving`] handle of a process that serves.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::core::{Core, Found};
use super::flow::RustFlow;
use super::polling::{self, Due, LoopOptions, OnShutdown, Source};
use super::shutdown::LoopHandle;
use crate::resources::call;
use crate::resources::deployments::DeploymentSpec;
use crate::types::{
    DeploymentResponse, EventFilter, EventNameFilter, EventRelatedFilter,
    GetScheduledFlowRunsForDeploymentsBody,
};
use crate::{Client, Error};

/// Deployments served by this process; from [`Client::serve`]. Add deployments of its flows,
/// set its options, then await it (it serves until SIGTERM or Ctrl-C, then shuts down
/// gracefully) or [`start`](Serve::start) it for a [`Serving`] handle.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, flow: prefect_client::serve::RustFlow) -> Result<(), prefect_client::Error> {
/// use std::time::Duration;
/// use prefect_client::resources::deployments::Schedule;
///
/// client
///     .serve([&flow])
///     .deployment(flow.deployment("hourly").schedule(Schedule::interval(Duration::from_secs(3600))))
///     .limit(4)
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "await it (or call .start()) to serve"]
pub struct Serve {
    client: Client,
    flows: Vec<RustFlow>,
    deployments: Vec<DeploymentSpec>,
    options: LoopOptions,
    pause_on_shutdown: bool,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("flows", &self.flows)
            .field("deployments", &self.deployments.len())
            .field("options", &self.options)
            .finish()
    }
}

impl Serve {
    pub(crate) fn new<'a>(client: &Client, flows: impl IntoIterator<Item = &'a RustFlow>) -> Serve {
        Serve {
            client: client.clone(),
            flows: flows.into_iter().cloned().collect(),
            deployments: Vec::new(),
            options: LoopOptions::default(),
            pause_on_shutdown: false,
        }
    }

    /// A deployment to serve (of one of the flows: [`RustFlow::deployment`]); applied when
    /// serving starts, created or updated to match.
    pub fn deployment(mut self, spec: DeploymentSpec) -> Self {
        self.deployments.push(spec);
        self
    }

    /// Runs executed at once, at most (default 5, Prefect's `PREFECT_RUNNER_PROCESS_LIMIT`).
    pub fn limit(mut self, runs: usize) -> Self {
        self.options.limit = runs.max(1);
        self
    }

    /// How often the server is asked for due runs (default 10 s, as Prefect's runner); a run
    /// scheduled for now is also claimed at once, woken by the server's events.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.options.poll = every.max(Duration::from_millis(100));
        self
    }

    /// How long a shutdown lets executing runs finish before it stops them (default 30 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// What a shutdown does with runs still executing after the grace period (default: they
    /// are scheduled again, for another process).
    pub fn on_shutdown(mut self, action: OnShutdown) -> Self {
        self.options.on_shutdown = action;
        self
    }

    /// Pauses the served deployments when serving shuts down (default false), as Prefect's
    /// `serve(pause_on_shutdown=True)`.
    pub fn pause_on_shutdown(mut self, pause: bool) -> Self {
        self.pause_on_shutdown = pause;
        self
    }

    /// Applies the deployments and starts serving them in the background.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no deployments, a deployment of a flow this process does not
    /// run, or two flows of one name (nothing sent); the errors of
    /// [`Deployments::apply`](crate::resources::deployments::Deployments::apply).
    pub async fn start(self) -> Result<Serving, Error> {
        let flows: Vec<&RustFlow> = self.flows.iter().collect();
        let core = Arc::new(Core::new(&self.client, &flows, serde_json::Map::new())?);
        if self.deployments.is_empty() {
            return Err(Error::invalid(
                "deployments",
                "none to serve; add one with .deployment(flow.deployment(\"name\"))",
            ));
        }
        for spec in &self.deployments {
            if core.flow_named(spec.flow_name()).is_none() {
                return Err(Error::invalid(
                    "deployment",
                    format!(
                        "{:?} is a deployment of the flow {:?}, which this process does not run; give the flow to serve(..)",
                        spec.name(),
                        spec.flow_name()
                    ),
                ));
            }
        }
        let mut deployments = Vec::with_capacity(self.deployments.len());
        for spec in &self.deployments {
            deployments.push(self.client.deployments().apply(spec).await?);
        }
        let source = Arc::new(Deployments {
            ids: deployments.iter().map(|d| d.id).collect(),
        });
        let (shutdown, stopping) = watch::channel(false);
        let client = self.client.clone();
        let ids = source.ids.clone();
        let pause = self.pause_on_shutdown;
        let task = tokio::spawn(async move {
            let result = polling::run(core, source, self.options, stopping).await;
            if pause {
                for id in ids {
                    if let Err(e) = client.deployments().pause(id).await {
                        tracing::warn!(deployment_id = %id, error = %e, "could not pause a served deployment");
                    }
                }
            }
            result
        });
        Ok(Serving {
            deployments,
            handle: LoopHandle {
                shutdown,
                task,
                what: "deployments were being served",
            },
        })
    }
}

impl IntoFuture for Serve {
    type Output = Result<(), Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.start().await?.until_signal().await })
    }
}

/// A process serving deployments; from [`Serve::start`]. Dropping it does not stop serving:
/// call [`shutdown`](Serving::shutdown), or [`until_signal`](Serving::until_signal).
#[derive(Debug)]
pub struct Serving {
    deployments: Vec<DeploymentResponse>,
    handle: LoopHandle,
}

impl Serving {
    /// The deployments served, as applied.
    pub fn deployments(&self) -> &[DeploymentResponse] {
        &self.deployments
    }

    /// Starts a graceful shutdown: no more runs are claimed; runs executing get the grace
    /// period to finish. [`wait`](Serving::wait) for it to end.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// Waits until serving ends (after [`shutdown`](Serving::shutdown)).
    ///
    /// # Errors
    /// [`Error::RuntimeShutdown`] when the runtime stopped before serving ended.
    pub async fn wait(self) -> Result<(), Error> {
        self.handle.wait().await
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully and waits for it.
    ///
    /// # Errors
    /// As [`wait`](Serving::wait).
    pub async fn until_signal(self) -> Result<(), Error> {
        self.handle.until_signal().await
    }
}

/// The deployments a process serves, as a source of runs.
struct Deployments {
    ids: Vec<Uuid>,
}

impl Source for Deployments {
    fn what(&self) -> &'static str {
        "serving"
    }

    fn due(&self, client: &Client, before: DateTime<Utc>, limit: usize) -> Due {
        let body = GetScheduledFlowRunsForDeploymentsBody {
            deployment_ids: self.ids.clone(),
            limit: Some(i64::try_from(limit).unwrap_or(i64::MAX)),
            scheduled_before: Some(before),
        };
        let client = client.clone();
        Box::pin(async move {
            let mut runs = call!(client, get_scheduled_flow_runs_for_deployments(&body))?;
            runs.sort_by_key(|run| {
                (
                    run.next_scheduled_start_time.is_none(),
                    run.next_scheduled_start_time,
                )
            });
            Ok(runs.into_iter().map(Found::of_response).collect())
        })
    }

    // The deployment's concurrency limit is held at RUNNING by the server's orchestration,
    // not by the poll: a run an event announced is claimed at once.
    fn claims_directly(&self) -> bool {
        true
    }

    fn owns(&self, run: &crate::types::FlowRunResponse) -> bool {
        run.deployment_id.is_some_and(|id| self.ids.contains(&id))
    }

    fn wake_on(&self) -> EventFilter {
        EventFilter {
            event: Some(EventNameFilter {
                name: Some(super::watched_events()),
                ..Default::default()
            }),
            related: Some(
                EventRelatedFilter {
                    id: Some(
                        self.ids
                            .iter()
                            .map(|id| format!("prefect.deployment.{id}"))
                            .collect(),
                    ),
                    ..Default::default()
                }
                .into(),
            ),
            ..Default::default()
        }
    }
}
