//! Proposing a state to Prefect's orchestration and acting on its answer: ACCEPT, REJECT (the
//! server's state stands), WAIT (propose again after its delay) or ABORT.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::resources::call;
use crate::resources::flow_runs::state_create;
use crate::types::{
    OrchestrationResult, SetFlowRunStateBody, SetStateStatus, SetTaskRunStateBody, StateType,
};
use crate::waits::{DEFAULT_ORCHESTRATION_WAIT, MAX_ORCHESTRATION_WAIT};
use crate::{Client, Error};

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
    let proposal = || state_create(state.clone(), None, message.map(str::to_string));
    loop {
        let result: OrchestrationResult = match run {
            Run::Flow(id) => {
                let body = SetFlowRunStateBody {
                    force,
                    state: proposal(),
                };
                call!(client, set_flow_run_state(&id, &body))?
            }
            Run::Task(id) => {
                let body = SetTaskRunStateBody {
                    force,
                    state: proposal(),
                };
                call!(client, set_task_run_state(&id, &body))?
            }
        };
        let details = serde_json::to_value(&result.details).unwrap_or(Value::Null);
        match result.status {
            SetStateStatus::Accept => return Ok(Answer::Accepted),
            SetStateStatus::Wait => {
                let delay = wait_delay(details.get("delay_seconds").and_then(Value::as_f64));
                tracing::debug!(?run, ?state, ?delay, reason = ?details.get("reason"), "the server asks to wait");
                tokio::time::sleep(delay).await;
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

/// How long to sleep on a WAIT answer: the server's delay, at least 0.1 s and at most
/// [`MAX_ORCHESTRATION_WAIT`]; a missing or unusable delay (negative, NaN, too large to be a
/// duration) is [`DEFAULT_ORCHESTRATION_WAIT`] or the longest wait.
fn wait_delay(seconds: Option<f64>) -> Duration {
    match seconds {
        Some(s) if s.is_finite() => Duration::try_from_secs_f64(s.max(0.1))
            .unwrap_or(MAX_ORCHESTRATION_WAIT)
            .min(MAX_ORCHESTRATION_WAIT),
        Some(s) if s == f64::INFINITY => MAX_ORCHESTRATION_WAIT,
        _ => DEFAULT_ORCHESTRATION_WAIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_delays_are_bounded_whatever_the_server_says() {
        assert_eq!(wait_delay(Some(2.5)), Duration::from_millis(2500));
        assert_eq!(wait_delay(Some(0.0)), Duration::from_millis(100));
        assert_eq!(wait_delay(Some(-4.0)), Duration::from_millis(100));
        assert_eq!(wait_delay(Some(2e19)), MAX_ORCHESTRATION_WAIT);
        assert_eq!(wait_delay(Some(f64::INFINITY)), MAX_ORCHESTRATION_WAIT);
        assert_eq!(wait_delay(Some(f64::NAN)), DEFAULT_ORCHESTRATION_WAIT);
        assert_eq!(wait_delay(None), DEFAULT_ORCHESTRATION_WAIT);
    }
}
