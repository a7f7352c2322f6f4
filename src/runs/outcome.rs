//! How a flow run ended, as its caller learns it: [`Outcome`] and [`FlowRunReport`], shared by
//! flow runs started in code and runs Prefect hands to this process.

use std::time::Duration;

use uuid::Uuid;

use crate::Error;
use crate::types::StateType;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
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
