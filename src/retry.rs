//! Retry policy as data: [`RetryPolicy`] (how many times, how long between tries, which
//! statuses), which operations may be sent again once the server may have acted on them, how
//! the server's `Retry-After` is read; and the one retry mechanism every wait between tries
//! uses: a schedule of pauses as a value ([`Backoff`]; the numbers of each are in
//! `src/waits.rs`), walked by [`Retries`], which counts the failures, keeps the budget and
//! acts on each failure's [`Verdict`].

use std::future::Future;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio::time::Instant;

/// How the client retries a request that failed without an answer worth returning: a refused
/// connection (nothing reached the server), 429 and 503 (the server refused without acting),
/// extra status codes of your choice; and, only for operations safe to repeat, 502, 504, a
/// broken connection or one stalled request (the server may have acted). Waits grow from
/// `first` by `factor` to `max`, with jitter; the server's `Retry-After` is waited instead
/// when it gives one of at most [`max_retry_after`](RetryPolicy::max_retry_after) (a longer
/// one is returned as the error).
///
/// Read from Prefect's settings by [`Config::from_env`](crate::Config::from_env)
/// (`PREFECT_CLIENT_MAX_RETRIES`, `PREFECT_CLIENT_RETRY_EXTRA_CODES`); set in code with
/// [`ClientBuilder::retry_policy`](crate::ClientBuilder::retry_policy):
///
/// ```
/// use std::time::Duration;
/// use prefect_client::RetryPolicy;
///
/// let policy = RetryPolicy::standard()
///     .with_max_retries(3)
///     .with_backoff(Duration::from_millis(100), 2.0, Duration::from_secs(5));
/// assert_eq!(policy.max_retries(), 3);
/// # let _ = prefect_client::Client::builder("http://127.0.0.1:4200/api").retry_policy(policy);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    extra_codes: Vec<u16>,
    first_delay: Duration,
    factor: f32,
    max_delay: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::standard()
    }
}

impl RetryPolicy {
    /// Prefect's defaults: 5 retries; waits of 10 ms, ×6 each time, at most 10 s (10 ms, 60 ms,
    /// 360 ms, 2.16 s, 10 s: 12.6 s in all, up to twice that with jitter); `Retry-After` of up
    /// to 30 s followed. Short first: the usual 503 of a Prefect server on SQLite is a write
    /// conflict that clears in milliseconds; a SQLite server busy with many writers or a
    /// proxy's longer outage is covered by the later, longer waits. (Prefect's Python client
    /// waits 2, 4, 8, 16 and 32 s.)
    pub fn standard() -> RetryPolicy {
        RetryPolicy {
            max_retries: 5,
            extra_codes: Vec::new(),
            first_delay: Duration::from_millis(10),
            factor: 6.0,
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }

    /// No retries: every failure is returned at once.
    pub fn disabled() -> RetryPolicy {
        RetryPolicy::standard().with_max_retries(0)
    }

    /// Retries at most this many times (`PREFECT_CLIENT_MAX_RETRIES`; 0 turns them off).
    pub fn with_max_retries(mut self, retries: u32) -> RetryPolicy {
        self.max_retries = retries;
        self
    }

    /// Retries these statuses too, besides 429, 503 (and 502, 504 where safe)
    /// (`PREFECT_CLIENT_RETRY_EXTRA_CODES`). They are retried for every operation: the server
    /// must not have acted when it answers them.
    pub fn with_extra_codes(mut self, codes: impl IntoIterator<Item = u16>) -> RetryPolicy {
        self.extra_codes = codes.into_iter().collect();
        self
    }

    /// Waits `first`, then `factor` times the last wait, at most `max` (before jitter, which
    /// adds up to as much again). A factor below 1 counts as 1.
    pub fn with_backoff(mut self, first: Duration, factor: f32, max: Duration) -> RetryPolicy {
        self.first_delay = first;
        self.factor = if factor.is_finite() { factor.max(1.0) } else { 1.0 };
        self.max_delay = max.max(first);
        self
    }

    /// The longest `Retry-After` waited on; a longer one ends the retries (default 30 s).
    pub fn with_max_retry_after(mut self, max: Duration) -> RetryPolicy {
        self.max_retry_after = max;
        self
    }

    /// Retries at most.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Statuses retried besides the standard ones.
    pub fn extra_codes(&self) -> &[u16] {
        &self.extra_codes
    }

    /// The longest `Retry-After` waited on.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The waits between the tries of one request.
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::exponential(self.first_delay, self.factor, self.max_delay).at_most(self.max_retries)
    }
}

