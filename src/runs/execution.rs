//! Executing one flow run that exists already (created by [`FlowScope`](super::FlowScope), or by
//! Prefect for a deployment): RUNNING, the body in a task of its own, the cancellation watch and
//! heartbeats, a timeout, the server's retries, a stop from outside, and the end.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::context::{RunContext, Shared, TaskEnd};
use super::orchestration::{Answer, Proposal, Run, propose, propose_state, propose_with};
use super::outcome::{FlowRunReport, Outcome};
use crate::resources::flow_runs::is_final;
use crate::types::StateType;
use crate::waits::{CANCELLATION_WATCH_RETRY, LOG_FLUSH_BUDGET};
use crate::{Client, Error};

/// Why a run is stopped from outside its own code, and how it then ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Back to SCHEDULED ("AwaitingRetry", due now), for another process to run it: a serving
    /// process shutting down.
    Reschedule(String),
    /// CANCELLED, with this message.
    Cancel(String),
    /// CRASHED, with this message (a deployment's concurrency slot lost).
    Crash(String),
}

/// The stops a run may receive; `None` until one is sent.
pub(crate) type StopSignal = watch::Receiver<Option<Stop>>;

/// What a flow run's heartbeats say and how often, as Prefect's engine sends them: the run as
/// the resource, its flow, deployment and tags as related resources (what the zombie-run
/// automation and Prefect Cloud's unresponsive-run detection match on).
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    pub(crate) every: Duration,
    pub(crate) run_name: String,
    pub(crate) flow_id: Uuid,
    pub(crate) flow_name: String,
    pub(crate) deployment_id: Option<Uuid>,
    pub(crate) tags: Vec<String>,
}

