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

use crate::Client;
use crate::resources::logs::{LogEntry, LogLevel};
use crate::waits::{LOG_BATCH_INTERVAL, LOG_RESEND_WAIT};

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
/// Attempts to send one batch before its lines count as dropped.
const SEND_ATTEMPTS: u32 = 3;

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
/// truncated with a note.
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
    flush_now: AtomicBool,
    progress: tokio::sync::Notify,
    max_line: usize,
}

/// Every live shipper, for runs to flush at their end.
static SHIPPERS: Mutex<Vec<Weak<LogShipper>>> = Mutex::new(Vec::new());

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
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    fn push(&self, entry: LogEntry) {
        match self.queue.try_send(entry) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::SeqCst);
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
                    .min(Duration::from_millis(20))
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
        let mut sent = false;
        for attempt in 0..SEND_ATTEMPTS {
            match runtime.block_on(client.logs().write(batch.iter().cloned())) {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(e) => {
                    if attempt + 1 < SEND_ATTEMPTS {
                        std::thread::sleep(LOG_RESEND_WAIT * (1 << attempt));
                    } else {
                        eprintln!("prefect-client: {lines} log line(s) not shipped to Prefect: {e}");
                    }
                }
            }
        }
        batch.clear();
        bytes = 0;
        if let Some(shipper) = shipper.upgrade() {
            if sent {
                shipper.sent.fetch_add(lines, Ordering::Relaxed);
            } else {
                shipper.dropped.fetch_add(lines, Ordering::Relaxed);
            }
            shipper.done.fetch_add(lines, Ordering::SeqCst);
            shipper.progress.notify_waiters();
        }
    }
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
        for span in scope {
            if let Some(ids) = span.extensions().get::<RunIds>() {
                run.task = run.task.or(ids.task);
                run.flow = run.flow.or(ids.flow);
            }
            if run.flow.is_some() {
                break;
            }
        }
        let Some(flow) = run.flow else {
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