/// A schedule of pauses between tries, as a value: the first pause, how the next ones grow to
/// the longest, whether jitter spreads them, and how many retries it allows. Every pause the
/// SDK takes between tries is one of these (their numbers are in `src/waits.rs`, the
/// transport's come from the [`RetryPolicy`]); [`Retries`] walks one, [`Backoff::pauses`] lists
/// its pauses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    first: Duration,
    growth: Growth,
    max: Duration,
    jitter: bool,
    /// Retries at most (`None`: no end).
    times: Option<u32>,
}

/// How the pauses of a [`Backoff`] grow from the first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    /// Each pause `factor` times the last (backon's exponential backoff).
    Factor(f32),
    /// Each pause `step` longer than the last.
    Step(Duration),
    /// Each pause this share (1/n) of the time left before the deadline of the [`Retries`],
    /// within the first and the longest pause; the longest when there is no deadline.
    ShareOfTimeLeft(u32),
}

impl Backoff {
    /// `first`, then ×`factor` each time, at most `max` (before jitter), with jitter (each
    /// pause lengthened by up to as much again); no end.
    pub(crate) const fn exponential(first: Duration, factor: f32, max: Duration) -> Backoff {
        Backoff {
            first,
            growth: Growth::Factor(factor),
            max,
            jitter: true,
            times: None,
        }
    }

    /// `first`, then `step` longer each time, at most `max`; no jitter, no end.
    pub(crate) const fn linear(first: Duration, step: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            growth: Growth::Step(step),
            max,
            jitter: false,
            times: None,
        }
    }

    /// The same pause every time; no jitter, no end.
    pub(crate) const fn constant(pause: Duration) -> Backoff {
        Backoff::linear(pause, Duration::ZERO, pause)
    }

    /// A share (`1/parts`) of the time left before the deadline of the [`Retries`] walking it,
    /// at least `min` and at most `max` (`max` when there is no deadline); no jitter, no end.
    pub(crate) const fn share_of_time_left(parts: u32, min: Duration, max: Duration) -> Backoff {
        Backoff {
            first: min,
            growth: Growth::ShareOfTimeLeft(parts),
            max,
            jitter: false,
            times: None,
        }
    }

    /// The same pauses without jitter: exactly the numbers written.
    pub(crate) const fn without_jitter(mut self) -> Backoff {
        self.jitter = false;
        self
    }

    /// At most `retries` pauses, so `retries + 1` tries in all.
    pub(crate) const fn at_most(self, retries: u32) -> Backoff {
        self.limit(Some(retries))
    }

    /// At most `retries` pauses (`None`: no end).
    pub(crate) const fn limit(mut self, retries: Option<u32>) -> Backoff {
        self.times = retries;
        self
    }

    /// The pauses it allows at most (`None`: no end).
    pub(crate) const fn times(&self) -> Option<u32> {
        self.times
    }

    /// Its pauses, one by one.
    pub(crate) fn pauses(&self) -> Pauses {
        let walk = match self.growth {
            Growth::Factor(factor) => {
                let builder = backon::ExponentialBuilder::default()
                    .with_min_delay(self.first)
                    .with_factor(factor)
                    .with_max_delay(self.max)
                    .without_max_times();
                let builder = if self.jitter {
                    builder.with_jitter()
                } else {
                    builder
                };
                Walk::Exponential(builder.build())
            }
            Growth::Step(_) | Growth::ShareOfTimeLeft(_) => Walk::Stepwise(None),
        };
        Pauses {
            backoff: *self,
            given: 0,
            walk,
        }
    }
}