impl Heartbeat {
    /// The heartbeat event of run `id`, occurring now.
    fn event(&self, id: Uuid) -> crate::types::Event {
        use crate::types::{RelatedResource, Resource};
        let labels = |pairs: &[(&str, String)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let mut related = vec![RelatedResource(labels(&[
            ("prefect.resource.id", format!("prefect.flow.{}", self.flow_id)),
            ("prefect.resource.role", "flow".into()),
            ("prefect.resource.name", self.flow_name.clone()),
        ]))];
        if let Some(deployment) = self.deployment_id {
            related.push(RelatedResource(labels(&[
                ("prefect.resource.id", format!("prefect.deployment.{deployment}")),
                ("prefect.resource.role", "deployment".into()),
            ])));
        }
        let mut tags = self.tags.clone();
        tags.sort();
        tags.dedup();
        related.extend(tags.iter().map(|tag| {
            RelatedResource(labels(&[
                ("prefect.resource.id", format!("prefect.tag.{tag}")),
                ("prefect.resource.role", "tag".into()),
            ]))
        }));
        crate::types::Event {
            event: "prefect.flow-run.heartbeat".into(),
            follows: None,
            id: Uuid::new_v4(),
            occurred: chrono::Utc::now(),
            payload: serde_json::Map::new(),
            related,
            resource: Resource(labels(&[
                ("prefect.resource.id", format!("prefect.flow-run.{id}")),
                ("prefect.resource.name", self.run_name.clone()),
            ])),
        }
    }
}

/// One flow run to execute.
pub(crate) struct Execution {
    pub(crate) client: Client,
    pub(crate) flow_run_id: Uuid,
    pub(crate) flow_name: String,
    /// `prefect.flow-run.heartbeat` events while it runs.
    pub(crate) heartbeat: Option<Heartbeat>,
    /// The longest one attempt may take: it then ends FAILED "TimedOut" (retried if the run
    /// has retries left).
    pub(crate) timeout: Option<Duration>,
    /// What the process that executes the run for Prefect adds (serving, a worker, a
    /// handed-over run); `None` for a run made in code, which watches its own cancellation.
    pub(crate) supervisor: Option<Supervisor>,
}

/// What a process executing runs for Prefect (`serve/`) adds to a run, as one value: stops
/// from outside, word of each RUNNING the server accepts, and who watches for a cancellation.
pub(crate) struct Supervisor {
    /// Stops from outside (a shutdown, a lost deployment slot, a cancellation it watched).
    pub(crate) stop: StopSignal,
    /// Told each time the server accepts RUNNING (a deployment lease is renewed then).
    pub(crate) running: Arc<tokio::sync::Notify>,
    /// Whether the supervisor watches the run's cancellation (one subscription for all its
    /// runs) and sends [`Stop::Cancel`]; otherwise the run watches its own.
    pub(crate) watches_cancellation: bool,
}

impl Execution {
    /// Proposes RUNNING (waiting while the server says WAIT), runs `body` and reports its end.
    /// When the server answers a failure with AwaitingRetry (the run's retries), the run is
    /// proposed RUNNING again (the server's WAIT covers the delay) and `body` called again; it
    /// answers `None` when it cannot run again, and the failure stands (forced).
    ///
    /// A stop or a cancellation while RUNNING is awaited (a scheduled start, a retry's delay)
    /// ends the run as it would end a body; a run the server keeps CANCELLING (cancelled while
    /// it waited or while its body ended) is ended CANCELLED, as Prefect's runner ends it. A
    /// `body` that panics before it gives its future ends the run as a panicking future does.
    ///
    /// Dropping this future before the end is reported stops the body and the heartbeats and
    /// ends the run CANCELLED (see [`Abandon`]).
    pub(crate) async fn run<F, Fut, T, E>(self, mut body: F) -> Result<FlowRunReport<T, E>, Error>
    where
        F: FnMut(RunContext) -> Option<Fut>,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let Execution {
            client,
            flow_run_id: id,
            flow_name,
            heartbeat,
            timeout,
            supervisor,
        } = self;
        let (mut stop, running, watch_cancellation) = match supervisor {
            Some(s) => (Some(s.stop), Some(s.running), !s.watches_cancellation),
            None => (None, None, true),
        };
        let ctx = RunContext {
            shared: Arc::new(Shared::new(&client, id, &flow_name)),
        };
        let url = ctx.shared.url.clone();
        let report = |outcome, unreported| FlowRunReport {
            flow_run_id: id,
            url: url.clone(),
            outcome,
            unreported,
        };
        // Beating from the first RUNNING on (as Prefect's engine), through retry delays, until
        // this future ends.
        let mut heartbeat = heartbeat;
        let mut _beating: Option<AbortOnDrop> = None;
        let mut last_failure: Option<Outcome<T, E>> = None;
        loop {
            // Dropped while RUNNING is proposed (a WAIT answer may hold it), the run ends
            // CANCELLED too, not left PENDING.
            let mut starting = Abandon {
                shared: ctx.shared.clone(),
                work: None,
                end: Some(dropped_end()),
            };
            let started = tokio::select! {
                answer = propose(&client, Run::Flow(id), StateType::Running, None) => Ok(answer),
                interrupt = interrupted(&client, id, stop.as_mut(), watch_cancellation) => Err(interrupt),
            };
            starting.disarm();
            let mut abandon: Option<Abandon> = None;
            let outcome = match started {
                Err(interrupt) => {
                    tracing::info!(flow_run_id = %id, ?interrupt, "the run was stopped while it waited to start");
                    interrupt.outcome()
                }
                Ok(answer) => match answer? {
                    Answer::Accepted(_) => {
                        if let Some(running) = &running {
                            running.notify_one();
                        }
                        if let Some(beats) = heartbeat.take() {
                            let beating = tokio::spawn(beat(client.clone(), id, beats));
                            _beating = Some(AbortOnDrop(beating.abort_handle()));
                        }
                        // Each attempt counts its task runs afresh: a persisted task's record is
                        // found again by its place in the flow.
                        ctx.shared.task_counts.restart();
                        let made =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(ctx.clone())));
                        match made {
                            Ok(Some(future)) => {
                                let span = tracing::info_span!("prefect_flow_run", prefect.flow_run_id = %id, prefect.flow = %flow_name);
                                let work = tokio::spawn(
                                    async move {
                                        match timeout {
                                            Some(limit) => {
                                                tokio::time::timeout(limit, future).await.map_err(|_| limit)
                                            }
                                            None => Ok(future.await),
                                        }
                                    }
                                    .instrument(span),
                                );
                                abandon = Some(Abandon {
                                    shared: ctx.shared.clone(),
                                    work: Some(work.abort_handle()),
                                    end: Some(dropped_end()),
                                });
                                watch(&client, id, work, stop.as_mut(), watch_cancellation).await
                            }
                            Ok(None) => {
                                // The body cannot run again: its last failure stands, for good.
                                let last = last_failure.take().unwrap_or(Outcome::Stopped {
                                    state: StateType::Failed,
                                    message: CANNOT_RETRY.into(),
                                });
                                let unreported =
                                    propose_state(&client, Run::Flow(id), &end_of(&last).forced(true))
                                        .await
                                        .err();
                                return Ok(report(last, unreported));
                            }
                            Err(payload) => {
                                let message = panic_message(payload);
                                tracing::error!(flow_run_id = %id, %message, "the flow's handler panicked before it gave its future");
                                Outcome::Panicked(message)
                            }
                        }
                    }
                    Answer::Rejected(state) if is_cancelling(&state) => Outcome::Cancelled,
                    Answer::Rejected(state) => {
                        let (state, message) = Answer::rejected_state(&state);
                        return Ok(report(Outcome::NotStarted { state, message }, None));
                    }
                    Answer::Aborted(reason) => return Err(Error::RunAborted { run_id: id, reason }),
                },
            };
            let proposal = end_of(&outcome);
            // Dropped from here on, the run still ends as the body did.
            let mut abandon = abandon.unwrap_or(Abandon {
                shared: ctx.shared.clone(),
                work: None,
                end: None,
            });
            abandon.end = Some(proposal.clone().forced(true));
            if matches!(
                &outcome,
                Outcome::Stopped {
                    state: StateType::Scheduled,
                    ..
                }
            ) {
                clear_in_process_retry(&client, id).await;
            }
            end_tasks(&ctx.shared, &outcome).await;
            let _ = tokio::time::timeout(LOG_FLUSH_BUDGET, super::flush_logs()).await;
            let answer = propose_state(&client, Run::Flow(id), &proposal).await;
            abandon.disarm();
            let answer = match answer {
                Ok(answer) => answer,
                // The body's value is kept: the caller learns the end was not reported.
                Err(error) => {
                    tracing::warn!(flow_run_id = %id, %error, "the flow run's end could not be reported to Prefect");
                    return Ok(report(outcome, Some(error)));
                }
            };
            match answer {
                Answer::Rejected(Some(state))
                    if matches!(outcome, Outcome::Failed(_) | Outcome::TimedOut(_))
                        && state.type_ == StateType::Scheduled =>
                {
                    tracing::info!(flow_run_id = %id, "the run failed and has retries left: running it again");
                    last_failure = Some(outcome);
                    continue;
                }
                // Cancelled while its end was on the way: the server keeps it CANCELLING until
                // the side executing it says CANCELLED.
                Answer::Rejected(state) if is_cancelling(&state) => {
                    tracing::info!(flow_run_id = %id, "the run was cancelled as it ended; ending it CANCELLED");
                    let unreported = propose_state(
                        &client,
                        Run::Flow(id),
                        &end_of::<T, E>(&Outcome::Cancelled).forced(true),
                    )
                    .await
                    .err();
                    return Ok(report(Outcome::Cancelled, unreported));
                }
                Answer::Accepted(_) | Answer::Rejected(_) => return Ok(report(outcome, None)),
                Answer::Aborted(reason) => return Err(Error::RunAborted { run_id: id, reason }),
            }
        }
    }
}

