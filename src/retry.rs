//! Retry policy as data: [`RetryPolicy`] (how many times, how long between tries, which
//! statuses), which operations may be sent again once the server may have acted on them, how
//! the server's `Retry-After` is read, and the one backoff every wait uses (its numbers for
//! each wait are in `src/waits.rs`).

use std::time::Duration;

use backon::BackoffBuilder;

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
        Backoff::new(
            self.first_delay,
            self.factor,
            self.max_delay,
            Some(self.max_retries as usize),
        )
    }
}

/// A growing wait with jitter: `first`, then ×`factor` each time, at most `max` (before jitter),
/// for at most `times` waits (`None`: no end).
#[derive(Debug)]
pub(crate) struct Backoff(backon::ExponentialBackoff);

impl Backoff {
    pub(crate) fn new(first: Duration, factor: f32, max: Duration, times: Option<usize>) -> Backoff {
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(first)
            .with_factor(factor)
            .with_max_delay(max)
            .with_jitter();
        let builder = match times {
            Some(times) => builder.with_max_times(times),
            None => builder.without_max_times(),
        };
        Backoff(builder.build())
    }

    /// The next wait, or `None` once `times` waits were given.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        self.0.next()
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
        let mut backoff = Backoff::new(Duration::from_millis(10), 2.0, Duration::from_millis(40), Some(4));
        let waits: Vec<Duration> = std::iter::from_fn(|| backoff.next_delay()).collect();
        assert_eq!(waits.len(), 4);
        // Jitter adds up to the delay itself: 10–20, 20–40, 40–80, 40–80 ms.
        for (wait, base) in waits.iter().zip([10, 20, 40, 40]) {
            let base = Duration::from_millis(base);
            assert!(*wait >= base && *wait <= base * 2, "{wait:?} for {base:?}");
        }
        let mut endless = Backoff::new(Duration::from_millis(1), 2.0, Duration::from_millis(2), None);
        assert!((0..1000).all(|_| endless.next_delay().is_some()));
    }
}
