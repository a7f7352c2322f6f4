//! Logs: write a batch, read with filters, subscribe to live log lines.

use chrono::{DateTime, Utc};
use futures_core::Stream;
use uuid::Uuid;

use std::time::Duration;

use crate::query::LogQuery;
use crate::resources::{call, pagination};
use crate::streaming::Subscribe;
use crate::streaming::subscription::{BoxFuture, Feed, Subscription};
use crate::types::{Log, LogCreate, LogFilter, LogFilterTimestamp, LogSort};
use crate::waits::LOG_POLL_INTERVAL;
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

    /// The message's length in bytes.
    pub(crate) fn message_len(&self) -> usize {
        self.create.message.len()
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
    ///
    /// # Errors
    /// The error of the request: it is not repeated after a broken connection
    /// ([`Error::ConnectionLost`]: the lines may have been written).
    pub async fn write(&self, entries: impl IntoIterator<Item = LogEntry>) -> Result<(), Error> {
        let body: Vec<LogCreate> = entries.into_iter().map(LogEntry::into_create).collect();
        if body.is_empty() {
            return Ok(());
        }
        call!(self.client, create_logs(&body)).map(drop)
    }

    /// One page of logs matching `filter` (its `limit` and `offset` apply).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` below 1 (nothing sent);
    /// [`Error::Validation`] for a filter or page size the server refuses; any other error of the request.
    pub async fn list_page(&self, filter: &LogQuery) -> Result<Vec<Log>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every log line matching `filter` (`LogQuery::default()` for all).
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(&self, filter: LogQuery) -> impl Stream<Item = Result<Log, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
    }

    /// Log lines matching `filter` from now on, as a
    /// [`Subscription`] stream: over the `/logs/out` websocket when the
    /// server streams logs (`PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED` and
    /// `PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED`, off by default), otherwise by reading
    /// `/logs/filter` every second (a log line says so). After a reconnect, lines
    /// the socket missed are read over REST; none is delivered twice.
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client, run: uuid::Uuid) -> Result<(), prefect_client::Error> {
    /// use futures_util::StreamExt;
    /// use prefect_client::types::{LogFilter, LogFilterFlowRunId};
    ///
    /// let filter = LogFilter {
    ///     flow_run_id: Some(LogFilterFlowRunId { any: Some(vec![run]) }),
    ///     ..Default::default()
    /// };
    /// let mut lines = client.logs().subscribe(filter).await?;
    /// while let Some(line) = lines.next().await {
    ///     println!("{}", line?.message);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, filter: LogFilter) -> Subscribe<Log> {
        let mut subscribe = Subscribe::new(self.client, LogFeed { filter });
        subscribe.open_with = Some(|subscribe| Box::pin(open_log_subscription(subscribe)));
        subscribe
    }

    /// Whether the server streams logs over `/logs/out` (both of its settings on); `None` when
    /// its settings cannot be read (Prefect Cloud, or a server that hides them).
    pub async fn server_streams_logs(&self) -> Option<bool> {
        // Read as plain JSON: the settings differ between releases more than any other answer.
        let settings = self.client.get_json("admin/settings").await.ok()?;
        let logs = settings.get("server")?.get("logs")?;
        let on = |name: &str| logs.get(name).and_then(serde_json::Value::as_bool);
        Some(on("stream_out_enabled")? && on("stream_publishing_enabled")?)
    }
}

/// The websocket when the server streams logs, else polling.
async fn open_log_subscription(subscribe: Subscribe<Log>) -> Result<Subscription<Log>, Error> {
    match subscribe.client.logs().server_streams_logs().await {
        Some(false) => {
            tracing::info!(
                "the Prefect server does not stream logs (PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED and \
                 PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED are off); reading /logs/filter every {:?} instead",
                LOG_POLL_INTERVAL
            );
            subscribe.open_polling(LOG_POLL_INTERVAL).await
        }
        Some(true) | None => subscribe.open_socket().await,
    }
}

/// The `/logs/out` subscription; caught up (or polled) over `/logs/filter`.
struct LogFeed {
    filter: LogFilter,
}

impl Feed<Log> for LogFeed {
    fn route(&self) -> &'static str {
        "logs/out"
    }

    fn frame(&self) -> &'static str {
        "log"
    }

    fn filter_message(&self, _resume_from: Option<DateTime<Utc>>) -> serde_json::Value {
        // Live only: what a reconnect missed is read by `catch_up`.
        serde_json::json!({ "type": "filter", "filter": self.filter })
    }

    fn id(&self, log: &Log) -> Uuid {
        log.id
    }

    fn timestamp(&self, log: &Log) -> DateTime<Utc> {
        log.timestamp
    }

    fn catch_up(&self, client: &Client, since: DateTime<Utc>) -> Option<BoxFuture<Result<Vec<Log>, Error>>> {
        let mut filter = self.filter.clone();
        let timestamp = filter.timestamp.get_or_insert_with(LogFilterTimestamp::default);
        timestamp.after = Some(timestamp.after.map_or(since, |after| after.max(since)));
        let body = LogQuery {
            logs: Some(filter),
            sort: Some(LogSort::TimestampAsc),
            ..Default::default()
        };
        let client = client.clone();
        Some(Box::pin(async move {
            use futures_util::TryStreamExt;
            client.logs().stream(body).try_collect().await
        }))
    }

    fn catch_up_delay(&self) -> Duration {
        // Lines are stored before the request writing them is answered.
        Duration::ZERO
    }
}