/// Whether the state the server keeps is CANCELLING.
fn is_cancelling(state: &Option<Box<crate::types::State>>) -> bool {
    state.as_ref().is_some_and(|s| s.type_ == StateType::Cancelling)
}

/// What stopped a run before its body ran.
#[derive(Debug)]
enum Interrupt {
    /// A stop from outside (a shutdown, a cancellation the caller watched, a lost slot).
    Stop(Stop),
    /// The run's own watch saw it CANCELLING or CANCELLED.
    Cancelled,
}

impl Interrupt {
    fn outcome<T, E>(self) -> Outcome<T, E> {
        match self {
            Interrupt::Stop(reason) => stopped_outcome(reason),
            Interrupt::Cancelled => Outcome::Cancelled,
        }
    }
}

/// Resolves when the run is stopped from outside, or (when it watches its own) cancelled.
/// A stop already sent is seen at once; the run's own watch begins after
/// [`START_WATCH_DELAY`], so a RUNNING proposal answered at once costs no subscription.
async fn interrupted(
    client: &Client,
    id: Uuid,
    stop: Option<&mut StopSignal>,
    watch_cancellation: bool,
) -> Interrupt {
    let cancelled = async {
        tokio::time::sleep(START_WATCH_DELAY).await;
        cancellation(client.clone(), id, watch_cancellation).await;
    };
    tokio::select! {
        reason = stopped(stop) => Interrupt::Stop(reason),
        () = cancelled => Interrupt::Cancelled,
    }
}

