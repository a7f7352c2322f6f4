//! A `tracing` layer that ships log events emitted inside flow and task runs to Prefect, as
//! the runs' logs: queued without blocking, sent in batches from a thread of its own, bounded
//! in memory (what does not fit is counted as dropped), flushed at the end of each run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::resources::logs::{LogEntry, LogLevel};
use crate::retry::{Retries, Verdict};
use crate::waits::{LOG_BATCH_INTERVAL, LOG_FLUSH_RECHECK, LOG_RESEND, LOG_SHIPPER_TICK};
use crate::{Client, Error};

/// Lines queued at most, by default; more are dropped (and counted) until the queue drains.
pub const DEFAULT_LOG_QUEUE: usize = 100_000;
/// Lines per request at most.
const BATCH_LINES: usize = 2_000;
/// Bytes of messages per request at most (Prefect's own handler: 4,000,000).
const BATCH_BYTES: usize = 3_000_000;
/// The longest line a self-hosted server takes (`PREFECT_LOGGING_TO_API_MAX_LOG_SIZE`).
const MAX_LINE: usize = 1_000_000;
/// The longest line Prefect Cloud takes.
const MAX_LINE_CLOUD: usize = 25_000;

/// Ships `tracing` events emitted inside [`FlowScope::run`](super::FlowScope::run) and
/// [`TaskScope::run`](super::TaskScope::run) to Prefect as the runs' logs (events outside any
/// run are left to the other layers).
///
/// ```no_run
/// # fn demo(client: prefect_client::Client) {
/// use tracing_subscriber::prelude::*;
///
/// let prefect = prefect_client::runs::PrefectLogLayer::new(&client);
/// let dropped = prefect.handle();
/// tracing_subscriber::registry().with(prefect).init();
/// // ... runs ...
/// println!("{} lines dropped", dropped.dropped());
/// # }
/// ```
///
/// Never blocks the application: lines are queued ([`DEFAULT_LOG_QUEUE`] at most) and sent in
/// batches from a thread of its own; when the server is slow or down, lines that do not fit
/// (or whose batch failed three times) are dropped and counted ([`LogShipper::dropped`]).
/// Each run's lines are flushed before the run ends. A line over Prefect's size limit is
/// truncated with a note; a batch the server refuses is split so that only the lines it refuses
/// are dropped.
///
/// A line belongs to the run whose span it is logged in: the flow run's span covers the flow's
/// body, a task run's span the task's body, wherever that runs (a task run started inside
/// `tokio::spawn` still names its flow run). Work the flow's body spawns itself runs outside
/// every span unless it is given one: `tokio::spawn(fut.in_current_span())` (with
/// `tracing::Instrument`) keeps its lines in the run; a plain `tokio::spawn(fut)` sends them to
/// the other layers only.
#[derive(Debug)]
pub struct PrefectLogLayer {
    shipper: Arc<LogShipper>,
    max_level: Level,
}

/// The shipping side of a [`PrefectLogLayer`]: counts, and flushing.
#[derive(Debug)]
pub struct LogShipper {
    queue: SyncSender<LogEntry>,
    queued: AtomicU64,
    done: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    unplaced: AtomicU64,
    flush_now: AtomicBool,
    progress: tokio::sync::Notify,
    max_line: usize,
}

/// Every live shipper, for runs to flush at their end.
static SHIPPERS: Mutex<Vec<Weak<LogShipper>>> = Mutex::new(Vec::new());

/// Lines queued by every shipper of the process so far: a task run that logged flushes before
/// it reports its end.
static QUEUED: AtomicU64 = AtomicU64::new(0);

/// Lines queued by every shipper of the process so far.
pub(crate) fn lines_queued() -> u64 {
    QUEUED.load(Ordering::Relaxed)
}

impl PrefectLogLayer {
    /// A layer shipping to the server of `client`, with a queue of [`DEFAULT_LOG_QUEUE`]
    /// lines, at INFO and above.
    pub fn new(client: &Client) -> PrefectLogLayer {
        PrefectLogLayer::with_queue(client, DEFAULT_LOG_QUEUE)
    }

