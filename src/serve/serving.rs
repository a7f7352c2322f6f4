//! Serving deployments from this process, as Prefect's `flow.serve()` does: [`Serve`], which
//! starts as a [`Serving`](super::Serving) handle.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::core::Core;
use super::flow::RustFlow;
use super::found::Found;
use super::handle::{Serves, Serving};
use super::polling::{self, Due, Source};
use super::settings::ServeSettings;
use crate::resources::call;
use crate::resources::deployments::DeploymentSpec;
use crate::types::{EventFilter, GetScheduledFlowRunsForDeploymentsBody};
use crate::{Client, Error};

/// Deployments served by this process; from [`Client::serve`]. Add deployments of its flows,
/// give it [`ServeSettings`], then [`until_signal`](Serve::until_signal) (it serves until SIGTERM
/// or Ctrl-C, then shuts down gracefully) or [`start`](Serve::start) it for a [`Serving`] handle.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, flow: prefect_client::serve::RustFlow) -> Result<(), prefect_client::Error> {
/// use std::time::Duration;
/// use prefect_client::resources::deployments::Schedule;
/// use prefect_client::serve::ServeSettings;
///
/// client
///     .serve([&flow])
///     .deployment(flow.deployment("hourly").schedule(Schedule::interval(Duration::from_secs(3600))))
///     .settings(ServeSettings::default().limit(4))
///     .until_signal()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "call .until_signal() or .start() to serve"]
pub struct Serve {
    client: Client,
    flows: Vec<RustFlow>,
    deployments: Vec<DeploymentSpec>,
    settings: ServeSettings,
    pause_on_shutdown: bool,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("flows", &self.flows)
            .field("deployments", &self.deployments.len())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Serve {
    pub(crate) fn new<'a>(client: &Client, flows: impl IntoIterator<Item = &'a RustFlow>) -> Serve {
        Serve {
            client: client.clone(),
            flows: flows.into_iter().cloned().collect(),
            deployments: Vec::new(),
            settings: ServeSettings::default(),
            pause_on_shutdown: false,
        }
    }

    /// A deployment to serve (of one of the flows: [`RustFlow::deployment`]); applied when
    /// serving starts, created or updated to match.
    pub fn deployment(mut self, spec: DeploymentSpec) -> Self {
        self.deployments.push(spec);
        self
    }

    /// How the process serves: runs at once, polls, shutdown (default
    /// [`ServeSettings::default`], Prefect's runner's).
    pub fn settings(mut self, settings: ServeSettings) -> Self {
        self.settings = settings;
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
            deployments.push(self.client.deployments().apply(spec).await?.object);
        }
        let source = Arc::new(Deployments {
            ids: deployments.iter().map(|d| d.id).collect(),
        });
        let client = self.client.clone();
        let ids = source.ids.clone();
        let pause = self.pause_on_shutdown;
        let serves = Serves::Deployments(deployments);
        Ok(Serving::spawn(
            serves,
            "deployments were being served",
            |stopping, ends| async move {
                let result = polling::run(core, source, self.settings, stopping, ends).await;
                if pause {
                    for id in ids {
                        if let Err(e) = client.deployments().pause(id).await {
                            tracing::warn!(deployment_id = %id, error = %e, "could not pause a served deployment");
                        }
                    }
                }
                result
            },
        ))
    }

    /// Applies the deployments and serves them until SIGTERM or Ctrl-C, then shuts down
    /// gracefully ([`start`](Serve::start), then [`Serving::until_signal`]).
    ///
    /// # Errors
    /// As [`start`](Serve::start) and [`Serving::until_signal`].
    pub async fn until_signal(self) -> Result<(), Error> {
        self.start().await?.until_signal().await
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
            Ok(runs.into_iter().map(Found::from).collect())
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
        super::watched_events(
            self.ids
                .iter()
                .map(|id| format!("prefect.deployment.{id}"))
                .collect(),
        )
    }
}
