//! The loop serving and the worker share: find the runs that are due (poll as Prefect's runner
//! and workers do, and also at once when the server's events say a run was scheduled), claim
//! and execute them (at most `limit` at once), and shut down gracefully.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::core::{Core, Found, RunEnd};
use super::shutdown::Stopping;
use crate::retry::{Retries, Verdict};
use crate::runs::Stop;
use crate::types::{EventFilter, FlowRunResponse, ReceivedEvent, StateType};
use crate::waits::{
    CANCELLATION_CHECK_EVERY, DEFAULT_GRACE_PERIOD, DEFAULT_POLL_INTERVAL, MAX_POLL_BACKOFF,
    MIN_WAKE_POLL_GAP, POLL_BACKOFF, POLL_PREFETCH, SHUTDOWN_STOP_BUDGET,
};
use crate::{Client, Error};
use uuid::Uuid;

/// A boxed future of the runs a poll found.
pub(crate) type Due = Pin<Box<dyn Future<Output = Result<Vec<Found>, Error>> + Send>>;

/// Where a loop finds its runs: the deployments a process serves, or a work pool.
pub(crate) trait Source: Send + Sync + 'static {
    /// What the loop is called in logs (`serving`, `worker`).
    fn what(&self) -> &'static str;
    /// The runs due before `before`, at most `limit`.
    fn due(&self, client: &Client, before: DateTime<Utc>, limit: usize) -> Due;
    /// The events that say a run may be due now, or was cancelled.
    fn wake_on(&self) -> EventFilter;
    /// Whether a run an event announced may be claimed without a poll (where the poll
    /// applies no limits of its own).
    fn claims_directly(&self) -> bool {
        false
    }
    /// Whether a run is this source's to execute (for direct claims).
    fn owns(&self, _run: &FlowRunResponse) -> bool {
        false
    }
}

/// Runs announced by events and not yet looked at, at most (more are left to the polls).
const WOKEN_QUEUE: usize = 1024;

/// What is done with the runs still executing when the grace period of a shutdown ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnShutdown {
    /// Their future is dropped and they are scheduled again at once ("AwaitingRetry"), for
    /// another process to run (Prefect's `PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule`).
    #[default]
    Reschedule,
    /// Their future is dropped and they are CANCELLED ("the process executing it shut down").
    Cancel,
}

/// How a loop runs.
#[derive(Debug, Clone)]
pub(crate) struct LoopOptions {
    /// Runs executed at once, at most.
    pub(crate) limit: usize,
    /// How often the server is asked for due runs, besides when its events wake the loop.
    pub(crate) poll: Duration,
    /// How far ahead a poll looks (a run due within it is claimed and waits for its time).
    pub(crate) prefetch: Duration,
    /// How long a shutdown lets executing runs finish.
    pub(crate) grace: Duration,
    pub(crate) on_shutdown: OnShutdown,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            limit: 5,
            poll: DEFAULT_POLL_INTERVAL,
            prefetch: POLL_PREFETCH,
            grace: DEFAULT_GRACE_PERIOD,
            on_shutdown: OnShutdown::Reschedule,
        }
    }
}

/// The options setters [`Serve`](super::Serve) and [`Worker`](super::Worker) share, over their
/// `options:` [`LoopOptions`], given the words their docs differ in: the doc of `limit`, who is
/// `asked` for due runs, the process of Prefect's that polls as often (`as_prefect`), and whom
/// the runs a shutdown stops are `rescheduled_for`.
macro_rules! loop_setters {
    (
        limit: $limit:literal,
        asked: $asked:literal,
        as_prefect: $as_prefect:literal,
        rescheduled_for: $rescheduled_for:literal $(,)?
    ) => {
        #[doc = $limit]
        pub fn limit(mut self, runs: usize) -> Self {
            self.options.limit = runs.max(1);
            self
        }

        #[doc = concat!(
                    "How often ", $asked, " is asked for due runs (default 10 s, as ", $as_prefect, "); a run"
                )]
        #[doc = "scheduled for now is also claimed at once, woken by the server's events."]
        pub fn poll_interval(mut self, every: ::std::time::Duration) -> Self {
            self.options.poll = every.max(::std::time::Duration::from_millis(100));
            self
        }

        /// How long a shutdown lets executing runs finish before it stops them (default 30 s).
        pub fn grace_period(mut self, grace: ::std::time::Duration) -> Self {
            self.options.grace = grace;
            self
        }

        /// What a shutdown does with runs still executing after the grace period (default: they
        #[doc = concat!("are scheduled again, for ", $rescheduled_for, ").")]
        pub fn on_shutdown(mut self, action: $crate::serve::OnShutdown) -> Self {
            self.options.on_shutdown = action;
            self
        }
    };
}
pub(super) use loop_setters;

