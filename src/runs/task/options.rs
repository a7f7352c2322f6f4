//! What a task is set up with ([`TaskOptions`], filled by [`TaskScope`](super::TaskScope)'s
//! setters), checked before anything is sent, and what follows from it without asking the
//! server: the task run to create, the tag limits to hold, whether a failed attempt is retried.

use std::any::Any;
use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use super::attempt::Failure;
use super::retry_delay::RetryDelay;
use crate::Error;
use crate::resources::flow_runs::state_create;
use crate::types::{StateType, TaskRunCreate, TaskRunCreateTaskInputsValueItem};

/// A test of a failed attempt's error: whether it is retried (Prefect's `retry_condition_fn`).
pub(super) type RetryCondition = Box<dyn Fn(&dyn Any) -> bool + Send + Sync>;

/// A task's settings, named after Prefect's task options.
pub(super) struct TaskOptions {
    /// The task's name: its task runs are `<name>-<place>`, its task key `<flow>.<name>`.
    pub(super) name: String,
    /// Tags; each with a concurrency limit holds a slot while the task runs.
    pub(super) tags: Vec<String>,
    /// How many times a failed attempt is run again.
    pub(super) retries: u32,
    /// The wait before each retry.
    pub(super) retry_delay: RetryDelay,
    /// Which errors are retried (all without).
    pub(super) retry_if: Option<RetryCondition>,
    /// The longest one attempt may take.
    pub(super) timeout: Option<Duration>,
    /// The upstream task runs whose values this task takes (Prefect's run graph edges).
    pub(super) inputs: HashMap<String, Vec<TaskRunCreateTaskInputsValueItem>>,
}

impl TaskOptions {
    /// The options of a task named `name`: no tags, no retries, no timeout, no inputs.
    pub(super) fn new(name: &str) -> TaskOptions {
        TaskOptions {
            name: name.to_string(),
            tags: Vec::new(),
            retries: 0,
            retry_delay: RetryDelay::default(),
            retry_if: None,
            timeout: None,
            inputs: HashMap::new(),
        }
    }

    /// Refuses options the server would refuse or misfile, before anything is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty task name or one with control characters.
    pub(super) fn check(&self) -> Result<(), Error> {
        crate::runs::check_run_name("task name", &self.name)
    }

    /// The body creating this task's run at place `occurrence` (counted from 0 among the task
    /// runs of its name) in flow run `flow_run` of the flow `flow_name`: PENDING, with its retry
    /// policy, tags and inputs.
    ///
    /// Its `dynamic_key` is new each time, as Prefect's engine makes it: the server upserts task
    /// runs by (flow run, task key, dynamic key), and a flow run executed again (retried in
    /// process or from the UI, scheduled again) must get new task runs, not its last attempt's
    /// ended ones.
    pub(super) fn create(&self, flow_run: Uuid, flow_name: &str, occurrence: u64) -> TaskRunCreate {
        TaskRunCreate {
            cache_expiration: None,
            cache_key: None,
            dynamic_key: Uuid::new_v4().to_string(),
            empirical_policy: Some(self.retry_delay.policy(self.retries)),
            flow_run_id: Some(flow_run),
            id: None,
            labels: None,
            name: Some(format!("{}-{occurrence}", self.name)),
            state: Some(state_create(StateType::Pending, None, None)),
            tags: self.tags.clone(),
            task_inputs: self.inputs.clone(),
            task_key: format!("{flow_name}.{}", self.name),
            task_version: None,
        }
    }

    /// The global limits whose slots the task run holds while it runs, one per tag
    /// (`tag:<tag>`, as Prefect keeps a tag's limit); `None` without tags.
    pub(super) fn tag_limits(&self) -> Option<Vec<String>> {
        (!self.tags.is_empty()).then(|| self.tags.iter().map(|tag| format!("tag:{tag}")).collect())
    }

