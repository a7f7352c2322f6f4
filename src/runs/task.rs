//! A task run nested under a flow run, with Prefect's task semantics: created PENDING (with its
//! retry policy and inputs), its tags' slots held, set RUNNING, its body run (again on a
//! failure while retries are left, dropped past its timeout, skipped on a cache hit), and
//! ended with the body's result (persisted as a result record when asked).

use std::any::Any;
use std::collections::HashMap;
use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use super::context::RunContext;
use super::orchestration::{Answer, Proposal, Run, propose_state};
#[cfg(doc)]
use super::results::LocalStorage;
use super::results::{self, ResultStorage};
use crate::Error;
use crate::lease::LeaseHolder;
use crate::resources::call;
use crate::resources::flow_runs::state_create;
use crate::types::{
    StateType, TaskRunCreate, TaskRunCreateTaskInputsValueItem, TaskRunPolicy, TaskRunPolicyRetryDelay,
    TaskRunResult, TaskRunResultInputType,
};
use crate::waits::{TAG_SLOT_TIMEOUT, TASK_LOG_FLUSH_BUDGET};

/// A task run to start; from [`RunContext::task`]. Set its options (named after Prefect's
/// task options), then [`run`](TaskScope::run) it. Task runs may run one after another or at
/// once (join their futures); each costs three requests (four with tags, two more per retry).
#[must_use = "call .run(...) to run the task"]
pub struct TaskScope {
    ctx: RunContext,
    name: String,
    tags: Vec<String>,
    retries: u32,
    retry_delay: RetryDelay,
    retry_if: Option<RetryCondition>,
    timeout: Option<Duration>,
    inputs: HashMap<String, Vec<TaskRunCreateTaskInputsValueItem>>,
}

type RetryCondition = Box<dyn Fn(&dyn Any) -> bool + Send + Sync>;

impl fmt::Debug for TaskScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskScope")
            .field("name", &self.name)
            .field("tags", &self.tags)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("retry_if", &self.retry_if.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How long a task waits before each retry (Prefect's `retry_delay_seconds`, with
/// `retry_jitter_factor`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RetryDelay {
    /// The same delay before every retry (zero: at once, the state named "Retrying").
    Fixed(Duration),
    /// One delay per retry, the last one repeated for the retries past the list.
    PerAttempt(Vec<Duration>),
    /// `base`, `2 × base`, `4 × base`, … (Prefect's `exponential_backoff`), each moved by up
    /// to `jitter` of itself either way (0.0 to 1.0; Prefect's `retry_jitter_factor`).
    Exponential {
        /// The first delay.
        base: Duration,
        /// How far each delay may move, as a fraction of it.
        jitter: f64,
    },
}

impl Default for RetryDelay {
    fn default() -> Self {
        RetryDelay::Fixed(Duration::ZERO)
    }
}

impl RetryDelay {
    /// The delay before retry `attempt` (0 for the first retry).
    pub fn before(&self, attempt: u32) -> Duration {
        match self {
            RetryDelay::Fixed(delay) => *delay,
            RetryDelay::PerAttempt(delays) => delays
                .get(attempt as usize)
                .or(delays.last())
                .copied()
                .unwrap_or_default(),
            RetryDelay::Exponential { base, jitter } => {
                let delay = base.saturating_mul(2u32.saturating_pow(attempt.min(30)));
                let jitter = if jitter.is_finite() {
                    jitter.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let factor = 1.0 + jitter * (2.0 * fastrand::f64() - 1.0);
                Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(delay)
            }
        }
    }

    /// The run's `empirical_policy` as Prefect's engine records it.
    fn policy(&self, retries: u32) -> TaskRunPolicy {
        let seconds = |d: &Duration| d.as_secs_f64();
        let (retry_delay, jitter) = match self {
            RetryDelay::Fixed(d) => (TaskRunPolicyRetryDelay::Variant1(seconds(d)), None),
            RetryDelay::PerAttempt(ds) => (
                TaskRunPolicyRetryDelay::Variant3(ds.iter().map(seconds).collect()),
                None,
            ),
            RetryDelay::Exponential { base, jitter } => (
                TaskRunPolicyRetryDelay::Variant3(
                    (0..retries.clamp(1, 50))
                        .map(|a| seconds(base) * f64::from(2u32.saturating_pow(a)))
                        .collect(),
                ),
                Some(*jitter),
            ),
        };
        TaskRunPolicy {
            retries: Some(i64::from(retries)),
            retry_delay: Some(retry_delay),
            retry_jitter_factor: jitter,
            ..Default::default()
        }
    }
}

/// A task's value with the id of its task run: pass it to [`TaskScope::input`] so Prefect's
/// run graph draws the edge to the task that uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutput<T> {
    /// What the task returned.
    pub value: T,
    /// The task run that returned it.
    pub task_run_id: Uuid,
}

impl<T> TaskOutput<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for TaskOutput<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Why a task run did not return a value.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError<E> {
    /// The task's future returned `Err` (on its last attempt); the task run is FAILED with
    /// its message.
    Failed(E),
    /// The task's future ran past its [`timeout`](TaskScope::timeout) (on its last attempt)
    /// and was dropped; the task run is FAILED, named "TimedOut".
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// The server did not let the task start (e.g. its flow run is no longer running): it
    /// keeps this state.
    NotStarted {
        /// The state the server keeps.
        state: StateType,
        /// Its message.
        message: Option<String>,
    },
    /// Reporting the task run to Prefect failed, or its result could not be stored.
    Prefect(Error),
}

impl<E: Display> Display for TaskError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(error) => write!(f, "{error}"),
            TaskError::TimedOut { after } => write!(f, "{}", timeout_message(*after)),
            TaskError::NotStarted { state, message } => write!(
                f,
                "Prefect did not let the task start: it stays {state}{}",
                message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
            ),
            TaskError::Prefect(error) => write!(f, "reporting the task run to Prefect failed: {error}"),
        }
    }
}

