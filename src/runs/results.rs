//! Persisted results in Prefect's record format (its JSON serializer), so a cache hit returns the
//! value, a result Rust wrote is read by Prefect's Python `State.result()`, and a Python result
//! (`result_serializer="json"`) is read from Rust ([`read_result`]).
//!
//! A record is one JSON object, `{"metadata": {...}, "result": "<the value as JSON text>"}`,
//! stored under its key: the task's cache key, or a random key. The state of the task run
//! carries the metadata (`storage_key` the record's absolute path for local storage), which is
//! how Python finds it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Error;

/// Where records are kept. [`LocalStorage`] is Prefect's default; implement this for others.
pub trait ResultStorage: Send + Sync + fmt::Debug {
    /// The record under `key`, or `None` when there is none.
    ///
    /// # Errors
    /// When the storage cannot be read.
    fn read(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Stores `bytes` under `key`, replacing what was there.
    ///
    /// # Errors
    /// When the storage cannot be written.
    fn write(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// The `storage_key` the state's metadata names for `key` (an absolute path for local
    /// storage, which is how Prefect's Python client reads it).
    fn storage_key(&self, key: &str) -> String;
}

/// Records as files in a directory, as Prefect's default `LocalFileSystem` storage: by default
/// `PREFECT_RESULTS_LOCAL_STORAGE_PATH` (or `PREFECT_LOCAL_STORAGE_PATH`), else
/// `$PREFECT_HOME/storage`, else `~/.prefect/storage`.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    dir: PathBuf,
}

impl LocalStorage {
    /// Records in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { dir: dir.into() }
    }

    /// The directory Prefect's settings name (see [`LocalStorage`]).
    pub fn from_env() -> LocalStorage {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let dir = var("PREFECT_RESULTS_LOCAL_STORAGE_PATH")
            .or_else(|| var("PREFECT_LOCAL_STORAGE_PATH"))
            .map(|p| PathBuf::from(expand_home(&p)))
            .unwrap_or_else(|| {
                var("PREFECT_HOME")
                    .map(|h| PathBuf::from(expand_home(&h)))
                    .unwrap_or_else(|| dirs::home_dir().unwrap_or_default().join(".prefect"))
                    .join("storage")
            });
        LocalStorage { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        let path = Path::new(key);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(key)
        }
    }
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

impl ResultStorage for LocalStorage {
    fn read(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Written whole, then renamed: a reader never sees half a record.
        let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &path)
    }

    fn storage_key(&self, key: &str) -> String {
        let path = self.path(key);
        std::path::absolute(&path).unwrap_or(path).display().to_string()
    }
}

/// The default storage, shared.
pub(crate) fn default_storage() -> Arc<dyn ResultStorage> {
    Arc::new(LocalStorage::from_env())
}

/// A cache key Prefect's storage can use as a file name: not empty, no path separators or
/// control characters, at most 2,000 characters (the server's limit for cache keys).
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    let problem = if key.is_empty() {
        Some("it is empty".to_string())
    } else if key.len() > 2000 {
        Some(format!("it is {} characters long, over 2,000", key.len()))
    } else if key.contains(['/', '\\']) || key == "." || key == ".." {
        Some(format!("{key:?} is a path, not a file name"))
    } else {
        key.chars()
            .find(|c| c.is_control())
            .map(|c| format!("{key:?} contains the control character {c:?}"))
    };
    match problem {
        Some(problem) => Err(Error::invalid(
            "cache key",
            format!("{problem}; give a name such as \"orders-2026-12-01\""),
        )),
        None => Ok(()),
    }
}