/// Runs the loop until a shutdown is requested, then shuts down gracefully (the grace period
/// ends early when `stopping.now` is notified). A failing server never ends it: polls back off
/// and go on.
pub(crate) async fn run(
    core: Arc<Core>,
    source: Arc<dyn Source>,
    options: LoopOptions,
    stopping: Stopping,
) -> Result<(), Error> {
    let Stopping {
        requested: mut shutdown,
        now,
    } = stopping;
    let permits = Arc::new(Semaphore::new(options.limit.max(1)));
    let (woken_tx, mut woken) = mpsc::channel::<Uuid>(WOKEN_QUEUE);
    core.watch_cancellations_shared();
    let watcher = tokio::spawn(watch_events(core.clone(), source.wake_on(), woken_tx));
    let mut runs: JoinSet<RunEnd> = JoinSet::new();
    let claiming = Claiming {
        core: &core,
        source: source.as_ref(),
        options: &options,
        permits: &permits,
    };
    // Failed polls in a row; a failing server never ends the loop.
    let mut failed_polls = Retries::new(POLL_BACKOFF);
    let mut next_poll = Instant::now();
    let mut last_poll: Option<Instant> = None;
    // A handle dropped leaves the loop serving for good: its channel is closed then, and is
    // not waited on again (a closed channel answers at once, every time).
    let mut handle_kept = true;
    while !*shutdown.borrow() {
        if Instant::now() >= next_poll {
            last_poll = Some(Instant::now());
            let wait = match claiming.poll(&mut runs).await {
                Ok(()) => {
                    failed_polls.reset();
                    options.poll
                }
                Err(e) => {
                    let wait = failed_polls.failed(Verdict::Retry).unwrap_or(MAX_POLL_BACKOFF);
                    tracing::warn!(what = source.what(), error = %e, retry_in = ?wait, "asking the server for due runs failed; carrying on");
                    wait
                }
            };
            next_poll = Instant::now() + wait;
        }
        tokio::select! {
            Some(id) = woken.recv() => {
                if source.claims_directly() {
                    if let Err(e) = claiming.claim_woken(&mut runs, id).await {
                        tracing::debug!(what = source.what(), run = %id, error = %e, "claiming a run an event announced failed; the next poll finds it");
                    }
                } else if failed_polls.failures() == 0 {
                    let soonest = last_poll.map_or_else(Instant::now, |at| at + MIN_WAKE_POLL_GAP);
                    next_poll = next_poll.min(soonest.max(Instant::now()));
                }
            }
            () = tokio::time::sleep_until(next_poll) => {}
            Some(ended) = runs.join_next(), if !runs.is_empty() => log_end(source.what(), ended),
            changed = shutdown.changed(), if handle_kept => handle_kept = changed.is_ok(),
        }
    }
    tracing::info!(what = source.what(), executing = runs.len(), grace = ?options.grace, "shutting down: no more runs are claimed");
    // The runs executing are still watched for cancellation while they finish: the event
    // watcher runs on, and the server is asked as often as while polling.
    let drained = tokio::select! {
        drained = tokio::time::timeout(options.grace, drain_watched(&core, source.what(), &mut runs)) => drained.is_ok(),
        () = now.notified() => runs.is_empty(),
    };
    if !drained {
        let stop = match options.on_shutdown {
            OnShutdown::Reschedule => Stop::Reschedule(
                "the process executing this run shut down before it finished; scheduled again for another process".into(),
            ),
            OnShutdown::Cancel => Stop::Cancel(
                "the process executing this run shut down before it finished".into(),
            ),
        };
        tracing::warn!(
            what = source.what(),
            left = runs.len(),
            "the grace period is over: stopping the runs still executing"
        );
        core.stop_all(stop);
        if tokio::time::timeout(SHUTDOWN_STOP_BUDGET, drain(source.what(), &mut runs))
            .await
            .is_err()
        {
            // Dropped, each run still reports its end (from a thread at program end).
            runs.abort_all();
        }
    }
    watcher.abort();
    Ok(())
}

/// What finding, claiming and starting runs takes, for one loop: the core that executes them,
/// where they come from, the loop's options, and the permits for the runs executed at once.
struct Claiming<'a> {
    core: &'a Arc<Core>,
    source: &'a dyn Source,
    options: &'a LoopOptions,
    permits: &'a Arc<Semaphore>,
}

