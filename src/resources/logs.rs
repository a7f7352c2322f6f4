//! Logs: write a batch, read with filters.

use chrono::{DateTime, Utc};
use futures_core::Stream;
use uuid::Uuid;

use crate::resources::{call, pagination};
use crate::types::{Log, LogCreate, ReadLogsBody};
use crate::{Client, Error};

/// A log level, stored by Prefect as Python's logging numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LogLevel {
    /// 10.
    Debug,
    /// 20.
    Info,
    /// 30.
    Warning,
    /// 40.
    Error,
    /// 50.
    Critical,
}

impl LogLevel {
    /// Python's number for the level, as the server stores it.
    pub fn number(self) -> i64 {
        match self {
            LogLevel::Debug => 10,
            LogLevel::Info => 20,
            LogLevel::Warning => 30,
            LogLevel::Error => 40,
            LogLevel::Critical => 50,
        }
    }
}

/// A log line to write; stamped now unless [`at`](LogEntry::at) says otherwise.
///
/// ```
/// use prefect_client::resources::logs::{LogEntry, LogLevel};
/// let line = LogEntry::new(LogLevel::Info, "rust-service", "loaded 500 rows")
///     .flow_run(uuid::Uuid::nil());
/// assert_eq!(line.into_create().level, 20);
/// ```
#[derive(Debug, Clone)]
pub struct LogEntry {
    create: LogCreate,
}

impl LogEntry {
    /// A line at `level` from the logger `logger`.
    pub fn new(level: LogLevel, logger: &str, message: &str) -> LogEntry {
        LogEntry {
            create: LogCreate {
                flow_run_id: None,
                level: level.number(),
                message: message.to_string(),
                name: logger.to_string(),
                task_run_id: None,
                timestamp: Utc::now(),
            },
        }
    }

    /// Attaches the line to a flow run.
    pub fn flow_run(mut self, id: Uuid) -> LogEntry {
        self.create.flow_run_id = Some(id);
        self
    }

    /// Attaches the line to a task run.
    pub fn task_run(mut self, id: Uuid) -> LogEntry {
        self.create.task_run_id = Some(id);
        self
    }

    /// The line's own timestamp.
    pub fn at(mut self, timestamp: DateTime<Utc>) -> LogEntry {
        self.create.timestamp = timestamp;
        self
    }

    /// The generated request type.
    pub fn into_create(self) -> LogCreate {
        self.create
    }
}

/// Logs; from [`Client::logs`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, run: uuid::Uuid) -> Result<(), prefect_client::Error> {
/// use prefect_client::resources::logs::{LogEntry, LogLevel};
///
/// let line = LogEntry::new(LogLevel::Info, "rust-service", "loaded 500 rows").flow_run(run);
/// client.logs().write(vec![line]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Logs<'a> {
    client: &'a Client,
}

impl<'a> Logs<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Logs { client }
    }

    /// Writes a batch of log lines in one request (not retried after a broken connection: it
    /// could write them twice).
    pub async fn write(&self, entries: impl IntoIterator<Item = LogEntry>) -> Result<(), Error> {
        let body: Vec<LogCreate> = entries.into_iter().map(LogEntry::into_create).collect();
        if body.is_empty() {
            return Ok(());
        }
        call!(self.client, create_logs(&body)).map(drop)
    }

    /// One page of logs matching `filter` (its `limit`, at most 200, and `offset` apply).
    pub async fn list_page(&self, filter: &ReadLogsBody) -> Result<Vec<Log>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every log line matching `filter` (`ReadLogsBody::default()` for all).
    pub fn stream(&self, filter: ReadLogsBody) -> impl Stream<Item = Result<Log, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
    }
}