/// The metadata of a record (also the `data` of the state that points at it).
fn metadata(storage_key: &str, expiration: Option<DateTime<Utc>>) -> Value {
    json!({
        "storage_key": storage_key,
        "expiration": expiration.map(|e| e.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        "serializer": {
            "type": "json",
            "jsonlib": "json",
            "object_encoder": "prefect.serializers.prefect_json_object_encoder",
            "object_decoder": "prefect.serializers.prefect_json_object_decoder",
            "dumps_kwargs": {},
            "loads_kwargs": {},
        },
        "prefect_version": crate::PREFECT_VERSION,
        "storage_block_id": null,
    })
}

/// Writes `value` under `key`; the metadata for the state's `data`.
pub(crate) fn write<T: Serialize>(
    storage: &dyn ResultStorage,
    key: &str,
    value: &T,
    expiration: Option<DateTime<Utc>>,
) -> Result<Value, Error> {
    let result = python_json(value)?;
    let storage_key = storage.storage_key(key);
    let meta = metadata(&storage_key, expiration);
    let record = json!({ "metadata": meta, "result": result });
    let bytes = serde_json::to_vec(&record).map_err(|e| Error::invalid("task result", e.to_string()))?;
    storage.write(key, &bytes).map_err(|e| Error::Io {
        context: format!("writing the task's result record {storage_key}"),
        source: e,
    })?;
    Ok(meta)
}

/// A value read under `key` when a record exists there that has not expired and decodes as
/// `T`; anything else is a miss (as Prefect's own lookup: an unreadable record is a miss).
pub(crate) fn read_cached<T: DeserializeOwned>(storage: &dyn ResultStorage, key: &str) -> Option<(T, Value)> {
    let bytes = storage.read(key).ok()??;
    let record: Value = serde_json::from_slice(&bytes).ok()?;
    let meta = record.get("metadata")?.clone();
    if let Some(expiration) = meta.get("expiration").and_then(Value::as_str) {
        let expiration: DateTime<Utc> = expiration.parse().ok()?;
        if expiration <= Utc::now() {
            return None;
        }
    }
    let value = decode_record::<T>(&record).ok()?;
    Some((value, meta))
}

fn decode_record<T: DeserializeOwned>(record: &Value) -> Result<T, String> {
    let serializer = record
        .pointer("/metadata/serializer/type")
        .and_then(Value::as_str)
        .unwrap_or("pickle");
    if serializer != "json" {
        return Err(format!(
            "the record was written with Prefect's {serializer:?} serializer; only \"json\" is read \
             here: give the Python task result_serializer=\"json\""
        ));
    }
    let text = record
        .get("result")
        .and_then(Value::as_str)
        .ok_or("the record has no result text")?;
    serde_json::from_str(text).map_err(|e| format!("the result does not decode as the type asked for: {e}"))
}

/// Reads the value a state's result record holds (a task or flow run's state `data`, written
/// by this SDK or by Prefect's Python client with `result_serializer="json"`): an absolute
/// `storage_key` is read from that file, a relative one from `storage` (Prefect's rule).
///
/// # Errors
/// [`Error::InvalidInput`] when the state has no record metadata, the record is not JSON,
/// was written with another serializer (pickle) or does not decode as `T`; [`Error::Io`]
/// when the record cannot be read.
pub fn read_result<T: DeserializeOwned>(data: &Value, storage: &dyn ResultStorage) -> Result<T, Error> {
    let key = data.get("storage_key").and_then(Value::as_str).ok_or_else(|| {
        Error::invalid(
            "state data",
            "it holds no result record (no storage_key): persist the result to read it back",
        )
    })?;
    let bytes = storage
        .read(key)
        .map_err(|e| Error::Io {
            context: format!("reading the result record {key}"),
            source: e,
        })?
        .ok_or_else(|| {
            Error::invalid(
                "result record",
                format!("{key} does not exist: it was written to another machine's storage, or removed"),
            )
        })?;
    let record: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid("result record", format!("{key} is not JSON: {e}")))?;
    decode_record(&record).map_err(|e| Error::invalid("result record", format!("{key}: {e}")))
}

/// `value` as Python's `json.dumps` writes it (", " and ": " separators), so the bytes match
/// what Prefect's JSON serializer writes.
fn python_json<T: Serialize>(value: &T) -> Result<String, Error> {
    struct PythonFormatter;
    impl serde_json::ser::Formatter for PythonFormatter {
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| Error::invalid("task result", format!("it does not serialize as JSON: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::invalid("task result", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_written_as_prefects_json_serializer_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        let meta = write(&storage, "k", &json!({"answer": 42, "list": [1, 2]}), None).unwrap();
        let text = std::fs::read_to_string(dir.path().join("k")).unwrap();
        assert!(
            text.ends_with(r#""result":"{\"answer\": 42, \"list\": [1, 2]}"}"#),
            "{text}"
        );
        assert!(text.starts_with(r#"{"metadata":{"#), "{text}");
        assert_eq!(meta["serializer"]["type"], "json");
        assert_eq!(meta["storage_key"], dir.path().join("k").display().to_string());
        let (value, _) = read_cached::<Value>(&storage, "k").unwrap();
        assert_eq!(value["answer"], 42);
        assert_eq!(read_result::<Value>(&meta, &storage).unwrap()["list"][1], 2);
    }

    #[test]
    fn expired_unreadable_and_mistyped_records_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        write(
            &storage,
            "old",
            &1,
            Some(Utc::now() - chrono::Duration::seconds(1)),
        )
        .unwrap();
        assert!(read_cached::<i64>(&storage, "old").is_none());
        write(
            &storage,
            "fresh",
            &1,
            Some(Utc::now() + chrono::Duration::hours(1)),
        )
        .unwrap();
        assert_eq!(read_cached::<i64>(&storage, "fresh").unwrap().0, 1);
        assert!(read_cached::<String>(&storage, "fresh").is_none());
        std::fs::write(dir.path().join("junk"), b"not json").unwrap();
        assert!(read_cached::<i64>(&storage, "junk").is_none());
        assert!(read_cached::<i64>(&storage, "missing").is_none());
    }

    #[test]
    fn a_pickled_record_says_which_serializer_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        let record = json!({"metadata": {"serializer": {"type": "pickle"}}, "result": "gASV"});
        std::fs::write(dir.path().join("p"), record.to_string()).unwrap();
        let err = read_result::<i64>(&json!({"storage_key": "p"}), &storage).unwrap_err();
        assert!(err.to_string().contains(r#"result_serializer="json""#), "{err}");
    }

    #[test]
    fn cache_keys_must_be_file_names() {
        assert!(check_key("orders-2026").is_ok());
        for bad in ["", "a/b", "..", "a\nb"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"x".repeat(2001)).is_err());
    }
}
