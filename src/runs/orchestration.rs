//! Proposing a state to Prefect's orchestration and acting on its answer: ACCEPT, REJECT (the
//! server's state stands), WAIT (propose again after its delay) or ABORT.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::resources::call;
use crate::retry::{Retries, Verdict};
use crate::types::{
    OrchestrationResult, SetFlowRunStateBody, SetStateStatus, SetTaskRunStateBody, State, StateCreate,
    StateDetails, StateType,
};
use crate::waits::{
    DEFAULT_ORCHESTRATION_WAIT, MAX_ORCHESTRATION_WAIT, MIN_ORCHESTRATION_WAIT, REPORT_BUDGET, REPORT_RESEND,
};
use crate::{Client, Error};

/// Whose state is proposed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Run {
    Flow(Uuid),
    Task(Uuid),
}

/// A state to propose: its type, name, message and details, and whether the server's rules
/// are skipped.
#[derive(Debug, Clone)]
pub(crate) struct Proposal {
    pub(crate) state: StateType,
    pub(crate) name: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) details: Option<StateDetails>,
    /// The state's data (a result record's metadata).
    pub(crate) data: Option<Value>,
    pub(crate) force: bool,
}

impl Proposal {
    /// A state of this type, with its type's name, no message, under the server's rules.
    pub(crate) fn new(state: StateType) -> Proposal {
        Proposal {
            state,
            name: None,
            message: None,
            details: None,
            data: None,
            force: false,
        }
    }

    /// The state's data (a result record's metadata).
    pub(crate) fn data(mut self, data: Option<Value>) -> Proposal {
        self.data = data;
        self
    }

    /// Whether the server may retry the run on this FAILED (false: the client decided).
    pub(crate) fn retriable(mut self, retriable: bool) -> Proposal {
        self.details.get_or_insert_with(StateDetails::default).retriable = Some(retriable);
        self
    }

    /// The state's name (`"TimedOut"`, `"AwaitingRetry"`, …).
    pub(crate) fn named(mut self, name: &str) -> Proposal {
        self.name = Some(name.to_string());
        self
    }

    /// The state's message.
    pub(crate) fn message(mut self, message: Option<impl Into<String>>) -> Proposal {
        self.message = message.map(Into::into);
        self
    }

    /// Skips the server's rules.
    pub(crate) fn forced(mut self, force: bool) -> Proposal {
        self.force = force;
        self
    }

    /// A scheduled state's time.
    pub(crate) fn at(mut self, when: DateTime<Utc>) -> Proposal {
        self.details
            .get_or_insert_with(StateDetails::default)
            .scheduled_time = Some(when);
        self
    }

    /// The transition's id: the server answers a repeat of the same transition (a proposal
    /// whose answer was lost, sent again) with the state it already took.
    pub(crate) fn transition(mut self, id: Uuid) -> Proposal {
        self.details
            .get_or_insert_with(StateDetails::default)
            .transition_id = Some(id);
        self
    }

    fn body(&self) -> StateCreate {
        StateCreate {
            data: self.data.clone(),
            message: self.message.clone(),
            name: self.name.clone(),
            state_details: self.details.clone(),
            type_: self.state.clone(),
        }
    }
}

/// What the server made of a proposal, once it stopped asking to wait.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The state was taken (as the server stored it).
    Accepted(Option<Box<State>>),
    /// The server kept (or set) another state.
    Rejected(Option<Box<State>>),
    /// The server refuses to orchestrate the run any further.
    Aborted(String),
}

impl Answer {
    /// The type and message of a rejection's state.
    pub(crate) fn rejected_state(state: &Option<Box<State>>) -> (StateType, Option<String>) {
        match state {
            Some(state) => (state.type_.clone(), state.message.clone()),
            None => (StateType::Unknown("none".into()), None),
        }
    }
}