/// How long a RUNNING proposal is awaited before the run watches its own cancellation.
const START_WATCH_DELAY: Duration = Duration::from_secs(1);

/// Resolves at the first stop sent (at once for one sent already); never without a signal.
async fn stopped(stop: Option<&mut StopSignal>) -> Stop {
    let Some(stop) = stop else {
        return std::future::pending::<Stop>().await;
    };
    loop {
        if let Some(reason) = stop.borrow_and_update().clone() {
            return reason;
        }
        if stop.changed().await.is_err() {
            return std::future::pending::<Stop>().await;
        }
    }
}

/// Resolves when the run is CANCELLING or CANCELLED (seen by its events, or by polls when the
/// event socket cannot be used); never when `watching` is false or another final state was
/// forced from outside. The run's watch, for as long as the run's work goes on: a watch that
/// fails (the run cannot be read) is started again after [`CANCELLATION_WATCH_RETRY`].
async fn cancellation(client: Client, id: Uuid, watching: bool) {
    if !watching {
        return std::future::pending::<()>().await;
    }
    let ends = |state: &StateType| matches!(state, StateType::Cancelling) || is_final(state);
    loop {
        let mut runs = client.flow_runs().watch_woken_by(id, ends);
        while let Some(run) = runs.next().await {
            match run.map(|run| run.state_type) {
                Ok(Some(StateType::Cancelling | StateType::Cancelled)) => return,
                // Another final state was forced from outside: the work goes on to its end.
                Ok(Some(state)) if is_final(&state) => return std::future::pending::<()>().await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(flow_run_id = %id, error = %e, "watching the flow run for cancellation failed; trying again");
                }
            }
        }
        tokio::time::sleep(CANCELLATION_WATCH_RETRY).await;
    }
}

