//! Logs: write a batch, read with filters.

use chrono::{DateTime, Utc};
use futures_core::Stream;
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::pagination::{STREAM_PAGE_SIZE, paginate};
use crate::types::{Log, LogCreate, ReadLogsBody};
use crate::{Client, Error};

/// Python's logging levels, as Prefect stores them.
pub mod level {
    /// DEBUG.
    pub const DEBUG: i64 = 10;
    /// INFO.
    pub const INFO: i64 = 20;
    /// WARNING.
    pub const WARNING: i64 = 30;
    /// ERROR.
    pub const ERROR: i64 = 40;
    /// CRITICAL.
    pub const CRITICAL: i64 = 50;
}

/// Logs; from [`Client::logs`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, run: uuid::Uuid) -> Result<(), prefect_client::Error> {
/// use prefect_client::resources::logs::{level, log_entry};
///
/// client.logs().write(&[log_entry(Some(run), level::INFO, "rust-service", "loaded 500 rows")]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Logs<'a> {
    client: &'a Client,
}

/// A log line to write, stamped now.
pub fn log_entry(flow_run_id: Option<Uuid>, level: i64, logger: &str, message: &str) -> LogCreate {
    log_entry_at(flow_run_id, level, logger, message, Utc::now())
}

/// A log line to write, with its own timestamp.
pub fn log_entry_at(
    flow_run_id: Option<Uuid>,
    level: i64,
    logger: &str,
    message: &str,
    timestamp: DateTime<Utc>,
) -> LogCreate {
    LogCreate {
        flow_run_id,
        level,
        message: message.to_string(),
        name: logger.to_string(),
        task_run_id: None,
        timestamp,
    }
}

impl<'a> Logs<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Logs { client }
    }

    /// Writes a batch of log lines in one request (not retried after a broken connection: it
    /// could write them twice).
    pub async fn write(&self, entries: &[LogCreate]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let body = entries.to_vec();
        unwrap_response("create_logs", self.client.raw().create_logs(&body).await)
            .await
            .map(drop)
    }

    /// One page of logs matching `filter` (its `limit` and `offset` apply).
    pub async fn filter(&self, filter: &ReadLogsBody) -> Result<Vec<Log>, Error> {
        unwrap_response("read_logs", self.client.raw().read_logs(filter).await).await
    }

    /// Every log line matching `filter` (`ReadLogsBody::default()` for all).
    pub fn stream(&self, filter: ReadLogsBody) -> impl Stream<Item = Result<Log, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(STREAM_PAGE_SIZE, move |offset, limit| {
            let (client, mut page) = (client.clone(), filter.clone());
            page.offset = offset;
            page.limit = Some(i64::from(limit));
            async move { client.logs().filter(&page).await }
        })
    }
}