/// Prefect's message for a task run past its timeout.
fn timeout_message(after: Duration) -> String {
    format!("Task run exceeded timeout of {:?} second(s)", after.as_secs_f64())
}

/// An error for any task error that can be shown (a boxed error included), so `?` turns it
/// into `Box<dyn Error>` or `anyhow::Error`; the task's own error is shown, not chained, and a
/// failed report shows its cause in the message (the flow run's FAILED message in Prefect's UI
/// is the message alone); match [`TaskError::Prefect`] for the [`Error`] itself.
impl<E: Display + fmt::Debug> std::error::Error for TaskError<E> {}

impl<E> From<Error> for TaskError<E> {
    fn from(error: Error) -> Self {
        TaskError::Prefect(error)
    }
}

/// What a persisted task does with its value: store it as a result record, and look it up
/// first under its cache key.
struct Persist {
    storage: Arc<dyn ResultStorage>,
    key: Option<String>,
    expiration: Option<Duration>,
    refresh: bool,
}

impl Persist {
    /// The record's key for the task `task` at its place `occurrence` in flow run `flow_run`:
    /// the cache key, or without one the run's (found again when the same flow run runs again:
    /// a retry in process or from the UI, a run scheduled again at shutdown, a handed-over run
    /// started again), as Prefect's default cache policy (`RUN_ID`) finds it.
    fn key_at(&self, flow_run: Uuid, task: &str, occurrence: u64) -> String {
        self.key
            .clone()
            .unwrap_or_else(|| run_scoped_key(flow_run, task, occurrence))
    }
}

/// A task whose value is persisted (a result record in Prefect's format) and looked up first
/// (under its cache key, or its place in its flow run): from [`TaskScope::persisted`].
#[must_use = "call .run(...) to run the task"]
pub struct PersistedTask {
    scope: TaskScope,
    persist: Persist,
}

impl fmt::Debug for PersistedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistedTask")
            .field("scope", &self.scope)
            .field("storage", &self.persist.storage)
            .field("cache_key", &self.persist.key)
            .field("cache_expiration", &self.persist.expiration)
            .field("refresh_cache", &self.persist.refresh)
            .finish()
    }
}