/// Before a run goes back to SCHEDULED for another process: a run this process retried keeps
/// the server's `retry_type: in_process`, and the server's pools and every runner skip such a
/// run as another process's retry, so it would never be taken again. A failure is logged.
async fn clear_in_process_retry(client: &Client, id: uuid::Uuid) {
    use crate::types::{FlowRunPolicyRetryType, FlowRunUpdate};
    let run = match client.flow_runs().get(id).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(flow_run_id = %id, error = %e, "could not read the run before scheduling it again");
            return;
        }
    };
    let Some(mut policy) = run.empirical_policy else {
        return;
    };
    if !matches!(policy.retry_type, Some(FlowRunPolicyRetryType::InProcess)) {
        return;
    }
    policy.retry_type = None;
    let update = FlowRunUpdate {
        empirical_policy: Some(policy),
        ..Default::default()
    };
    if let Err(e) = crate::resources::call!(client, update_flow_run(&id, &update)) {
        tracing::warn!(flow_run_id = %id, error = %e, "could not clear the run's in-process retry; no other process may take it");
    }
}

/// The message of a run the server retries whose body cannot run again.
const CANNOT_RETRY: &str = "the Rust flow cannot run again in this process";

/// The state that ends a run of this outcome.
fn end_of<T, E: Display>(outcome: &Outcome<T, E>) -> Proposal {
    match outcome {
        Outcome::Completed(_) => Proposal::new(StateType::Completed),
        Outcome::Failed(e) => Proposal::new(StateType::Failed).message(Some(e.to_string())),
        Outcome::TimedOut(limit) => {
            Proposal::new(StateType::Failed)
                .named("TimedOut")
                .message(Some(format!(
                    "Flow run exceeded timeout of {:.1} second(s)",
                    limit.as_secs_f64()
                )))
        }
        Outcome::Panicked(message) => {
            Proposal::new(StateType::Crashed).message(Some(format!("the Rust future panicked: {message}")))
        }
        Outcome::Cancelled => {
            Proposal::new(StateType::Cancelled).message(Some("cancelled; the Rust future was stopped"))
        }
        Outcome::Stopped { state, message } => {
            let proposal = Proposal::new(state.clone()).message(Some(message.clone()));
            match state {
                // Due now, for any process to take; the server's rules decide (a run being
                // cancelled is not rescheduled).
                StateType::Scheduled => proposal.named("AwaitingRetry").at(chrono::Utc::now()),
                _ => proposal.forced(true),
            }
        }
        Outcome::NotStarted { .. } => Proposal::new(StateType::Cancelled),
    }
}

/// The end of a run whose future was dropped before it ended.
fn dropped_end() -> Proposal {
    Proposal::new(StateType::Cancelled)
        .message(Some(DROPPED))
        .forced(true)
}

/// The message of a run whose future was dropped before it ended.
pub(crate) const DROPPED: &str = "the Rust future running this flow run was dropped before it finished \
                                  (cancelled by its caller, e.g. a timeout around it); its work was stopped";

/// Aborts a task when dropped: a background task (heartbeats, a lease's renewal) that ends with
/// whatever owns it, however that ends.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A flow run under way whose end has not been reported. Dropped so (the future of
/// [`Execution::run`] dropped by a timeout or a `select!`, or its runtime shutting down), it
/// stops the body, ends the task runs left running, and ends the flow run with `end`
/// (CANCELLED, saying why, unless the body had ended already), on the runtime while it runs and
/// from a thread of its own at program end. The heartbeats stop with the future.
struct Abandon {
    shared: Arc<Shared>,
    /// The body's task, once it runs.
    work: Option<tokio::task::AbortHandle>,
    end: Option<Proposal>,
}