    /// A layer with a queue of `lines` lines.
    pub fn with_queue(client: &Client, lines: usize) -> PrefectLogLayer {
        let (queue, receiver) = sync_channel(lines.max(1));
        let cloud = client.api_url().starts_with("https://api.prefect.cloud/");
        let shipper = Arc::new(LogShipper {
            queue,
            queued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unplaced: AtomicU64::new(0),
            flush_now: AtomicBool::new(false),
            progress: tokio::sync::Notify::new(),
            max_line: if cloud { MAX_LINE_CLOUD } else { MAX_LINE },
        });
        let client = client.for_another_runtime();
        let weak = Arc::downgrade(&shipper);
        let spawned = std::thread::Builder::new()
            .name("prefect-log-shipper".into())
            .spawn(move || ship(client, receiver, weak));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the Prefect log shipper thread; run logs are not shipped");
        }
        let mut shippers = SHIPPERS.lock().unwrap_or_else(|p| p.into_inner());
        shippers.retain(|s| s.strong_count() > 0);
        shippers.push(Arc::downgrade(&shipper));
        PrefectLogLayer {
            shipper,
            max_level: Level::INFO,
        }
    }

    /// Ships events at `level` and above (default INFO).
    pub fn with_max_level(mut self, level: Level) -> Self {
        self.max_level = level;
        self
    }

    /// The shipper: counts and flushing, usable after the layer is installed.
    pub fn handle(&self) -> Arc<LogShipper> {
        self.shipper.clone()
    }
}

impl LogShipper {
    /// Lines dropped so far: the queue was full, or the server did not take their batch.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines logged inside a flow or task run's span that could not be attributed to a run
    /// (its span carried no readable run id): counted here, never shipped.
    pub fn unplaced(&self) -> u64 {
        self.unplaced.load(Ordering::Relaxed)
    }

