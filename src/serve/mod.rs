//! Prefect runs Rust code: deployments served by this process ([`Client::serve`](crate::Client::serve)), a worker on
//! a work pool ([`Client::worker`](crate::Client::worker)), and runs Prefect's own workers hand over
//! ([`run_handed_over`]), all executing the flows of [`RustFlow`]s. Schedules, the UI's "Run"
//! button, automations, retries and `run_deployment` from Python then start Rust code.
//!
//! The three share one claim-and-execute core: a run is claimed as Prefect's runner and workers
//! claim it (PENDING with a transition id: any number of processes on one deployment or pool,
//! each run executes once), the run Prefect created is executed through [`runs`](crate::runs)
//! (its task runs, logs, heartbeats, cancellation from the UI), and a deployment's concurrency
//! lease is renewed while it runs, so a process that dies frees its slot.
//!
//! ```no_run
//! use prefect_client::Client;
//! use prefect_client::runs::RunContext;
//! use prefect_client::serve::{RustFlow, run_handed_over};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Params {
//!     #[serde(default)]
//!     rows: u64,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<std::process::ExitCode, prefect_client::Error> {
//!     let client = Client::from_env()?;
//!     let flow = RustFlow::new("load", |ctx: RunContext, params: Params| async move {
//!         tracing::info!(rows = params.rows, "loading");
//!         Ok::<_, std::io::Error>(params.rows)
//!     });
//!     // Started by Prefect's own worker (the deployment's `command`): that run only.
//!     if let Some(code) = run_handed_over(&client, [&flow]).await {
//!         return Ok(code);
//!     }
//!     // Otherwise serve a deployment until SIGTERM or Ctrl-C.
//!     client.serve([&flow]).deployment(flow.deployment("nightly")).until_signal().await?;
//!     Ok(std::process::ExitCode::SUCCESS)
//! }
//! ```
//!
//! - `flow`: [`RustFlow`], a flow's handler and parameter schema.
//! - `core`: the flows, the runs in flight and how stops reach them; a run's stages, one value
//!   each: `found` (a run a poll or an event found), `claim` (claimed, or adopted as handed
//!   over), `execute` (executed, its lease renewed, and how it ended).
//! - `polling`: the loop serving and workers share (polls woken by events, capacity, graceful
//!   shutdown).
//! - `serving`, `worker`, `handed_over`: the three ways a run reaches this process.
//! - `settings`: [`ServeSettings`], the loop's knobs as one value; `handle`: [`Serving`], the one
//!   handle of a loop, and each run's end ([`RunEnded`]); `shutdown`: signals and stopping.

mod claim;
mod core;
mod execute;
mod flow;
mod found;
mod handed_over;
mod handle;
mod polling;
mod serving;
mod settings;
mod shutdown;
mod worker;

pub use flow::RustFlow;
pub use handed_over::{FLOW_RUN_ID_VARIABLE, run_handed_over};
pub use handle::{RunEnd, RunEnded, Serving};
pub use serving::Serve;
pub use settings::{OnShutdown, ServeSettings};
pub use worker::{WORKER_TYPE, Worker};

/// The events that say a run may be due now: a run scheduled (created for now, or a schedule's
/// run), late, or back from a retry or a concurrency wait.
const WAKING_EVENTS: [&str; 4] = [
    "prefect.flow-run.Scheduled",
    "prefect.flow-run.Late",
    "prefect.flow-run.AwaitingRetry",
    "prefect.flow-run.AwaitingConcurrencySlot",
];

/// The events that say a run was cancelled from outside (the UI, Prefect's CLI or client).
const CANCELLING_EVENTS: [&str; 2] = ["prefect.flow-run.Cancelling", "prefect.flow-run.Cancelled"];

/// The events a polling loop subscribes to, [`WAKING_EVENTS`] and [`CANCELLING_EVENTS`], about
/// the resources it polls for (`related`: its deployments, or its work pool, as Prefect's
/// resource ids).
fn watched_events(related: Vec<String>) -> crate::types::EventFilter {
    use crate::types::{EventFilter, EventNameFilter, EventRelatedFilter};
    let names = WAKING_EVENTS.iter().chain(CANCELLING_EVENTS.iter());
    EventFilter {
        event: Some(EventNameFilter {
            name: Some(names.map(|e| e.to_string()).collect()),
            ..Default::default()
        }),
        related: Some(
            EventRelatedFilter {
                id: Some(related),
                ..Default::default()
            }
            .into(),
        ),
        ..Default::default()
    }
}
