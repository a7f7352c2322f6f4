//! Rust work as Prefect runs: a flow run around a future ([`Client::new_flow_run`](crate::Client::new_flow_run)),
//! task runs nested under it ([`RunContext::task`]), and a `tracing` layer that ships the
//! runs' log events ([`PrefectLogLayer`]). The runs show in Prefect's UI like Python's `@flow`
//! and `@task`: states, parameters, tags, logs; tag concurrency limits hold task runs back, and
//! a cancellation from the UI stops the future.
//!
//! - `orchestration`: proposing states and acting on ACCEPT / REJECT / WAIT / ABORT.
//! - `flow`: the flow run, its cancellation watch and heartbeats.
//! - `task`: task runs.
//! - `log_layer`: the `tracing` layer and its shipper thread.

mod flow;
#[cfg(feature = "tracing-layer")]
mod log_layer;
mod orchestration;
mod task;

pub use flow::{FlowRunReport, FlowScope, Outcome, RunContext};
#[cfg(feature = "tracing-layer")]
pub use log_layer::{DEFAULT_LOG_QUEUE, LogShipper, PrefectLogLayer};
pub use task::{TaskError, TaskScope};

use crate::Error;

/// Checks a flow or task name: not empty, no control characters.
pub(crate) fn check_run_name(what: &'static str, name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(Error::invalid(what, "it is empty; give a name, e.g. \"ingest\""));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            what,
            format!("{name:?} contains the control character {c:?}"),
        ));
    }
    Ok(())
}

/// Flushes the log shipper (when the layer is compiled in).
pub(crate) async fn flush_logs() {
    #[cfg(feature = "tracing-layer")]
    log_layer::flush_all().await;
}

/// Lines the log layers of this process queued so far (0 without the layer).
pub(crate) fn lines_queued() -> u64 {
    #[cfg(feature = "tracing-layer")]
    return log_layer::lines_queued();
    #[cfg(not(feature = "tracing-layer"))]
    0
}