impl PersistedTask {
    /// The cache key (Prefect's `cache_key_fn`'s value; the record's file name): a task run
    /// whose key has an unexpired record completes "Cached" with that value, without running
    /// its body, in any process that reads the same storage.
    pub fn cache_key(mut self, key: impl Into<String>) -> Self {
        self.persist.key = Some(key.into());
        self
    }

    /// How long a cached value is good for (Prefect's `cache_expiration`); for ever without.
    pub fn cache_expiration(mut self, expiration: Duration) -> Self {
        self.persist.expiration = Some(expiration);
        self
    }

    /// Runs the body even when a value is cached, and caches its new value (Prefect's
    /// `refresh_cache`).
    pub fn refresh_cache(mut self, refresh: bool) -> Self {
        self.persist.refresh = refresh;
        self
    }

    /// Where records are kept; Prefect's local storage ([`LocalStorage::from_env`]) by default.
    pub fn storage(mut self, storage: Arc<dyn ResultStorage>) -> Self {
        self.persist.storage = storage;
        self
    }

    /// [`TaskScope::run`], with the value persisted (and returned from the cache on a hit).
    ///
    /// # Errors
    /// As [`TaskScope::run`]; [`TaskError::Prefect`] with [`Error::Io`] when the record cannot
    /// be written, [`Error::InvalidInput`] for a cache key that cannot be a file name.
    pub async fn run<F, Fut, T, E>(self, body: F) -> Result<T, TaskError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize + DeserializeOwned,
        E: Display + 'static,
    {
        self.output(body).await.map(TaskOutput::into_inner)
    }

    /// [`PersistedTask::run`], with the task run's id (for [`TaskScope::input`]).
    ///
    /// # Errors
    /// As [`PersistedTask::run`].
    pub async fn output<F, Fut, T, E>(self, body: F) -> Result<TaskOutput<T>, TaskError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize + DeserializeOwned,
        E: Display + 'static,
    {
        if let Some(key) = &self.persist.key {
            results::check_key(key)?;
        }
        let persist = self.persist;
        let (flow_run, task) = (self.scope.ctx.shared.flow_run_id, self.scope.name.clone());
        let key = |occurrence| persist.key_at(flow_run, &task, occurrence);
        self.scope
            .execute(
                body,
                |value: &T, occurrence| {
                    let expiration = persist
                        .expiration
                        .and_then(|e| chrono::Duration::from_std(e).ok())
                        .map(|e| chrono::Utc::now() + e);
                    results::write(persist.storage.as_ref(), &key(occurrence), value, expiration).map(Some)
                },
                |occurrence| match persist.refresh {
                    false => results::read_cached::<T>(persist.storage.as_ref(), &key(occurrence)),
                    true => None,
                },
            )
            .await
    }
}

impl TaskScope {
    pub(crate) fn new(ctx: RunContext, name: &str) -> TaskScope {
        TaskScope {
            ctx,
            name: name.to_string(),
            tags: Vec::new(),
            retries: 0,
            retry_delay: RetryDelay::default(),
            retry_if: None,
            timeout: None,
            inputs: HashMap::new(),
        }
    }