/// Proposes `state` (with `message`) under the server's rules, waiting and proposing again as
/// long as the server answers WAIT.
pub(crate) async fn propose(
    client: &Client,
    run: Run,
    state: StateType,
    message: Option<&str>,
) -> Result<Answer, Error> {
    propose_state(client, run, &Proposal::new(state).message(message)).await
}

/// [`propose`], with `force`: the server skips its orchestration rules (used for task runs
/// whose tag limits the client holds itself, and for ends the client sets).
pub(crate) async fn propose_with(
    client: &Client,
    run: Run,
    state: StateType,
    message: Option<&str>,
    force: bool,
) -> Result<Answer, Error> {
    propose_state(client, run, &Proposal::new(state).message(message).forced(force)).await
}

/// Proposes `proposal`, waiting and proposing again as long as the server answers WAIT, and
/// sending it again for up to [`REPORT_BUDGET`] while the failure is transient. A flow run's
/// proposal carries a transition id, so a repeat of one the server took (its answer lost) is
/// recognised; a repeat the server refuses because the run already took that state counts as
/// taken.
pub(crate) async fn propose_state(client: &Client, run: Run, proposal: &Proposal) -> Result<Answer, Error> {
    let mut proposal = proposal.clone();
    let transition = proposal.details.as_ref().and_then(|d| d.transition_id);
    let transition = match (run, transition) {
        (_, Some(id)) => Some(id),
        (Run::Flow(_), None) if !proposal.force => {
            let id = Uuid::new_v4();
            proposal = proposal.transition(id);
            Some(id)
        }
        _ => None,
    };
    let proposal = &proposal;
    report_resends()
        .run(
            resend_after,
            |e, pause| tracing::warn!(?run, state = ?proposal.state, error = %e, retry_in = ?pause, "reporting the run's state failed; sending it again"),
            |send| async move {
                let answer = propose_until_answered(client, run, proposal).await;
                if send > 1 {
                    after_repeat(client, run, proposal, transition, answer).await
                } else {
                    answer
                }
            },
        )
        .await
}

/// The answer to a report sent again: a refusal because the run already took the state (the
/// first send's answer was lost) counts as taken. With a transition id only that id tells:
/// another process's claim of the same run also leaves it PENDING, and is not ours.
async fn after_repeat(
    client: &Client,
    run: Run,
    proposal: &Proposal,
    transition: Option<Uuid>,
    answer: Result<Answer, Error>,
) -> Result<Answer, Error> {
    let ours = |state: &State| match transition {
        Some(id) => state.state_details.as_ref().and_then(|d| d.transition_id) == Some(id),
        None => state.type_ == proposal.state,
    };
    match answer {
        Ok(Answer::Rejected(Some(state))) if ours(&state) => Ok(Answer::Accepted(Some(state))),
        Ok(Answer::Aborted(reason)) => match current_state(client, run).await {
            Ok(Some(state)) if ours(&state) => Ok(Answer::Accepted(Some(Box::new(state)))),
            _ => Ok(Answer::Aborted(reason)),
        },
        other => other,
    }
}

/// Sends a request safe to repeat (a task run's create, an upsert by its key) and sends it
/// again for up to [`REPORT_BUDGET`] while the failure is transient.
pub(crate) async fn resending<T, F, Fut>(what: &'static str, mut send: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    report_resends()
        .run(
            resend_after,
            |e, pause| tracing::warn!(what, error = %e, retry_in = ?pause, "a run's report failed; sending it again"),
            |_| send(),
        )
        .await
}

/// How a run's reports are sent again: [`REPORT_RESEND`]'s pauses for [`REPORT_BUDGET`] from
/// now.
fn report_resends() -> Retries {
    Retries::new(REPORT_RESEND).within(REPORT_BUDGET)
}

/// Whether a failed report is sent again: the server away, overloaded or slow (not 423, not a
/// refusal of the report itself).
fn resend_after(error: &Error) -> Verdict {
    Verdict::retry_if(error.is_transient() && !error.is_slots_unavailable())
}

