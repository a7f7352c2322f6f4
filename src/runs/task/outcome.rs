//! How a task run ended, as its caller learns it: its value with the task run's id
//! ([`TaskOutput`]), or why there is none ([`TaskError`]).

use std::fmt::{self, Display};
use std::time::Duration;

use uuid::Uuid;

#[cfg(doc)]
use super::TaskScope;
use crate::Error;
use crate::types::StateType;

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

/// Prefect's message for a task run past its timeout (the FAILED state's message, and what
/// [`TaskError::TimedOut`] shows).
pub(super) fn timeout_message(after: Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_reads_as_prefects_message_in_seconds() {
        assert_eq!(
            timeout_message(Duration::from_millis(1500)),
            "Task run exceeded timeout of 1.5 second(s)"
        );
        assert_eq!(
            timeout_message(Duration::from_secs(2)),
            "Task run exceeded timeout of 2.0 second(s)"
        );
        let error = TaskError::<String>::TimedOut {
            after: Duration::from_secs(2),
        };
        assert_eq!(error.to_string(), timeout_message(Duration::from_secs(2)));
    }

    #[test]
    fn each_task_error_says_what_happened() {
        assert_eq!(TaskError::Failed("no rows").to_string(), "no rows");
        let kept = TaskError::<String>::NotStarted {
            state: StateType::Completed,
            message: Some("done already".into()),
        };
        assert_eq!(
            kept.to_string(),
            "Prefect did not let the task start: it stays COMPLETED (done already)"
        );
        let bare = TaskError::<String>::NotStarted {
            state: StateType::Cancelled,
            message: None,
        };
        assert_eq!(
            bare.to_string(),
            "Prefect did not let the task start: it stays CANCELLED"
        );
        let report: TaskError<String> = Error::invalid("cache key", "it is empty").into();
        assert!(matches!(report, TaskError::Prefect(_)));
        assert!(
            report
                .to_string()
                .starts_with("reporting the task run to Prefect failed: "),
            "{report}"
        );
    }

    #[test]
    fn an_output_derefs_to_its_value() {
        let output = TaskOutput {
            value: vec![1, 2, 3],
            task_run_id: Uuid::nil(),
        };
        assert_eq!(output.len(), 3);
        assert_eq!(output.into_inner(), vec![1, 2, 3]);
    }
}