    /// The task run's tags; a tag with a concurrency limit (v1,
    /// [`concurrency_limits`](crate::Client::concurrency_limits), which Prefect keeps as the
    /// global limit `tag:<tag>`) lets only that many task runs of the tag run at once, across
    /// every process and Prefect's own Python tasks: the task run holds a slot of each under a
    /// lease while it runs, as Prefect's engine does.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Runs the body again when it fails (or times out), up to `retries` more times: one task
    /// run whose `run_count` counts the attempts, AwaitingRetry (with a delay) or Retrying
    /// (without) between them, as Prefect's `@task(retries=…)`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The delay before each retry; none by default.
    pub fn retry_delay(mut self, delay: RetryDelay) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Retries only the errors `condition` accepts (Prefect's `retry_condition_fn`); `E` is
    /// the body's error type (for another type the condition never matches and nothing is
    /// retried). Timeouts are always retried.
    pub fn retry_if<E: 'static>(mut self, condition: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Box::new(move |error: &dyn Any| {
            error.downcast_ref::<E>().is_some_and(&condition)
        }));
        self
    }

    /// Drops the body's future after `limit`: the attempt fails, named "TimedOut" (Prefect's
    /// `timeout_seconds`).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Records that this task takes `upstream`'s value as its input `name`: Prefect's run graph
    /// draws the edge (the run's `task_inputs`).
    pub fn input<U>(mut self, name: &str, upstream: &TaskOutput<U>) -> Self {
        let item = TaskRunCreateTaskInputsValueItem::TaskRunResult(TaskRunResult {
            id: upstream.task_run_id,
            input_type: Some(TaskRunResultInputType::TaskRun),
        });
        self.inputs.entry(name.to_string()).or_default().push(item);
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
            persist: Persist {
                storage: results::default_storage(),
                key: None,
                expiration: None,
                refresh: false,
            },
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
        self.retries = 0;
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

    async fn execute<F, Fut, T, E>(
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
        super::check_run_name("task name", &self.name)?;
        let shared = &self.ctx.shared;
        let client = &shared.client;
        // The task's place among the task runs of its name in this attempt of the flow run.
        let occurrence = shared.task_counts.next(&self.name);
        // A key of its own, as Prefect's engine makes it: the server upserts task runs by (flow
        // run, task key, dynamic key), and a flow run executed again (retried in process or from
        // the UI, scheduled again) must get new task runs, not its last attempt's ended ones.
        let dynamic_key = Uuid::new_v4().to_string();
        let create = TaskRunCreate {
            cache_expiration: None,
            cache_key: None,
            dynamic_key,
            empirical_policy: Some(self.retry_delay.policy(self.retries)),
            flow_run_id: Some(shared.flow_run_id),
            id: None,
            labels: None,
            name: Some(format!("{}-{occurrence}", self.name)),
            state: Some(state_create(StateType::Pending, None, None)),
            tags: self.tags.clone(),
            task_inputs: self.inputs.clone(),
            task_key: format!("{}.{}", shared.flow_name, self.name),
            task_version: None,
        };
        // An upsert by (flow run, task key, dynamic key): sending it again is safe.
        let task = super::orchestration::resending("creating a task run", || async {
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
        let slots = if self.tags.is_empty() {
            None
        } else {
            let names = self.tags.iter().map(|tag| format!("tag:{tag}"));
            Some(
                client
                    .concurrency(names)
                    .strict(false)
                    .holder(LeaseHolder::TaskRun(id))
                    .timeout(TAG_SLOT_TIMEOUT)
                    .acquire()
                    .await?,
            )
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
                    self.ctx.shared.active_tasks.ended(id);
                    return Err(TaskError::NotStarted { state, message });
                }
                Answer::Aborted(reason) => {
                    self.ctx.shared.active_tasks.ended(id);
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
                prefect.task = %self.name
            );
            let lines_before = super::lines_queued();
            let future = body().instrument(span);
            let result = match self.timeout {
                Some(limit) => tokio::time::timeout(limit, future).await.map_err(|_| limit),
                None => Ok(future.await),
            };
            // Lines the task logged go out before the task is reported done.
            if super::lines_queued() != lines_before {
                let _ = tokio::time::timeout(TASK_LOG_FLUSH_BUDGET, super::flush_logs()).await;
            }
            let failure = match result {
                Ok(Ok(value)) => {
                    let data = store(&value)?;
                    let end = Proposal::new(StateType::Completed).data(data).forced(force);
                    self.report_end(id, &end).await?;
                    return Ok(value);
                }
                Ok(Err(error)) => Err(error),
                Err(limit) => Ok(limit),
            };
            let retry = attempt < self.retries
                && match &failure {
                    Err(error) => self
                        .retry_if
                        .as_ref()
                        .is_none_or(|accepts| accepts(error as &dyn Any)),
                    Ok(_) => true,
                };
            let message = match &failure {
                Err(error) => error.to_string(),
                Ok(limit) => timeout_message(*limit),
            };
            if retry {
                let delay = self.retry_delay.before(attempt);
                attempt += 1;
                if !delay.is_zero() {
                    let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    let waiting = Proposal::new(StateType::Scheduled)
                        .named("AwaitingRetry")
                        .message(Some(message))
                        .at(at)
                        .forced(true);
                    propose_state(client, Run::Task(id), &waiting).await?;
                    tokio::time::sleep(delay).await;
                }
                continue;
            }
            let end = Proposal::new(StateType::Failed)
                .message(Some(message))
                .retriable(false)
                .forced(force);
            let end = if failure.is_ok() {
                end.named("TimedOut")
            } else {
                end
            };
            self.report_end(id, &end).await?;
            return Err(match failure {
                Err(error) => TaskError::Failed(error),
                Ok(after) => TaskError::TimedOut { after },
            });
        }
    }

    /// Reports the task run's end; a failed report is left to the flow run (the caller still
    /// gets the body's result).
    async fn report_end(&self, id: Uuid, end: &Proposal) -> Result<(), Error> {
        match propose_state(&self.ctx.shared.client, Run::Task(id), end).await {
            Ok(Answer::Accepted(_) | Answer::Rejected(_)) => {
                self.ctx.shared.active_tasks.ended(id);
                Ok(())
            }
            Ok(Answer::Aborted(reason)) => {
                self.ctx.shared.active_tasks.ended(id);
                Err(Error::RunAborted { run_id: id, reason })
            }
            Err(e) => {
                tracing::warn!(task_run_id = %id, error = %e, "reporting the task run's end failed; the flow run reports it when it ends");
                self.ctx
                    .shared
                    .active_tasks
                    .intend(id, end.state.clone(), end.message.clone());
                Ok(())
            }
        }
    }
}

/// The record key of a persisted task without a cache key of its own: its flow run, its name
/// and its place among the task runs of that name (a file name whatever the task's name).
fn run_scoped_key(flow_run: Uuid, task: &str, occurrence: u64) -> String {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let name = task.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("run-{}-{name:016x}-{occurrence}", flow_run.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_scoped_key_is_a_stable_file_name_per_run_task_and_place() {
        let run = Uuid::from_u128(7);
        let key = run_scoped_key(run, "load/rows: ✓", 0);
        assert_eq!(key, run_scoped_key(run, "load/rows: ✓", 0), "the same every time");
        results::check_key(&key).unwrap();
        assert!(key.starts_with(&format!("run-{}-", run.simple())), "{key}");
        assert_ne!(key, run_scoped_key(run, "load/rows: ✓", 1));
        assert_ne!(key, run_scoped_key(run, "load/rows", 0));
        assert_ne!(key, run_scoped_key(Uuid::from_u128(8), "load/rows: ✓", 0));
    }

    #[test]
    fn retry_delays_follow_prefects_shapes() {
        let s = Duration::from_secs;
        assert_eq!(RetryDelay::Fixed(s(3)).before(5), s(3));
        let listed = RetryDelay::PerAttempt(vec![s(1), s(10)]);
        assert_eq!(
            (listed.before(0), listed.before(1), listed.before(7)),
            (s(1), s(10), s(10))
        );
        assert_eq!(RetryDelay::PerAttempt(vec![]).before(0), Duration::ZERO);
        let exact = RetryDelay::Exponential {
            base: s(2),
            jitter: 0.0,
        };
        assert_eq!((exact.before(0), exact.before(3)), (s(2), s(16)));
        let jittered = RetryDelay::Exponential {
            base: s(10),
            jitter: 0.5,
        };
        for _ in 0..100 {
            let delay = jittered.before(1);
            assert!(delay >= s(10) && delay <= s(30), "{delay:?}");
        }
        // Out-of-range jitter is clamped, not a panic.
        let wild = RetryDelay::Exponential {
            base: s(1),
            jitter: f64::NAN,
        };
        assert_eq!(wild.before(0), s(1));
    }
}