/// The pauses of one [`Backoff`], one by one.
#[derive(Debug)]
pub(crate) struct Pauses {
    backoff: Backoff,
    given: u32,
    walk: Walk,
}

/// Where a [`Pauses`] is in its schedule.
#[derive(Debug)]
enum Walk {
    /// backon's iterator, for the growth by a factor.
    Exponential(backon::ExponentialBackoff),
    /// The last pause before jitter, for the other growths.
    Stepwise(Option<Duration>),
}

impl Pauses {
    /// The next pause, or `None` once the backoff's retries were given.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        self.next_pause(None)
    }

    /// The next pause with `left` before a deadline (for a share of the time left), or `None`
    /// once the backoff's retries were given.
    fn next_pause(&mut self, left: Option<Duration>) -> Option<Duration> {
        let Backoff {
            first,
            growth,
            max,
            jitter,
            times,
        } = self.backoff;
        if times.is_some_and(|times| self.given >= times) {
            return None;
        }
        self.given += 1;
        let base = match (&mut self.walk, growth) {
            (Walk::Exponential(walk), _) => return walk.next(),
            (Walk::Stepwise(_), Growth::ShareOfTimeLeft(parts)) => {
                left.map_or(max, |left| (left / parts.max(1)).max(first).min(max))
            }
            (Walk::Stepwise(last), growth) => {
                let next = match (*last, growth) {
                    (Some(last), Growth::Step(step)) => last.saturating_add(step).min(max),
                    _ => first,
                };
                *last = Some(next);
                next
            }
        };
        Some(if jitter {
            base.saturating_add(base.mul_f32(fastrand::f32()))
        } else {
            base
        })
    }
}

/// What a failure means to a retry: try again after the schedule's pause, try again after
/// the pause the server asked for (it still counts as one of the schedule's retries), or give
/// up and return the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Transient: try again after the schedule's next pause.
    Retry,
    /// Transient, and the server said when: try again after this pause.
    RetryAfter(Duration),
    /// Permanent: trying again cannot help.
    Stop,
}

impl Verdict {
    /// [`Verdict::Retry`] when `transient`, else [`Verdict::Stop`].
    pub(crate) fn retry_if(transient: bool) -> Verdict {
        if transient { Verdict::Retry } else { Verdict::Stop }
    }
}

/// The one retry mechanism: walks a [`Backoff`] through the failures of one operation,
/// counting them, keeping the budget, and deciding on each failure's [`Verdict`] whether and
/// after which pause to try again. [`Retries::run`] is the whole loop for an operation that is
/// a closure; a long-running loop that fails and recovers over time (a subscription's
/// reconnects, a polling loop) holds one and calls [`Retries::failed`] and
/// [`Retries::reset`] itself.
#[derive(Debug)]
pub(crate) struct Retries {
    schedule: Backoff,
    pauses: Pauses,
    budget: Option<Budget>,
    failures: u32,
    retries: u32,
}

/// When a [`Retries`] stops trying, whatever its schedule allows.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// A failure before this instant is tried again (the pause may end after it).
    FailuresBefore(Instant),
    /// A failure is tried again only when the next try starts before this instant.
    TriesBefore(Instant),
}

impl Retries {
    /// Retries along `schedule`, as many times as it allows, with no time budget.
    pub(crate) fn new(schedule: Backoff) -> Retries {
        Retries {
            schedule,
            pauses: schedule.limit(None).pauses(),
            budget: None,
            failures: 0,
            retries: 0,
        }
    }

    /// Tries again only after failures within `budget` from now (the last pause may end past
    /// it): a report sent again while the server is away for at most this long.
    pub(crate) fn within(self, budget: Duration) -> Retries {
        self.until(Instant::now() + budget)
    }