impl Claiming<'_> {
    /// One poll: claims and starts the due runs there is room for.
    async fn poll(&self, runs: &mut JoinSet<RunEnd>) -> Result<(), Error> {
        let core = self.core;
        // Asked even when full: the poll is what tells the server the process is alive.
        let room = self.permits.available_permits().max(1);
        let mut due = self.source.due(&core.client, self.due_before(), room).await?;
        if let Err(e) = core.check_cancelled().await {
            tracing::debug!(error = %e, "asking the server which runs were cancelled failed; asking again at the next poll");
        }
        due.retain(|run| !core.is_in_flight(run.id) && run.takeable());
        for run in due {
            if !self.start(run, runs).await? {
                break;
            }
        }
        Ok(())
    }

    /// A run an event said was scheduled, claimed at once: read (a read, where a poll writes),
    /// and started when it is this source's, due, and there is room. Anything else is left to
    /// the polls.
    async fn claim_woken(&self, runs: &mut JoinSet<RunEnd>, id: Uuid) -> Result<(), Error> {
        let core = self.core;
        if core.is_in_flight(id) || self.permits.available_permits() == 0 {
            return Ok(());
        }
        let run = core.client.flow_runs().get(id).await?;
        let before = self.due_before();
        let due = run.state_type == Some(StateType::Scheduled)
            && run.next_scheduled_start_time.is_none_or(|at| at <= before)
            && self.source.owns(&run);
        let found = Found::from(run);
        if due && found.takeable() && !core.is_in_flight(found.id) {
            self.start(found, runs).await?;
        }
        Ok(())
    }

    /// Starts a run this process has a flow for, when there is room; whether there was room.
    async fn start(&self, run: Found, runs: &mut JoinSet<RunEnd>) -> Result<bool, Error> {
        let Some(flow) = self.core.flow_of(run.flow_id).await? else {
            // A flow this process does not run: left for whoever runs it.
            return Ok(true);
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Ok(false);
        };
        let core = self.core.clone();
        runs.spawn(async move {
            let end = core.run(run, flow, true).await;
            drop(permit);
            end
        });
        Ok(true)
    }

    /// Runs due before this count as due now: claimed, and waiting for their time.
    fn due_before(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.options.prefetch).unwrap_or_default()
    }
}

/// Waits for every run to end.
async fn drain(what: &'static str, runs: &mut JoinSet<RunEnd>) {
    while let Some(ended) = runs.join_next().await {
        log_end(what, ended);
    }
}

/// Waits for every run to end, asking the server which of them were cancelled meanwhile (the
/// fallback for events the subscription misses, as while polling).
async fn drain_watched(core: &Core, what: &'static str, runs: &mut JoinSet<RunEnd>) {
    let mut checks = tokio::time::interval(CANCELLATION_CHECK_EVERY);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checks.tick().await;
    loop {
        tokio::select! {
            ended = runs.join_next() => match ended {
                Some(ended) => log_end(what, ended),
                None => return,
            },
            _ = checks.tick() => {
                if let Err(e) = core.check_cancelled().await {
                    tracing::debug!(error = %e, "asking the server which runs were cancelled failed; asking again");
                }
            }
        }
    }
}

/// The run a cancellation event is about.
fn cancelled_run(event: &ReceivedEvent) -> Option<Uuid> {
    if !super::CANCELLING_EVENTS.contains(&event.event.as_str()) {
        return None;
    }
    flow_run_of(event)
}

/// The flow run an event is about.
fn flow_run_of(event: &ReceivedEvent) -> Option<Uuid> {
    event
        .resource
        .get("prefect.resource.id")?
        .strip_prefix("prefect.flow-run.")?
        .parse()
        .ok()
}

fn log_end(what: &'static str, ended: Result<RunEnd, tokio::task::JoinError>) {
    match ended {
        Ok(RunEnd::Skipped(reason)) => tracing::debug!(what, %reason, "a run was left to others"),
        Ok(RunEnd::Ended(outcome)) => tracing::info!(what, outcome = ?outcome, "a run ended"),
        Ok(RunEnd::Failed(e)) => {
            tracing::warn!(what, error = %e, "a run could not be executed to its end; the server keeps its state")
        }
        Err(e) => tracing::warn!(what, error = %e, "a run's task ended early"),
    }
}

/// Hands the loop the runs the server's events say may be due, and stops the runs this process
/// executes that were cancelled; subscribes again when the subscription ends (the server
/// away), with backoff, for as long as the loop runs (the polls cover what it missed).
async fn watch_events(core: Arc<Core>, filter: EventFilter, woken: mpsc::Sender<Uuid>) {
    // Subscriptions that ended in a row; an event received starts the count again.
    let mut ended = Retries::new(POLL_BACKOFF);
    loop {
        // From well before now, at each subscription: a client clock ahead of the server's
        // must not hide the events (older ones only wake a read of their run).
        let filter = EventFilter {
            occurred: Some(crate::waits::since_skew_allowance()),
            ..filter.clone()
        };
        match core.client.events().subscribe(filter).await {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => {
                            ended.reset();
                            if let Some(id) = cancelled_run(&event) {
                                core.cancel_if_cancelled(id).await;
                            } else if let Some(id) = flow_run_of(&event) {
                                // A full queue drops it: the polls find the run.
                                let _ = woken.try_send(id);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "the event subscription ended; polling meanwhile");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to events; polling meanwhile"),
        }
        let pause = ended.failed(Verdict::Retry).unwrap_or(MAX_POLL_BACKOFF);
        tokio::time::sleep(pause).await;
    }
}
