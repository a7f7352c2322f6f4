//! A task run nested under a flow run, with Prefect's task semantics: created PENDING (with its
//! retry policy and inputs), its tags' slots held, set RUNNING, its body run (again on a
//! failure while retries are left, dropped past its timeout, skipped on a cache hit), and
//! ended with the body's result (persisted as a result record when asked).
//!
//! [`TaskScope`] here is where a task starts; each job it is made of has a file of its own:
//!
//! - `options`: the task's settings, checked before anything is sent, and what follows from
//!   them alone (the task run to create, the tag limits to hold, which failures are retried).
//! - `retry_delay`: [`RetryDelay`], the wait before each retry, and the policy recorded on the
//!   task run.
//! - `persist`: [`PersistedTask`], result records and the cache key they are found under.
//! - `attempt`: the engine: the task run created, its slots held, its attempts run and their
//!   states reported.
//! - `outcome`: what the caller gets, [`TaskOutput`] or [`TaskError`].

mod attempt;
mod options;
mod outcome;
mod persist;
mod retry_delay;

use std::any::Any;
use std::fmt::{self, Display};
use std::future::Future;
use std::time::Duration;

use options::TaskOptions;
pub use outcome::{TaskError, TaskOutput};
use persist::Persist;
pub use persist::PersistedTask;
pub use retry_delay::RetryDelay;

use super::context::RunContext;
use crate::types::{TaskRunCreateTaskInputsValueItem, TaskRunResult, TaskRunResultInputType};

/// A task run to start; from [`RunContext::task`]. Set its options (named after Prefect's
/// task options), then [`run`](TaskScope::run) it. Task runs may run one after another or at
/// once (join their futures); each costs three requests (four with tags, two more per retry).
#[must_use = "call .run(...) to run the task"]
pub struct TaskScope {
    ctx: RunContext,
    options: TaskOptions,
}

impl fmt::Debug for TaskScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        f.debug_struct("TaskScope")
            .field("name", &options.name)
            .field("tags", &options.tags)
            .field("retries", &options.retries)
            .field("retry_delay", &options.retry_delay)
            .field("retry_if", &options.retry_if.is_some())
            .field("timeout", &options.timeout)
            .finish_non_exhaustive()
    }
}

impl TaskScope {
    pub(crate) fn new(ctx: RunContext, name: &str) -> TaskScope {
        TaskScope {
            ctx,
            options: TaskOptions::new(name),
        }
    }

    /// The task run's tags; a tag with a concurrency limit (v1,
    /// [`concurrency_limits`](crate::Client::concurrency_limits), which Prefect keeps as the
    /// global limit `tag:<tag>`) lets only that many task runs of the tag run at once, across
    /// every process and Prefect's own Python tasks: the task run holds a slot of each under a
    /// lease while it runs, as Prefect's engine does.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.options.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Runs the body again when it fails (or times out), up to `retries` more times: one task
    /// run whose `run_count` counts the attempts, AwaitingRetry (with a delay) or Retrying
    /// (without) between them, as Prefect's `@task(retries=…)`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = retries;
        self
    }

    /// The delay before each retry; none by default.
    pub fn retry_delay(mut self, delay: RetryDelay) -> Self {
        self.options.retry_delay = delay;
        self
    }

    /// Retries only the errors `condition` accepts (Prefect's `retry_condition_fn`); `E` is
    /// the body's error type (for another type the condition never matches and nothing is
    /// retried). Timeouts are always retried.
    pub fn retry_if<E: 'static>(mut self, condition: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.options.retry_if = Some(Box::new(move |error: &dyn Any| {
            error.downcast_ref::<E>().is_some_and(&condition)
        }));
        self
    }

    /// Drops the body's future after `limit`: the attempt fails, named "TimedOut" (Prefect's
    /// `timeout_seconds`).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.options.timeout = Some(limit);
        self
    }

    /// Records that this task takes `upstream`'s value as its input `name`: Prefect's run graph
    /// draws the edge (the run's `task_inputs`).
    pub fn input<U>(mut self, name: &str, upstream: &TaskOutput<U>) -> Self {
        let item = TaskRunCreateTaskInputsValueItem::TaskRunResult(TaskRunResult {
            id: upstream.task_run_id,
            input_type: Some(TaskRunResultInputType::TaskRun),
        });
        self.options
            .inputs
            .entry(name.to_string())
            .or_default()
            .push(item);
        self
    }

    /// Persists the task's value as a result record in Prefect's format (read by Python's
    /// `State.result()`), and returns a value recorded before without running the body: the
    /// value under its [`cache_key`](PersistedTask::cache_key), in any process reading the same
    /// storage; without a key, the value this task recorded in an earlier attempt of the same
    /// flow run (a retry in process or from the UI, a run scheduled again), found by the task's
    /// name and its place among the task runs of that name (as Prefect's default cache policy
    /// finds it by the run's id; Prefect's also hashes the inputs, which Rust cannot see: give a
    /// key built from them when they may change between attempts, or
    /// [`refresh_cache`](PersistedTask::refresh_cache)).
    pub fn persisted(self) -> PersistedTask {
        PersistedTask {
            scope: self,
            persist: Persist::new(),
        }
    }

    /// Creates the task run (PENDING), holds the slots of its tags' limits, sets it RUNNING,
    /// runs `body` (again on a failure, as [`retries`](TaskScope::retries) says; dropped past
    /// its [`timeout`](TaskScope::timeout)), and ends the task run COMPLETED or FAILED (the
    /// error's `Display` as its message). Its `tracing` events go to the task run's logs when a
    /// [`PrefectLogLayer`](super::PrefectLogLayer) is installed. `body` is called once per
    /// attempt; a body that consumes what it captures goes to [`run_once`](TaskScope::run_once).
    ///
    /// # Errors
    /// [`TaskError::Failed`] with the body's error and [`TaskError::TimedOut`] (of the last
    /// attempt); [`TaskError::NotStarted`] when Prefect kept the task from running;
    /// [`TaskError::Prefect`] when the task run could not be created or its slots taken (a
    /// failed report of its end is not an error: the flow run reports it).
    pub async fn run<F, Fut, T, E>(self, body: F) -> Result<T, TaskError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display + 'static,
    {
        self.output(body).await.map(TaskOutput::into_inner)
    }

    /// [`TaskScope::run`] for a body that consumes what it captures (a oneshot sender, a
    /// value moved in): it runs once, so [`retries`](TaskScope::retries) do not apply.
    ///
    /// # Errors
    /// As [`TaskScope::run`].
    pub async fn run_once<F, Fut, T, E>(mut self, body: F) -> Result<T, TaskError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display + 'static,
    {
        self.options.retries = 0;
        let mut body = Some(body);
        self.run(move || {
            let body = body.take();
            async move {
                match body {
                    Some(body) => body().await,
                    // Never reached: without retries the body is called once.
                    None => std::future::pending().await,
                }
            }
        })
        .await
    }

    /// [`TaskScope::run`], with the task run's id (for [`TaskScope::input`]).
    ///
    /// # Errors
    /// As [`TaskScope::run`].
    pub async fn output<F, Fut, T, E>(self, body: F) -> Result<TaskOutput<T>, TaskError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display + 'static,
    {
        self.execute(body, |_: &T, _| Ok(None), |_| None).await
    }
}