/// The run's current state, as the server has it.
async fn current_state(client: &Client, run: Run) -> Result<Option<State>, Error> {
    Ok(match run {
        Run::Flow(id) => client.flow_runs().get(id).await?.state,
        Run::Task(id) => client.task_runs().get(id).await?.state,
    })
}

/// Proposes `proposal`, waiting and proposing again as long as the server answers WAIT.
async fn propose_until_answered(client: &Client, run: Run, proposal: &Proposal) -> Result<Answer, Error> {
    loop {
        let result: OrchestrationResult = match run {
            Run::Flow(id) => {
                let body = SetFlowRunStateBody {
                    force: proposal.force,
                    state: proposal.body(),
                };
                call!(client, set_flow_run_state(&id, &body))?
            }
            Run::Task(id) => {
                let body = SetTaskRunStateBody {
                    force: proposal.force,
                    state: proposal.body(),
                };
                call!(client, set_task_run_state(&id, &body))?
            }
        };
        let details = serde_json::to_value(&result.details).unwrap_or(Value::Null);
        match result.status {
            SetStateStatus::Accept => return Ok(Answer::Accepted(result.state.map(Box::new))),
            SetStateStatus::Wait => {
                let delay = wait_delay(details.get("delay_seconds").and_then(Value::as_f64));
                tracing::debug!(?run, state = ?proposal.state, ?delay, reason = ?details.get("reason"), "the server asks to wait");
                tokio::time::sleep(delay).await;
            }
            SetStateStatus::Reject => return Ok(Answer::Rejected(result.state.map(Box::new))),
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
        Some(s) if s.is_finite() => Duration::try_from_secs_f64(s.max(MIN_ORCHESTRATION_WAIT.as_secs_f64()))
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

    #[test]
    fn proposals_carry_their_name_time_and_transition() {
        let at: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let id = Uuid::nil();
        let body = Proposal::new(StateType::Scheduled)
            .named("AwaitingRetry")
            .at(at)
            .transition(id)
            .body();
        let json = serde_json::to_value(body).unwrap();
        assert_eq!(json["name"], "AwaitingRetry");
        assert_eq!(json["type"], "SCHEDULED");
        assert_eq!(json["state_details"]["scheduled_time"], "2026-12-01T12:00:00Z");
        assert_eq!(json["state_details"]["transition_id"], id.to_string());
    }

    fn pending(transition: Option<Uuid>) -> Box<State> {
        let state: State = serde_json::from_value(serde_json::json!({
            "id": Uuid::new_v4(),
            "type": "PENDING",
            "timestamp": "2026-12-01T12:00:00Z",
            "state_details": {"transition_id": transition},
        }))
        .unwrap();
        Box::new(state)
    }

    #[tokio::test]
    async fn a_repeated_claim_is_ours_only_when_the_run_took_our_transition() {
        let client = Client::builder("http://127.0.0.1:9/api").build().unwrap();
        let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let proposal = Proposal::new(StateType::Pending).transition(ours);
        let run = Run::Flow(Uuid::nil());
        let repeat = |state| {
            after_repeat(
                &client,
                run,
                &proposal,
                Some(ours),
                Ok(Answer::Rejected(Some(state))),
            )
        };
        assert!(matches!(
            repeat(pending(Some(ours))).await,
            Ok(Answer::Accepted(_))
        ));
        // Another process claimed it: PENDING too, but not ours.
        assert!(matches!(
            repeat(pending(Some(theirs))).await,
            Ok(Answer::Rejected(_))
        ));
        assert!(matches!(repeat(pending(None)).await, Ok(Answer::Rejected(_))));
        // Without a transition id (task runs, forced ends) the state's type is all there is.
        let forced = Proposal::new(StateType::Pending).forced(true);
        let answer = after_repeat(
            &client,
            run,
            &forced,
            None,
            Ok(Answer::Rejected(Some(pending(None)))),
        )
        .await;
        assert!(matches!(answer, Ok(Answer::Accepted(_))));
    }
}
