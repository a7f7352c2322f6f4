//! The task engine: creating the task run, holding its tags' slots, and its attempts (RUNNING,
//! the body under its timeout, then COMPLETED, a retry after its delay, or FAILED), each state
//! reported to Prefect as its engine reports it.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use super::TaskScope;
use super::outcome::{TaskError, TaskOutput, timeout_message};
use crate::Error;
use crate::lease::LeaseHolder;
use crate::resources::call;
use crate::runs::orchestration::{Answer, Proposal, Run, propose_state, resending};
use crate::types::StateType;
use crate::waits::{TAG_SLOT_TIMEOUT, TASK_LOG_FLUSH_BUDGET};

/// How one attempt failed to return a value.
#[derive(Debug)]
pub(super) enum Failure<E> {
    /// The body returned this error.
    Error(E),
    /// The body ran past this timeout and was dropped.
    TimedOut(Duration),
}

impl<E: Display> Failure<E> {
    /// The message its state carries (AwaitingRetry's or FAILED's): the error's `Display`, or
    /// Prefect's timeout message.
    fn message(&self) -> String {
        match self {
            Failure::Error(error) => error.to_string(),
            Failure::TimedOut(limit) => timeout_message(*limit),
        }
    }

    /// The FAILED state that ends a task run whose last attempt failed so (named "TimedOut"
    /// for a timeout, as Prefect's engine names it); not retriable by the server, since the
    /// client made its retries; skipping the server's rules when `force`.
    fn end(&self, force: bool) -> Proposal {
        let end = Proposal::new(StateType::Failed)
            .message(Some(self.message()))
            .retriable(false)
            .forced(force);
        match self {
            Failure::Error(_) => end,
            Failure::TimedOut(_) => end.named("TimedOut"),
        }
    }
}

impl<E> From<Failure<E>> for TaskError<E> {
    fn from(failure: Failure<E>) -> Self {
        match failure {
            Failure::Error(error) => TaskError::Failed(error),
            Failure::TimedOut(after) => TaskError::TimedOut { after },
        }
    }
}

/// When a retry `delay` from `now` is due, for its AwaitingRetry state; `now` for a delay no
/// date can hold (the task still waits the whole delay).
fn retry_time(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .unwrap_or(now)
}

impl TaskScope {
    /// Creates the task run (PENDING), holds the slots of its tags' limits, runs its attempts
    /// and frees the slots. `store` writes a value and gives the COMPLETED state's data;
    /// `cached` gives a value recorded before (skipping the body); both are told the task's
    /// place among the task runs of its name in this attempt of the flow run.
    pub(super) async fn execute<F, Fut, T, E>(
        self,
        mut body: F,
        store: impl FnOnce(&T, u64) -> Result<Option<Value>, Error>,
        cached: impl FnOnce(u64) -> Option<(T, Value)>,
    ) -> Result<TaskOutput<T>, TaskError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display + 'static,
    {
        self.options.check()?;
        let shared = &self.ctx.shared;
        let client = &shared.client;
        // The task's place among the task runs of its name in this attempt of the flow run.
        let occurrence = shared.task_counts.next(&self.options.name);
        let create = self
            .options
            .create(shared.flow_run_id, &shared.flow_name, occurrence);
        // An upsert by (flow run, task key, dynamic key): sending it again is safe.
        let task = resending("creating a task run", || async {
            call!(client, create_task_run(&create))
        })
        .await?;
        let id = task.id;
        // Until it ends, the flow ends it if the future is dropped (cancelled, or the flow
        // returned without awaiting it).
        shared.active_tasks.started(id);
        // Tag limits are held here, as Prefect's own engine does: a slot of the global limit
        // `tag:<tag>` per tag, under a lease held by this task run, taken before RUNNING and
        // freed after the end. The server's own rule for them is skipped (`force`): on Prefect
        // 3.8 with SQLite a REST state change of a task run under a tag limit hangs.
        let slots = match self.options.tag_limits() {
            None => None,
            Some(names) => Some(
                client
                    .concurrency(names)
                    .strict(false)
                    .holder(LeaseHolder::TaskRun(id))
                    .timeout(TAG_SLOT_TIMEOUT)
                    .acquire()
                    .await?,
            ),
        };
        let force = slots.is_some();
        let outcome = self
            .attempts(
                id,
                force,
                &mut body,
                |value| store(value, occurrence),
                || cached(occurrence),
            )
            .await;
        if let Some(slots) = slots
            && let Err(e) = slots.release().await
        {
            tracing::warn!(task_run_id = %id, error = %e, "releasing the task's tag slots failed; they come back when the lease expires");
        }
        outcome.map(|value| TaskOutput {
            value,
            task_run_id: id,
        })
    }