impl Abandon {
    fn disarm(&mut self) {
        self.end = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some(end) = self.end.take() else {
            return;
        };
        if let Some(work) = &self.work {
            work.abort();
        }
        let shared = self.shared.clone();
        tracing::warn!(flow_run_id = %shared.flow_run_id, state = ?end.state, "the flow run's future was dropped before its end was reported; ending it");
        crate::detached::finish(
            &shared.client.clone(),
            "ending a flow run whose future was dropped",
            Box::new(move |client| {
                let (shared, end) = (shared.clone(), end.clone());
                Box::pin(async move {
                    end_active_tasks(&client, &shared, StateType::Cancelled, DROPPED_TASK).await;
                    propose_state(&client, Run::Flow(shared.flow_run_id), &end)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            }),
        );
    }
}

/// The message of a task run whose flow run's future was dropped while it ran.
const DROPPED_TASK: &str = "the flow run's future was dropped while this task ran";

/// Runs the work until it ends, the run is set cancelling (seen by its events, or by polls
/// when the event socket cannot be used), or a stop comes.
async fn watch<T, E>(
    client: &Client,
    id: Uuid,
    mut work: tokio::task::JoinHandle<Result<Result<T, E>, Duration>>,
    stop: Option<&mut StopSignal>,
    watch_cancellation: bool,
) -> Outcome<T, E> {
    let cancelled = cancellation(client.clone(), id, watch_cancellation);
    let stopped = stopped(stop);
    tokio::select! {
        joined = &mut work => match joined {
            Ok(Ok(Ok(value))) => Outcome::Completed(value),
            Ok(Ok(Err(error))) => Outcome::Failed(error),
            Ok(Err(limit)) => Outcome::TimedOut(limit),
            Err(e) if e.is_panic() => Outcome::Panicked(panic_message(e.into_panic())),
            Err(_) => Outcome::Cancelled,
        },
        () = cancelled => {
            work.abort();
            let _ = work.await;
            Outcome::Cancelled
        }
        reason = stopped => {
            work.abort();
            let _ = work.await;
            stopped_outcome(reason)
        }
    }
}

/// The outcome of a stop from outside.
fn stopped_outcome<T, E>(reason: Stop) -> Outcome<T, E> {
    let (state, message) = match reason {
        Stop::Reschedule(message) => (StateType::Scheduled, message),
        Stop::Cancel(message) => (StateType::Cancelled, message),
        Stop::Crash(message) => (StateType::Crashed, message),
    };
    Outcome::Stopped { state, message }
}

/// Ends task runs the flow left running: CANCELLED when the flow was cancelled, CRASHED when it
/// panicked, else CANCELLED (the flow returned before they ended).
async fn end_tasks<T, E>(shared: &Shared, outcome: &Outcome<T, E>) {
    let (state, message) = match outcome {
        Outcome::Panicked(_) => (
            StateType::Crashed,
            "the flow run's future panicked while this task ran",
        ),
        Outcome::Cancelled | Outcome::Stopped { .. } => (
            StateType::Cancelled,
            "the flow run was stopped while this task ran",
        ),
        Outcome::TimedOut(_) => (StateType::Cancelled, "the flow run timed out while this task ran"),
        _ => (StateType::Cancelled, "the flow run ended while this task ran"),
    };
    end_active_tasks(&shared.client, shared, state, message).await;
}

/// Ends every task run of the flow run that started and has not ended, with `state` (forced:
/// the flow ends its own task runs, and a tagged one's rule could hang, see task/attempt.rs); a task run
/// whose own end could not be reported ends with the state it meant to report.
pub(crate) async fn end_active_tasks(client: &Client, shared: &Shared, state: StateType, message: &str) {
    let active: Vec<(Uuid, Option<TaskEnd>)> = shared.active_tasks.drain();
    for (task, intended) in active {
        let (state, message) = match intended {
            Some((state, message)) => (state, message),
            None => (state.clone(), Some(message.to_string())),
        };
        if let Err(e) = propose_with(client, Run::Task(task), state, message.as_deref(), true).await {
            tracing::warn!(task_run_id = %task, error = %e, "could not end a task run the flow left running");
        }
    }
}

/// Emits the run's heartbeat now and every `beats.every` after, until aborted.
async fn beat(client: Client, id: Uuid, beats: Heartbeat) {
    loop {
        if let Err(e) = client.events().emit_all(&[beats.event(id)]).await {
            tracing::debug!(flow_run_id = %id, error = %e, "a heartbeat failed");
        }
        tokio::time::sleep(beats.every).await;
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7)), "a panic without a message");
    }
}
