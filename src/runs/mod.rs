//! Rust work as Prefect runs: a flow run around a future ([`Client::new_flow_run`](crate::Client::new_flow_run)),
//! task runs nested under it ([`RunContext::task`]), and a `tracing` layer that ships the
//! runs' log events ([`PrefectLogLayer`]). The runs show in Prefect's UI like Python's `@flow`
//! and `@task`: states, parameters, tags, logs; tag concurrency limits hold task runs back, and
//! a cancellation from the UI stops the future.
//!
//! - `orchestration`: proposing states and acting on ACCEPT / REJECT / WAIT / ABORT.
//! - `outcome`: how a flow run ended, as its caller learns it.
//! - `context`: what a running flow's code sees and its task runs share.
//! - `flow`: a new flow run around a future.
//! - `execution`: executing a flow run that exists: RUNNING, the body, its cancellation watch,
//!   heartbeats, timeout, the server's retries, stops from outside, the end.
//! - `task`: task runs (retries, timeouts, caching, inputs), one file per job: settings,
//!   retry delays, persistence, the attempt engine, what the caller gets.
//! - `results`: result records in Prefect's format, and where they are kept.
//! - `log_layer`: the `tracing` layer and its shipper thread.

mod context;
mod execution;
mod flow;
#[cfg(feature = "tracing-layer")]
mod log_layer;
mod orchestration;
mod outcome;
mod results;
mod task;

pub use context::RunContext;
pub(crate) use execution::{AbortOnDrop, Execution, Heartbeat, Stop, Supervisor};
pub use flow::FlowScope;
#[cfg(feature = "tracing-layer")]
pub use log_layer::{DEFAULT_LOG_QUEUE, LogShipper, PrefectLogLayer};
pub(crate) use orchestration::{Answer, Proposal, Run, propose_state, resending};
pub use outcome::{FlowRunReport, Outcome};
pub use results::{LocalStorage, ResultStorage, read_result};
pub use task::{PersistedTask, RetryDelay, TaskError, TaskOutput, TaskScope};

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