    /// Tries again only after failures before `deadline` (the last pause may end past it), with
    /// pauses that are a share of the time left before it: a lease renewed while its term lasts.
    pub(crate) fn until(mut self, deadline: Instant) -> Retries {
        self.budget = Some(Budget::FailuresBefore(deadline));
        self
    }

    /// Tries again only when the next try starts within `budget` from now: a release that gives
    /// up in time for the caller's own limit.
    pub(crate) fn starting_within(mut self, budget: Duration) -> Retries {
        self.budget = Some(Budget::TriesBefore(Instant::now() + budget));
        self
    }

    /// Counts one failure judged `verdict`; the pause before the next try, or `None` when the
    /// failure is permanent, the schedule's retries are spent or the budget is.
    pub(crate) fn failed(&mut self, verdict: Verdict) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        let asked = match verdict {
            Verdict::Stop => return None,
            Verdict::Retry => None,
            Verdict::RetryAfter(pause) => Some(pause),
        };
        if self.schedule.times().is_some_and(|times| self.retries >= times) {
            return None;
        }
        let now = Instant::now();
        let deadline = match self.budget {
            Some(Budget::FailuresBefore(deadline)) if now >= deadline => return None,
            Some(Budget::FailuresBefore(deadline) | Budget::TriesBefore(deadline)) => Some(deadline),
            None => None,
        };
        let left = deadline.map(|deadline| deadline.saturating_duration_since(now));
        let scheduled = self.pauses.next_pause(left)?;
        let pause = asked.unwrap_or(scheduled);
        if let Some(Budget::TriesBefore(deadline)) = self.budget
            && now + pause >= deadline
        {
            return None;
        }
        self.retries += 1;
        Some(pause)
    }

    /// Failures counted since the start or the last [`reset`](Retries::reset), the last one
    /// (which may have ended the retries) included.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Pauses given since the start or the last [`reset`](Retries::reset): the tries made
    /// again.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    /// A success: the count of failures in a row and the schedule start again.
    pub(crate) fn reset(&mut self) {
        self.reset_pauses();
        self.failures = 0;
        self.retries = 0;
    }

    /// The schedule starts again from its first pause; the count of failures in a row stays
    /// (a connection that opened, but has not yet proved it serves).
    pub(crate) fn reset_pauses(&mut self) {
        self.pauses = self.schedule.limit(None).pauses();
    }

    /// Runs `attempt` (given the number of the try, from 1) until it succeeds, or fails in a
    /// way `classify` calls permanent, or the schedule or budget ends; `on_retry` hears of each
    /// failure tried again and the pause before it. The last failure is returned as it is.
    pub(crate) async fn run<T, E, Fut>(
        mut self,
        classify: impl Fn(&E) -> Verdict,
        mut on_retry: impl FnMut(&E, Duration),
        mut attempt: impl FnMut(u32) -> Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        loop {
            let error = match attempt(self.failures + 1).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match self.failed(classify(&error)) {
                Some(pause) => {
                    on_retry(&error, pause);
                    tokio::time::sleep(pause).await;
                }
                None => return Err(error),
            }
        }
    }
}

