//! Proposing a state to Prefect's orchestration and acting on its answer: ACCEPT, REJECT (the
//! server's state stands), WAIT (propose again after its delay) or ABORT.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::resources::call;
use crate::resources::pagination::typed;
use crate::types::{OrchestrationResult, SetStateStatus, StateType};
use crate::{Client, Error};

/// The longest wait the client takes from one WAIT answer (the server's delay is used when
/// shorter).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Whose state is proposed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Run {
    Flow(Uuid),
    Task(Uuid),
}

/// What the server made of a proposal, once it stopped asking to wait.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The state was taken.
    Accepted,
    /// The server kept (or set) another state: its type and message.
    Rejected(StateType, Option<String>),
    /// The server refuses to orchestrate the run any further.
    Aborted(String),
}

/// Proposes `state` (with `message`), waiting and proposing again as long as the server
/// answers WAIT.
pub(crate) async fn propose(
    client: &Client,
    run: Run,
    state: StateType,
    message: Option<&str>,
) -> Result<Answer, Error> {
    propose_with(client, run, state, message, false).await
}

/// [`propose`], with `force`: the server skips its orchestration rules (used for task runs
/// whose tag limits the client holds itself).
pub(crate) async fn propose_with(
    client: &Client,
    run: Run,
    state: StateType,
    message: Option<&str>,
    force: bool,
) -> Result<Answer, Error> {
    let body = json!({ "state": { "type": state, "message": message }, "force": force });
    loop {
        let result: OrchestrationResult = match run {
            Run::Flow(id) => call!(client, set_flow_run_state(&id, &typed("state", body.clone())?))?,
            Run::Task(id) => call!(client, set_task_run_state(&id, &typed("state", body.clone())?))?,
        };
        let details = serde_json::to_value(&result.details).unwrap_or(Value::Null);
        match result.status {
            SetStateStatus::Accept => return Ok(Answer::Accepted),
            SetStateStatus::Wait => {
                let delay = details
                    .get("delay_seconds")
                    .and_then(Value::as_f64)
                    .map_or(Duration::from_secs(1), |s| Duration::from_secs_f64(s.max(0.1)));
                tracing::debug!(?run, ?state, ?delay, reason = ?details.get("reason"), "the server asks to wait");
                tokio::time::sleep(delay.min(MAX_WAIT)).await;
            }
            SetStateStatus::Reject => {
                let (kept, message) = match result.state {
                    Some(state) => (state.type_, state.message),
                    None => (StateType::Unknown("none".into()), None),
                };
                return Ok(Answer::Rejected(kept, message));
            }
            SetStateStatus::Abort | SetStateStatus::Unknown(_) => {
                let reason = details
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .to_string();
                return Ok(Answer::Aborted(reason));
            }
        }
    }
}