    /// Lines sent to the server so far.
    pub fn shipped(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until every line queued before the call was sent (or dropped).
    pub async fn flush(&self) {
        let target = self.queued.load(Ordering::SeqCst);
        self.flush_now.store(true, Ordering::SeqCst);
        loop {
            let notified = self.progress.notified();
            if self.done.load(Ordering::SeqCst) >= target {
                return;
            }
            let _ = tokio::time::timeout(LOG_FLUSH_RECHECK, notified).await;
        }
    }

    fn push(&self, entry: LogEntry) {
        match self.queue.try_send(entry) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::SeqCst);
                QUEUED.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Flushes every live shipper (the end of a run).
pub(crate) async fn flush_all() {
    let shippers: Vec<Arc<LogShipper>> = SHIPPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    // At once: one shipper stuck on a dead server must not hold back the others.
    futures_util::future::join_all(shippers.iter().map(|shipper| shipper.flush())).await;
}

/// The shipper thread: batches lines and writes them, until the layer is gone.
fn ship(client: Client, receiver: Receiver<LogEntry>, shipper: Weak<LogShipper>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    let mut batch: Vec<LogEntry> = Vec::new();
    let mut bytes = 0usize;
    let mut open = true;
    while open || !batch.is_empty() {
        let deadline = std::time::Instant::now() + LOG_BATCH_INTERVAL;
        while open && batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
            let flush = shipper
                .upgrade()
                .is_some_and(|s| s.flush_now.swap(false, Ordering::SeqCst));
            let wait = if flush {
                Duration::ZERO
            } else {
                deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .min(LOG_SHIPPER_TICK)
            };
            match receiver.recv_timeout(wait) {
                Ok(entry) => {
                    bytes += entry.message_len();
                    batch.push(entry);
                    // Take what is queued already without waiting.
                    while batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
                        match receiver.try_recv() {
                            Ok(entry) => {
                                bytes += entry.message_len();
                                batch.push(entry);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) if flush || std::time::Instant::now() >= deadline => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let lines = batch.len() as u64;
        let shipped = runtime.block_on(send(&client, &batch));
        if shipped < lines {
            eprintln!(
                "prefect-client: {} of {lines} log line(s) not shipped to Prefect",
                lines - shipped
            );
        }
        batch.clear();
        bytes = 0;
        if let Some(shipper) = shipper.upgrade() {
            shipper.sent.fetch_add(shipped, Ordering::Relaxed);
            shipper.dropped.fetch_add(lines - shipped, Ordering::Relaxed);
            shipper.done.fetch_add(lines, Ordering::SeqCst);
            shipper.progress.notify_waiters();
        }
    }
}

/// Writes a batch, trying [`LOG_SEND_ATTEMPTS`](crate::waits::LOG_SEND_ATTEMPTS) times; a
/// batch the server refuses for its content (422) is split in halves until the lines it refuses
/// are alone, so one bad line costs only itself. Returns how many lines were written.
async fn send(client: &Client, batch: &[LogEntry]) -> u64 {
    let mut pending: Vec<&[LogEntry]> = vec![batch];
    let mut shipped = 0;
    while let Some(part) = pending.pop() {
        let written = Retries::new(LOG_RESEND)
            .run(
                |e: &Error| Verdict::retry_if(!e.is_validation()),
                |_, _| {},
                |_| async move { client.logs().write(part.iter().cloned()).await },
            )
            .await;
        match written {
            Ok(()) => shipped += part.len() as u64,
            Err(e) if e.is_validation() && part.len() > 1 => {
                let (left, right) = part.split_at(part.len() / 2);
                pending.push(right);
                pending.push(left);
            }
            Err(e) if e.is_validation() => eprintln!("prefect-client: Prefect refuses a log line: {e}"),
            Err(e) => eprintln!(
                "prefect-client: {} log line(s) not shipped to Prefect: {e}",
                part.len()
            ),
        }
    }
    shipped
}

/// The flow and task run a span belongs to.
#[derive(Debug, Clone, Copy, Default)]
struct RunIds {
    flow: Option<Uuid>,
    task: Option<Uuid>,
}

impl Visit for RunIds {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let parse = || format!("{value:?}").trim_matches('"').parse::<Uuid>().ok();
        match field.name() {
            "prefect.flow_run_id" => self.flow = parse(),
            "prefect.task_run_id" => self.task = parse(),
            _ => {}
        }
    }
}

/// An event's message and fields, as one line.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S> Layer<S> for PrefectLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let name = attrs.metadata().name();
        if name != "prefect_flow_run" && name != "prefect_task_run" {
            return;
        }
        let mut ids = RunIds::default();
        attrs.record(&mut ids);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(ids);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.max_level {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut run = RunIds::default();
        let mut in_run = false;
        for span in scope {
            if let Some(ids) = span.extensions().get::<RunIds>() {
                in_run = true;
                run.task = run.task.or(ids.task);
                run.flow = run.flow.or(ids.flow);
            }
            if run.flow.is_some() {
                break;
            }
        }
        let Some(flow) = run.flow else {
            // Outside every run: the other layers' line. Inside one whose ids cannot be read: counted.
            if in_run {
                self.shipper.unplaced.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let mut message = line.message;
        message.push_str(&line.fields);
        truncate(&mut message, self.shipper.max_line);
        let mut entry = LogEntry::new(level_of(level), event.metadata().target(), &message)
            .flow_run(flow)
            .at(Utc::now());
        if let Some(task) = run.task {
            entry = entry.task_run(task);
        }
        self.shipper.push(entry);
    }
}

fn level_of(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warning,
        Level::INFO => LogLevel::Info,
        Level::DEBUG | Level::TRACE => LogLevel::Debug,
    }
}

/// Cuts a message over `max` bytes at a character boundary, saying how much was cut.
fn truncate(message: &mut String, max: usize) {
    if message.len() <= max {
        return;
    }
    let note = |cut: usize| format!(" … [truncated {cut} bytes: over Prefect's limit of {max}]");
    let mut keep = max.saturating_sub(note(message.len()).len());
    while !message.is_char_boundary(keep) {
        keep -= 1;
    }
    let cut = message.len() - keep;
    message.truncate(keep);
    message.push_str(&note(cut));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server that refuses (422) any batch of log lines holding the line `bad`, takes
    /// every other (201), and counts the requests.
    async fn refusing_bad_lines() -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let head_end = loop {
                            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break end + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buffer.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: Vec<u8> = buffer.drain(..head_end + length).skip(head_end).collect();
                        counted.fetch_add(1, Ordering::SeqCst);
                        let bad = String::from_utf8_lossy(&body).contains("\"message\":\"bad\"");
                        let (status, text) = if bad {
                            (
                                "422 Unprocessable Entity",
                                r#"{"exception_message":"Invalid request received.","exception_detail":[]}"#,
                            )
                        } else {
                            ("201 Created", "null")
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, requests)
    }

    #[tokio::test]
    async fn a_line_the_server_refuses_costs_only_itself() {
        let (url, requests) = refusing_bad_lines().await;
        let config = crate::Config::new(&url)
            .unwrap()
            .with_max_retries(0)
            .with_csrf_support(false);
        let client = Client::from_config(config).unwrap();
        let batch: Vec<LogEntry> = ["a", "b", "bad", "c"]
            .iter()
            .map(|m| LogEntry::new(LogLevel::Info, "test", m))
            .collect();
        assert_eq!(send(&client, &batch).await, 3, "all but the refused line");
        // The whole, its halves, then the refused half's lines one by one.
        assert_eq!(requests.load(Ordering::SeqCst), 5);
        let good: Vec<LogEntry> = batch.into_iter().filter(|l| l.message_len() != 3).collect();
        assert_eq!(send(&client, &good).await, 3);
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary_with_a_note() {
        let mut line = "é".repeat(600);
        truncate(&mut line, 500);
        assert!(line.len() <= 500, "{}", line.len());
        assert!(line.contains("truncated"), "{line}");
        let mut short = "short".to_string();
        truncate(&mut short, 500);
        assert_eq!(short, "short");
    }
}
