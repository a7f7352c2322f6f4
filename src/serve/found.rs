//! Stage one of a served run (found → claimed → executing → ended): [`Found`], a run a poll or
//! an event found, as far as claiming and executing it needs, from whichever type the server
//! described it with.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::types::{FlowRunPolicy, FlowRunPolicyRetryType, State, StateType};
use crate::waits::STRANDED_RETRY_AFTER;

/// A run a poll found, as far as executing it needs.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) id: Uuid,
    pub(crate) flow_id: Uuid,
    pub(crate) parameters: Map<String, Value>,
    pub(crate) state_type: Option<StateType>,
    /// The current state, when the poll read it (its deployment lease, for a run claimed by
    /// someone else).
    pub(crate) state: Option<State>,
    /// Whether it waits for a retry of a process that executes it (never claimed by another).
    pub(crate) in_process_retry: bool,
    /// How many times it had started (RUNNING) when it was found.
    pub(crate) run_count: i64,
    /// Its name, deployment and tags (its heartbeats' resources).
    pub(crate) name: String,
    pub(crate) deployment_id: Option<Uuid>,
    pub(crate) tags: Vec<String>,
    /// Its retry policy as the server has it (filled in, not replaced, when it is executed).
    pub(crate) policy: Option<FlowRunPolicy>,
    /// What executes it, as recorded (a worker's handle on a handed-over run's process).
    pub(crate) infrastructure_pid: Option<String>,
    /// When it is due (a retry's time, for a run waiting for one).
    pub(crate) due_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The job variables given to this run (over its deployment's).
    pub(crate) job_variables: Option<Map<String, Value>>,
}

impl Found {
    /// Whether a run waiting for the in-process retry of the process that executed it was left
    /// by that process: past its time by [`STRANDED_RETRY_AFTER`] (a live process proposes
    /// RUNNING at the time itself). Prefect's runner executes such a run; so does serving.
    fn stranded(&self) -> bool {
        self.in_process_retry
            && self.due_at.is_some_and(|at| {
                chrono::Utc::now() - at > chrono::Duration::from_std(STRANDED_RETRY_AFTER).unwrap_or_default()
            })
    }

    /// Whether any process may take the run: not waiting for another process's in-process
    /// retry, or waiting for one that was [`stranded`](Found::stranded).
    pub(crate) fn takeable(&self) -> bool {
        !self.in_process_retry || self.stranded()
    }
}

/// `Found` from each of the types the server describes a flow run with (the same fields).
macro_rules! found_from {
    ($($run:ty),+) => {$(
        impl From<$run> for Found {
            fn from(run: $run) -> Found {
                Found {
                    id: run.id,
                    flow_id: run.flow_id,
                    in_process_retry: in_process(&run.empirical_policy),
                    parameters: run.parameters,
                    state_type: run.state_type,
                    state: run.state,
                    run_count: run.run_count,
                    name: run.name.unwrap_or_default(),
                    deployment_id: run.deployment_id,
                    tags: run.tags,
                    policy: run.empirical_policy,
                    infrastructure_pid: run.infrastructure_pid,
                    due_at: run.next_scheduled_start_time,
                    job_variables: run.job_variables,
                }
            }
        }
    )+};
}
found_from!(crate::types::FlowRunResponse, crate::types::FlowRun);

fn in_process(policy: &Option<FlowRunPolicy>) -> bool {
    policy
        .as_ref()
        .and_then(|p| p.retry_type.as_ref())
        .is_some_and(|t| matches!(t, FlowRunPolicyRetryType::InProcess))
}