    /// After attempt `attempt` (0 for the first) failed so, the wait before the next one, or
    /// `None` when it is not retried: the retries are used up, or the error is one
    /// [`retry_if`](super::TaskScope::retry_if) does not accept. A timeout is always retried
    /// while retries are left.
    pub(super) fn retry_after<E: 'static>(&self, attempt: u32, failure: &Failure<E>) -> Option<Duration> {
        let retried = attempt < self.retries
            && match failure {
                Failure::Error(error) => self
                    .retry_if
                    .as_ref()
                    .is_none_or(|accepts| accepts(error as &dyn Any)),
                Failure::TimedOut(_) => true,
            };
        retried.then(|| self.retry_delay.before(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TaskOptions {
        TaskOptions::new("load rows")
    }

    #[test]
    fn a_task_name_must_be_a_name() {
        options().check().unwrap();
        for bad in ["", "   ", "load\nrows", "tab\tbed"] {
            let error = TaskOptions::new(bad).check().unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::InvalidInput {
                        what: "task name",
                        ..
                    }
                ),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn the_task_run_is_created_pending_under_its_flow_with_its_place_and_policy() {
        let flow_run = Uuid::from_u128(42);
        let mut options = options();
        options.tags = vec!["db".into(), "eu".into()];
        options.retries = 2;
        options.retry_delay = RetryDelay::Fixed(Duration::from_secs(3));
        let create = options.create(flow_run, "ingest", 4);
        assert_eq!(create.name.as_deref(), Some("load rows-4"));
        assert_eq!(create.task_key, "ingest.load rows");
        assert_eq!(create.flow_run_id, Some(flow_run));
        assert_eq!(create.tags, vec!["db".to_string(), "eu".to_string()]);
        assert_eq!(create.state.as_ref().map(|s| &s.type_), Some(&StateType::Pending));
        let policy = serde_json::to_value(&create.empirical_policy).unwrap();
        assert_eq!(policy["retries"], 2);
        assert_eq!(policy["retry_delay"], 3.0);
        assert!(create.task_inputs.is_empty());
        assert_eq!(
            create.cache_key, None,
            "caching is the client's, not the server's"
        );
    }

    #[test]
    fn each_task_run_gets_a_dynamic_key_of_its_own() {
        let options = options();
        let (one, two) = (
            options.create(Uuid::nil(), "ingest", 0),
            options.create(Uuid::nil(), "ingest", 0),
        );
        assert!(!one.dynamic_key.is_empty());
        assert_ne!(
            one.dynamic_key, two.dynamic_key,
            "the same place, a new run each time"
        );
    }

    #[test]
    fn each_tag_holds_the_slot_of_its_own_limit() {
        assert_eq!(options().tag_limits(), None, "no tags: no limits to hold");
        let mut tagged = options();
        tagged.tags = vec!["db".into(), "gpu".into()];
        assert_eq!(
            tagged.tag_limits(),
            Some(vec!["tag:db".to_string(), "tag:gpu".to_string()])
        );
    }

    #[test]
    fn failures_are_retried_while_retries_are_left() {
        let mut options = options();
        let failed = Failure::Error("boom");
        assert_eq!(options.retry_after(0, &failed), None, "no retries by default");
        options.retries = 2;
        options.retry_delay = RetryDelay::PerAttempt(vec![Duration::from_secs(1), Duration::from_secs(5)]);
        assert_eq!(options.retry_after(0, &failed), Some(Duration::from_secs(1)));
        assert_eq!(options.retry_after(1, &failed), Some(Duration::from_secs(5)));
        assert_eq!(options.retry_after(2, &failed), None, "both retries used");
        assert_eq!(options.retry_after(u32::MAX, &failed), None);
    }

    #[test]
    fn a_retry_condition_picks_the_errors_retried_but_never_a_timeout() {
        let mut options = options();
        options.retries = 3;
        options.retry_if = Some(Box::new(|error: &dyn Any| {
            error
                .downcast_ref::<&str>()
                .is_some_and(|e| e.starts_with("transient"))
        }));
        assert_eq!(
            options.retry_after(0, &Failure::Error("transient: reset")),
            Some(Duration::ZERO)
        );
        assert_eq!(options.retry_after(0, &Failure::Error("bad input")), None);
        // An error of another type than the condition's is never retried.
        assert_eq!(options.retry_after(0, &Failure::Error(7u8)), None);
        // Timeouts are retried whatever the condition says.
        let timed_out = Failure::<&str>::TimedOut(Duration::from_secs(1));
        assert_eq!(options.retry_after(0, &timed_out), Some(Duration::ZERO));
        assert_eq!(
            options.retry_after(3, &timed_out),
            None,
            "but not past the retries"
        );
    }
}
