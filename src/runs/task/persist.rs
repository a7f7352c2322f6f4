//! Persisted tasks ([`PersistedTask`]): a task's value written as a result record in Prefect's
//! format, and looked up first under its cache key (or its place in its flow run), so a value
//! recorded before is returned without running the body again.

use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::TaskScope;
use super::outcome::{TaskError, TaskOutput};
use crate::Error;
#[cfg(doc)]
use crate::runs::results::LocalStorage;
use crate::runs::results::{self, ResultStorage};

/// What a persisted task does with its value: store it as a result record, and look it up
/// first under its cache key.
pub(super) struct Persist {
    /// Where records are kept.
    pub(super) storage: Arc<dyn ResultStorage>,
    /// The cache key; without one, the record is keyed by the task's place in its flow run.
    pub(super) key: Option<String>,
    /// How long a record is good for; for ever without.
    pub(super) expiration: Option<Duration>,
    /// Whether the body runs even when a record is found.
    pub(super) refresh: bool,
}

impl Persist {
    /// Records in Prefect's default storage, keyed by the task's place, good for ever.
    pub(super) fn new() -> Persist {
        Persist {
            storage: results::default_storage(),
            key: None,
            expiration: None,
            refresh: false,
        }
    }

    /// Refuses a cache key that cannot be a record's file name, before anything is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty key, a path, or one with control characters.
    pub(super) fn check(&self) -> Result<(), Error> {
        match &self.key {
            Some(key) => results::check_key(key),
            None => Ok(()),
        }
    }

    /// The record's key for the task `task` at its place `occurrence` in flow run `flow_run`:
    /// the cache key, or without one the run's (found again when the same flow run runs again:
    /// a retry in process or from the UI, a run scheduled again at shutdown, a handed-over run
    /// started again), as Prefect's default cache policy (`RUN_ID`) finds it.
    pub(super) fn key_at(&self, flow_run: Uuid, task: &str, occurrence: u64) -> String {
        self.key
            .clone()
            .unwrap_or_else(|| run_scoped_key(flow_run, task, occurrence))
    }

    /// When a record written at `now` expires: `None` (never) without an expiration, or for one
    /// so long that no date can hold its end.
    pub(super) fn expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let expiration = chrono::Duration::from_std(self.expiration?).ok()?;
        now.checked_add_signed(expiration)
    }

    /// Writes `value` under `key`; the metadata for the COMPLETED state's `data`.
    fn store<T: Serialize>(&self, key: &str, value: &T) -> Result<Value, Error> {
        let expiration = self.expires_at(Utc::now());
        results::write(self.storage.as_ref(), key, value, expiration)
    }

    /// The value recorded under `key`, with its metadata, unless the cache is refreshed or
    /// there is none (or it expired, or does not decode as `T`).
    fn cached<T: DeserializeOwned>(&self, key: &str) -> Option<(T, Value)> {
        match self.refresh {
            false => results::read_cached::<T>(self.storage.as_ref(), key),
            true => None,
        }
    }
}

/// A task whose value is persisted (a result record in Prefect's format) and looked up first
/// (under its cache key, or its place in its flow run): from [`TaskScope::persisted`].
#[must_use = "call .run(...) to run the task"]
pub struct PersistedTask {
    pub(super) scope: TaskScope,
    pub(super) persist: Persist,
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
        self.persist.check()?;
        let persist = self.persist;
        let (flow_run, task) = (self.scope.ctx.shared.flow_run_id, self.scope.options.name.clone());
        let key = |occurrence| persist.key_at(flow_run, &task, occurrence);
        self.scope
            .execute(
                body,
                |value: &T, occurrence| persist.store(&key(occurrence), value).map(Some),
                |occurrence| persist.cached::<T>(&key(occurrence)),
            )
            .await
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
    fn a_run_scoped_key_does_not_change_between_releases() {
        // Records written by an earlier release must be found again: the hash is FNV-1a.
        assert_eq!(
            run_scoped_key(Uuid::from_u128(1), "", 3),
            "run-00000000000000000000000000000001-cbf29ce484222325-3"
        );
        assert_eq!(
            run_scoped_key(Uuid::from_u128(1), "a", 0),
            "run-00000000000000000000000000000001-af63dc4c8601ec8c-0"
        );
    }

    #[test]
    fn a_cache_key_is_the_record_key_wherever_the_task_runs() {
        let mut persist = Persist::new();
        let run = Uuid::from_u128(7);
        assert_eq!(persist.key_at(run, "load", 2), run_scoped_key(run, "load", 2));
        persist.key = Some("orders-2026-12-01".into());
        assert_eq!(persist.key_at(run, "load", 2), "orders-2026-12-01");
        assert_eq!(
            persist.key_at(Uuid::from_u128(8), "other", 9),
            "orders-2026-12-01"
        );
    }

    #[test]
    fn a_cache_key_that_cannot_be_a_file_name_is_refused_before_running() {
        let mut persist = Persist::new();
        persist.check().unwrap();
        for bad in ["", "a/b", "..", "line\nbreak"] {
            persist.key = Some(bad.into());
            let error = persist.check().unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::InvalidInput {
                        what: "cache key",
                        ..
                    }
                ),
                "{bad:?}: {error}"
            );
        }
        persist.key = Some("orders-2026-12-01".into());
        persist.check().unwrap();
    }

    #[test]
    fn a_record_expires_after_its_expiration_or_never() {
        let now = Utc::now();
        let mut persist = Persist::new();
        assert_eq!(persist.expires_at(now), None, "for ever by default");
        persist.expiration = Some(Duration::from_secs(90));
        assert_eq!(persist.expires_at(now), Some(now + chrono::Duration::seconds(90)));
        // Longer than any date can hold, whether or not chrono's durations can: for ever,
        // never a panic.
        for endless in [Duration::MAX, Duration::from_secs(1_000_000 * 365 * 24 * 3600)] {
            persist.expiration = Some(endless);
            assert_eq!(persist.expires_at(now), None, "{endless:?}");
        }
    }
}