    /// RUNNING, the body, and the end; again while retries are left.
    async fn attempts<F, Fut, T, E>(
        &self,
        id: Uuid,
        force: bool,
        body: &mut F,
        store: impl FnOnce(&T) -> Result<Option<Value>, Error>,
        cached: impl FnOnce() -> Option<(T, Value)>,
    ) -> Result<T, TaskError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display + 'static,
    {
        let shared = &self.ctx.shared;
        let client = &shared.client;
        let hit = cached();
        let mut attempt = 0u32;
        loop {
            // A retry is named "Retrying" and set as Prefect's engine sets it (forced: the
            // server would call a RUNNING after RUNNING "Rerunning").
            let running = match attempt {
                0 => Proposal::new(StateType::Running).forced(force),
                _ => Proposal::new(StateType::Running).named("Retrying").forced(true),
            };
            match propose_state(client, Run::Task(id), &running).await? {
                Answer::Accepted(_) => {}
                Answer::Rejected(returned) => {
                    let (state, message) = Answer::rejected_state(&returned);
                    shared.active_tasks.ended(id);
                    return Err(TaskError::NotStarted { state, message });
                }
                Answer::Aborted(reason) => {
                    shared.active_tasks.ended(id);
                    return Err(TaskError::Prefect(Error::RunAborted { run_id: id, reason }));
                }
            }
            if let Some((value, meta)) = hit {
                let end = Proposal::new(StateType::Completed)
                    .named("Cached")
                    .data(Some(meta))
                    .forced(force);
                self.report_end(id, &end).await?;
                return Ok(value);
            }
            // The flow run's id too: a task run started in a task of its own (`tokio::spawn`)
            // has no flow span above it, and its lines still belong to the flow run.
            let span = tracing::info_span!(
                "prefect_task_run",
                prefect.task_run_id = %id,
                prefect.flow_run_id = %shared.flow_run_id,
                prefect.task = %self.options.name
            );
            let lines_before = crate::runs::lines_queued();
            let future = body().instrument(span);
            let result = match self.options.timeout {
                Some(limit) => tokio::time::timeout(limit, future).await.map_err(|_| limit),
                None => Ok(future.await),
            };
            // Lines the task logged go out before the task is reported done.
            if crate::runs::lines_queued() != lines_before {
                let _ = tokio::time::timeout(TASK_LOG_FLUSH_BUDGET, crate::runs::flush_logs()).await;
            }
            let failure = match result {
                Ok(Ok(value)) => {
                    let data = store(&value)?;
                    let end = Proposal::new(StateType::Completed).data(data).forced(force);
                    self.report_end(id, &end).await?;
                    return Ok(value);
                }
                Ok(Err(error)) => Failure::Error(error),
                Err(limit) => Failure::TimedOut(limit),
            };
            if let Some(delay) = self.options.retry_after(attempt, &failure) {
                attempt += 1;
                if !delay.is_zero() {
                    let waiting = Proposal::new(StateType::Scheduled)
                        .named("AwaitingRetry")
                        .message(Some(failure.message()))
                        .at(retry_time(Utc::now(), delay))
                        .forced(true);
                    propose_state(client, Run::Task(id), &waiting).await?;
                    tokio::time::sleep(delay).await;
                }
                continue;
            }
            self.report_end(id, &failure.end(force)).await?;
            return Err(failure.into());
        }
    }

    /// Reports the task run's end; a failed report is left to the flow run (the caller still
    /// gets the body's result).
    async fn report_end(&self, id: Uuid, end: &Proposal) -> Result<(), Error> {
        let shared = &self.ctx.shared;
        match propose_state(&shared.client, Run::Task(id), end).await {
            Ok(Answer::Accepted(_) | Answer::Rejected(_)) => {
                shared.active_tasks.ended(id);
                Ok(())
            }
            Ok(Answer::Aborted(reason)) => {
                shared.active_tasks.ended(id);
                Err(Error::RunAborted { run_id: id, reason })
            }
            Err(e) => {
                tracing::warn!(task_run_id = %id, error = %e, "reporting the task run's end failed; the flow run reports it when it ends");
                shared
                    .active_tasks
                    .intend(id, end.state.clone(), end.message.clone());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_last_attempt_ends_failed_with_its_error_and_no_server_retry() {
        let end = Failure::Error("no rows").end(false);
        assert_eq!(end.state, StateType::Failed);
        assert_eq!(end.message.as_deref(), Some("no rows"));
        assert_eq!(end.name, None);
        assert!(!end.force);
        let details = end.details.expect("details saying it is not retriable");
        assert_eq!(details.retriable, Some(false));
        assert!(Failure::Error("x").end(true).force, "forced under tag limits");
    }

    #[test]
    fn a_timed_out_last_attempt_ends_failed_named_timed_out() {
        let end = Failure::<String>::TimedOut(Duration::from_millis(1500)).end(true);
        assert_eq!(end.state, StateType::Failed);
        assert_eq!(end.name.as_deref(), Some("TimedOut"));
        assert_eq!(
            end.message.as_deref(),
            Some("Task run exceeded timeout of 1.5 second(s)")
        );
        assert!(end.force);
    }

    #[test]
    fn the_caller_learns_the_failure_of_the_last_attempt() {
        assert!(matches!(
            TaskError::from(Failure::Error("no rows")),
            TaskError::Failed("no rows")
        ));
        let limit = Duration::from_secs(2);
        assert!(matches!(
            TaskError::<String>::from(Failure::TimedOut(limit)),
            TaskError::TimedOut { after } if after == limit
        ));
    }

    #[test]
    fn a_retry_is_due_after_its_delay_and_never_panics_on_a_long_one() {
        let now = Utc::now();
        assert_eq!(retry_time(now, Duration::ZERO), now);
        assert_eq!(
            retry_time(now, Duration::from_secs(90)),
            now + chrono::Duration::seconds(90)
        );
        // A delay past any date (or past chrono's durations): due now, as before.
        assert_eq!(retry_time(now, Duration::MAX), now);
        assert_eq!(
            retry_time(now, Duration::from_secs(1_000_000 * 365 * 24 * 3600)),
            now
        );
    }
}