/// Parses `Retry-After`: decimal seconds (Prefect sends `2.588…`) or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(24.0 * 3600.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response's headers, if it has a readable one.
pub(crate) fn retry_after_of(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Whether the operation (a generated method name) may be sent again after the server may have
/// acted on it: after a broken connection, a 502 or 504, or a timeout. Operations the table
/// does not know are not repeated.
pub(crate) fn is_repeatable(operation: &str) -> bool {
    REPEATABLE.binary_search(&operation).is_ok()
}

/// Repeating these cannot change the outcome: reads and filters (POST `…/filter`, counts,
/// histories), deletes, updates that set fields, lease renewals and releases, Prefect's upserts
/// (`create_flow`, `create_deployment`, `create_concurrency_limit`, `create_block_schema`,
/// `create_task_run` by task and dynamic key), events (kept once by id), and state-free
/// side effects (heartbeats, pausing, polls for scheduled runs). Sorted.
const REPEATABLE: &[&str] = &[
    "average_flow_run_lateness",
    "bulk_decrement_active_slots_with_lease",
    "bulk_delete_deployments",
    "bulk_delete_flow_runs",
    "bulk_delete_flows",
    "clear_server_default_result_storage",
    "count_account_events",
    "count_artifacts",
    "count_automations",
    "count_block_documents",
    "count_deployments",
    "count_deployments_by_flow",
    "count_flow_runs",
    "count_flows",
    "count_latest_artifacts",
    "count_task_runs",
    "count_task_runs_by_flow_run",
    "count_variables",
    "count_work_pools",
    "create_block_schema",
    "create_concurrency_limit",
    "create_csrf_token",
    "create_deployment",
    "create_events",
    "create_flow",
    "create_saved_search",
    "create_task_run",
    "decrement_concurrency_limits_v1",
    "delete_artifact",
    "delete_automation",
    "delete_automations_owned_by_resource",
    "delete_block_document",
    "delete_block_schema",
    "delete_block_type",
    "delete_concurrency_limit",
    "delete_concurrency_limit_by_tag",
    "delete_concurrency_limit_v2",
    "delete_deployment",
    "delete_deployment_schedule",
    "delete_flow",
    "delete_flow_run",
    "delete_flow_run_input",
    "delete_saved_search",
    "delete_task_run",
    "delete_variable",
    "delete_variable_by_name",
    "delete_work_pool",
    "delete_work_queue",
    "delete_work_queue_in_work_pools",
    "delete_worker",
    "download_logs",
    "filter_flow_run_input",
    "flow_run_history",
    "get_scheduled_flow_runs",
    "get_scheduled_flow_runs_for_deployments",
    "health_check",
    "hello",
    "install_system_block_types",
    "next_runs_by_flow",
    "paginate_deployments",
    "paginate_flow_runs",
    "paginate_flows",
    "paginate_task_runs",
    "patch_automation",
    "pause_deployment",
    "perform_readiness_check",
    "read_account_events_page",
    "read_all_concurrency_limits_v2",
    "read_artifact",
    "read_artifacts",
    "read_automation",
    "read_automations",
    "read_automations_related_to_resource",
    "read_available_block_capabilities",
    "read_block_document_by_id",
    "read_block_document_by_name_for_block_type",
    "read_block_documents",
    "read_block_documents_for_block_type",
    "read_block_schema_by_checksum",
    "read_block_schema_by_id",
    "read_block_schemas",
    "read_block_type_by_id",
    "read_block_type_by_slug",
    "read_block_types",
    "read_concurrency_limit",
    "read_concurrency_limit_by_tag",
    "read_concurrency_limit_v2",
    "read_concurrency_limits",
    "read_dashboard_task_run_counts",
    "read_deployment",
    "read_deployment_by_name",
    "read_deployment_schedules",
    "read_deployments",
    "read_events",
    "read_flow",
    "read_flow_by_name",
    "read_flow_run",
    "read_flow_run_graph_v1",
    "read_flow_run_graph_v2",
    "read_flow_run_history",
    "read_flow_run_input",
    "read_flow_run_state",
    "read_flow_run_states",
    "read_flow_runs",
    "read_flows",
    "read_latest_artifact",
    "read_latest_artifacts",
    "read_logs",
    "read_saved_search",
    "read_saved_searches",
    "read_server_default_result_storage",
    "read_settings",
    "read_task_run",
    "read_task_run_counts_by_state",
    "read_task_run_state",
    "read_task_run_states",
    "read_task_run_with_flow_run_name",
    "read_task_runs",
    "read_task_workers",
    "read_variable",
    "read_variable_by_name",
    "read_variables",
    "read_version",
    "read_view_content",
    "read_work_pool",
    "read_work_pool_concurrency_status",
    "read_work_pools",
    "read_work_queue",
    "read_work_queue_by_name",
    "read_work_queue_concurrency_status",
    "read_work_queue_in_work_pools",
    "read_work_queue_runs",
    "read_work_queue_status",
    "read_work_queues",
    "read_work_queues_in_work_pools",
    "read_workers",
    "renew_concurrency_lease",
    "reset_concurrency_limit_by_tag",
    "resume_deployment",
    "schedule_deployment",
    "server_version",
    "task_run_history",
    "update_artifact",
    "update_automation",
    "update_block_document_data",
    "update_block_type",
    "update_concurrency_limit_v2",
    "update_deployment",
    "update_deployment_schedule",
    "update_flow",
    "update_flow_run",
    "update_flow_run_labels",
    "update_server_default_result_storage",
    "update_task_run",
    "update_variable",
    "update_variable_by_name",
    "update_work_pool",
    "update_work_queue",
    "update_work_queue_in_work_pools",
    "validate_obj",
    "validate_template",
    "validate_template_in_automations",
    "work_queue_check_for_deployment",
    "worker_heartbeat",
];

/// Never sent again once the server may have acted, with what a repeat would do.
#[cfg_attr(not(test), allow(dead_code))] // the reasons document the table; its test reads it
const NOT_REPEATABLE: &[(&str, &str)] = &[
    ("bulk_create_flow_runs_from_deployment", "creates flow runs"),
    ("bulk_decrement_active_slots", "gives back slots again"),
    ("bulk_increment_active_slots", "takes slots again"),
    (
        "bulk_increment_active_slots_with_lease",
        "takes slots under a second lease",
    ),
    (
        "bulk_set_flow_run_state",
        "proposes states again, to runs that moved on",
    ),
    ("create_artifact", "creates a second artifact"),
    ("create_automation", "creates a second automation"),
    ("create_block_document", "answers 409 for the name it created"),
    ("create_block_type", "answers 409 for the slug it created"),
    (
        "create_concurrency_limit_v2",
        "answers 409 for the name it created",
    ),
    ("create_deployment_schedules", "adds the schedules twice"),
    ("create_flow_run", "creates a second flow run"),
    (
        "create_flow_run_from_deployment",
        "creates a second flow run (unless an idempotency key is given)",
    ),
    ("create_flow_run_input", "answers 409 for the key it created"),
    ("create_logs", "writes the lines twice"),
    ("create_variable", "answers 409 for the name it created"),
    ("create_work_pool", "answers 409 for the name it created"),
    ("create_work_queue", "answers 409 for the name it created"),
    (
        "create_work_queue_in_work_pools",
        "answers 409 for the name it created",
    ),
    ("increment_concurrency_limits_v1", "takes slots again"),
    ("resume_flow_run", "proposes a state to a run that moved on"),
    ("set_flow_run_state", "proposes a state to a run that moved on"),
    ("set_task_run_state", "proposes a state to a run that moved on"),
];

#[cfg(test)]
mod tests {
    use super::*;

    // Every operation of the generated client (written by build.rs from openapi.yaml).
    include!(concat!(env!("OUT_DIR"), "/operations.rs"));

    #[test]
    fn every_generated_operation_is_classified_once() {
        let mut unclassified = Vec::new();
        for operation in OPERATIONS {
            let repeatable = REPEATABLE.contains(operation);
            let not = NOT_REPEATABLE.iter().any(|(name, _)| name == operation);
            assert!(!(repeatable && not), "{operation} is in both tables");
            if !repeatable && !not {
                unclassified.push(*operation);
            }
        }
        assert!(
            unclassified.is_empty(),
            "classify these operations of openapi.yaml in src/retry.rs: {unclassified:?}"
        );
        for name in REPEATABLE
            .iter()
            .chain(NOT_REPEATABLE.iter().map(|(name, _)| name))
        {
            assert!(
                OPERATIONS.contains(name),
                "{name} is not an operation of openapi.yaml"
            );
        }
        assert!(
            REPEATABLE.is_sorted(),
            "REPEATABLE is kept sorted for the binary search"
        );
    }

    #[test]
    fn creates_that_duplicate_or_conflict_are_not_repeatable() {
        for op in [
            "create_flow_run",
            "create_concurrency_limit_v2",
            "create_logs",
            "create_artifact",
            "bulk_increment_active_slots_with_lease",
            "increment_concurrency_limits_v1",
            "create_work_pool",
            "create_block_type",
            "set_flow_run_state",
            "no_such_operation",
        ] {
            assert!(!is_repeatable(op), "{op}");
        }
        for op in [
            "read_flow_runs",
            "count_flows",
            "create_concurrency_limit",
            "renew_concurrency_lease",
            "bulk_decrement_active_slots_with_lease",
            "create_flow",
            "delete_flow",
            "create_events",
        ] {
            assert!(is_repeatable(op), "{op}");
        }
    }

    #[test]
    fn retry_after_accepts_decimals_integers_and_dates() {
        assert_eq!(parse_retry_after("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("1e12"), Some(Duration::from_secs(24 * 3600)));
    }

    #[test]
    fn backoff_grows_to_its_cap_and_ends_after_its_count() {
        let backoff =
            Backoff::exponential(Duration::from_millis(10), 2.0, Duration::from_millis(40)).at_most(4);
        let mut pauses = backoff.pauses();
        let waits: Vec<Duration> = std::iter::from_fn(|| pauses.next_delay()).collect();
        assert_eq!(waits.len(), 4);
        // Jitter adds up to the delay itself: 10–20, 20–40, 40–80, 40–80 ms.
        for (wait, base) in waits.iter().zip([10, 20, 40, 40]) {
            let base = Duration::from_millis(base);
            assert!(*wait >= base && *wait <= base * 2, "{wait:?} for {base:?}");
        }
        let mut endless =
            Backoff::exponential(Duration::from_millis(1), 2.0, Duration::from_millis(2)).pauses();
        assert!((0..1000).all(|_| endless.next_delay().is_some()));
    }

    #[test]
    fn linear_and_share_of_time_left_backoffs_keep_their_numbers() {
        let ms = Duration::from_millis;
        let mut linear = Backoff::linear(ms(100), ms(100), ms(250)).at_most(4).pauses();
        let waits: Vec<Duration> = std::iter::from_fn(|| linear.next_delay()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(250), ms(250)]);
        let mut constant = Backoff::constant(ms(7)).pauses();
        assert!((0..10).all(|_| constant.next_delay() == Some(ms(7))));
        let mut share = Backoff::share_of_time_left(4, ms(200), ms(5000)).pauses();
        assert_eq!(share.next_pause(Some(ms(400))), Some(ms(200)));
        assert_eq!(share.next_pause(Some(ms(8000))), Some(ms(2000)));
        assert_eq!(share.next_pause(Some(ms(300_000))), Some(ms(5000)));
        assert_eq!(share.next_pause(None), Some(ms(5000)));
        let mut steady = Backoff::exponential(ms(2000), 2.0, ms(15_000))
            .without_jitter()
            .pauses();
        let waits: Vec<Duration> = (0..5).filter_map(|_| steady.next_delay()).collect();
        assert_eq!(waits, [2000, 4000, 8000, 15_000, 15_000].map(ms));
    }

    /// The numbers of the tries an operation was called with.
    type Tries = std::sync::Arc<std::sync::Mutex<Vec<u32>>>;

    /// An operation that answers `outcomes` in turn (then fails), and the tries it saw.
    fn failing(
        outcomes: Vec<Result<u32, &'static str>>,
    ) -> (
        Tries,
        impl FnMut(u32) -> std::future::Ready<Result<u32, &'static str>>,
    ) {
        let tries = Tries::default();
        let seen = tries.clone();
        let mut outcomes = outcomes.into_iter();
        let attempt = move |n| {
            seen.lock().unwrap().push(n);
            std::future::ready(outcomes.next().unwrap_or(Err("spent")))
        };
        (tries, attempt)
    }

    const QUICK: Backoff = Backoff::constant(Duration::from_millis(1));

    #[tokio::test]
    async fn retries_count_attempts_until_a_success() {
        let (tries, attempt) = failing(vec![Err("busy"), Err("busy"), Ok(7)]);
        let mut heard = Vec::new();
        let result = Retries::new(QUICK)
            .run(|_| Verdict::Retry, |e, pause| heard.push((*e, pause)), attempt)
            .await;
        assert_eq!(result, Ok(7));
        assert_eq!(*tries.lock().unwrap(), [1, 2, 3]);
        assert_eq!(heard, [("busy", Duration::from_millis(1)); 2]);
    }

    #[tokio::test]
    async fn retries_end_when_the_schedule_is_spent() {
        let (tries, attempt) = failing(vec![Err("busy"); 10]);
        let result = Retries::new(QUICK.at_most(3))
            .run(|_| Verdict::Retry, |_, _| {}, attempt)
            .await;
        assert_eq!(result, Err("busy"));
        assert_eq!(*tries.lock().unwrap(), [1, 2, 3, 4], "three retries: four tries");
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_the_retries_at_once() {
        let (tries, attempt) = failing(vec![Err("busy"), Err("refused"), Ok(1)]);
        let classify = |e: &&str| Verdict::retry_if(*e == "busy");
        let result = Retries::new(QUICK).run(classify, |_, _| {}, attempt).await;
        assert_eq!(result, Err("refused"));
        assert_eq!(*tries.lock().unwrap(), [1, 2]);
    }

    #[tokio::test]
    async fn the_budget_ends_the_retries() {
        let slow = Backoff::constant(Duration::from_millis(30));
        let (tries, attempt) = failing(vec![Err("busy"); 100]);
        let started = Instant::now();
        let result = Retries::new(slow)
            .within(Duration::from_millis(100))
            .run(|_| Verdict::Retry, |_, _| {}, attempt)
            .await;
        assert_eq!(result, Err("busy"));
        let tries = tries.lock().unwrap().len();
        // Each pause is at least 30 ms: failures at 0, 30, 60, 90 ms are tried again at most,
        // and the retries end only once a failure comes past the budget.
        assert!((2..=5).contains(&tries), "{tries} tries");
        assert!(started.elapsed() >= Duration::from_millis(100));
        // A budget the next try must start within: the pause that would cross it is not taken.
        let mut release = Retries::new(slow).starting_within(Duration::from_millis(200));
        assert_eq!(release.failed(Verdict::Retry), Some(Duration::from_millis(30)));
        assert_eq!(release.failed(Verdict::Retry), Some(Duration::from_millis(30)));
        tokio::time::sleep(Duration::from_millis(180)).await;
        assert_eq!(release.failed(Verdict::Retry), None);
        assert_eq!((release.failures(), release.retries()), (3, 2));
    }

    #[test]
    fn a_pause_the_server_asks_for_counts_as_a_retry() {
        let mut retries = Retries::new(QUICK.at_most(2));
        assert_eq!(
            retries.failed(Verdict::RetryAfter(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retries.failed(Verdict::Retry), Some(Duration::from_millis(1)));
        assert_eq!(retries.failed(Verdict::Retry), None);
        assert_eq!((retries.failures(), retries.retries()), (3, 2));
        retries.reset();
        assert_eq!((retries.failures(), retries.retries()), (0, 0));
        assert_eq!(retries.failed(Verdict::Retry), Some(Duration::from_millis(1)));
    }

    #[test]
    fn pauses_start_again_without_forgetting_the_count() {
        let mut retries = Retries::new(Backoff::linear(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(9),
        ));
        retries.failed(Verdict::Retry);
        assert_eq!(retries.failed(Verdict::Retry), Some(Duration::from_secs(2)));
        retries.reset_pauses();
        assert_eq!(retries.failed(Verdict::Retry), Some(Duration::from_secs(1)));
        assert_eq!(retries.retries(), 3);
    }
}
