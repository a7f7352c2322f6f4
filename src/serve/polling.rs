//! The loop serving and the worker share: find the runs that are due (poll as Prefect's runner
//! and workers do, and also at once when the server's events say a run was scheduled), claim
//! and execute them (at most `limit` at once), and shut down gracefully.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::core::Core;
use super::found::Found;
use super::handle::{RunEnd, RunEnded};
use super::settings::{OnShutdown, ServeSettings};
use super::shutdown::Stopping;
use crate::retry::{Retries, Verdict};
use crate::runs::Stop;
use crate::streaming::lasting::Lasting;
use crate::types::{EventFilter, FlowRunResponse, ReceivedEvent, StateType};
use crate::waits::{
    CANCELLATION_CHECK_EVERY, MAX_POLL_BACKOFF, MIN_WAKE_POLL_GAP, POLL_BACKOFF, SHUTDOWN_STOP_BUDGET,
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

/// Runs the loop until a shutdown is requested, then shuts down gracefully (the grace period
/// ends early when `stopping.now` is notified). A failing server never ends it: polls back off
/// and go on.
pub(crate) async fn run(
    core: Arc<Core>,
    source: Arc<dyn Source>,
    options: ServeSettings,
    stopping: Stopping,
    ends: broadcast::Sender<RunEnded>,
) -> Result<(), Error> {
    let Stopping {
        requested: mut shutdown,
        now,
    } = stopping;
    let permits = Arc::new(Semaphore::new(options.limit.max(1)));
    let (woken_tx, mut woken) = mpsc::channel::<Uuid>(WOKEN_QUEUE);
    core.watch_cancellations_shared();
    let watcher = tokio::spawn(watch_events(core.clone(), source.wake_on(), woken_tx));
    let mut runs: JoinSet<RunEnded> = JoinSet::new();
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
            Some(ended) = runs.join_next(), if !runs.is_empty() => log_end(source.what(), ended, &ends),
            changed = shutdown.changed(), if handle_kept => handle_kept = changed.is_ok(),
        }
    }
    tracing::info!(what = source.what(), executing = runs.len(), grace = ?options.grace, "shutting down: no more runs are claimed");
    // The runs executing are still watched for cancellation while they finish: the event
    // watcher runs on, and the server is asked as often as while polling.
    let drained = tokio::select! {
        drained = tokio::time::timeout(options.grace, drain_watched(&core, source.what(), &mut runs, &ends)) => drained.is_ok(),
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
        if tokio::time::timeout(SHUTDOWN_STOP_BUDGET, drain(source.what(), &mut runs, &ends))
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
    options: &'a ServeSettings,
    permits: &'a Arc<Semaphore>,
}

impl Claiming<'_> {
    /// One poll: claims and starts the due runs there is room for.
    async fn poll(&self, runs: &mut JoinSet<RunEnded>) -> Result<(), Error> {
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
    async fn claim_woken(&self, runs: &mut JoinSet<RunEnded>, id: Uuid) -> Result<(), Error> {
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
    async fn start(&self, run: Found, runs: &mut JoinSet<RunEnded>) -> Result<bool, Error> {
        let Some(flow) = self.core.flow_of(run.flow_id).await? else {
            // A flow this process does not run: left for whoever runs it.
            return Ok(true);
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Ok(false);
        };
        let core = self.core.clone();
        runs.spawn(async move {
            let ended = core.serve(run, flow).await;
            drop(permit);
            ended
        });
        Ok(true)
    }

    /// Runs due before this count as due now: claimed, and waiting for their time.
    fn due_before(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.options.prefetch).unwrap_or_default()
    }
}

/// Waits for every run to end.
async fn drain(what: &'static str, runs: &mut JoinSet<RunEnded>, ends: &broadcast::Sender<RunEnded>) {
    while let Some(ended) = runs.join_next().await {
        log_end(what, ended, ends);
    }
}

/// Waits for every run to end, asking the server which of them were cancelled meanwhile (the
/// fallback for events the subscription misses, as while polling).
async fn drain_watched(
    core: &Core,
    what: &'static str,
    runs: &mut JoinSet<RunEnded>,
    ends: &broadcast::Sender<RunEnded>,
) {
    let mut checks = tokio::time::interval(CANCELLATION_CHECK_EVERY);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checks.tick().await;
    loop {
        tokio::select! {
            ended = runs.join_next() => match ended {
                Some(ended) => log_end(what, ended, ends),
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

/// Logs how a run ended and hands it to the readers of [`Serving::ended_runs`](super::Serving::ended_runs).
fn log_end(
    what: &'static str,
    ended: Result<RunEnded, tokio::task::JoinError>,
    ends: &broadcast::Sender<RunEnded>,
) {
    let ended = match ended {
        Ok(ended) => ended,
        Err(e) => {
            tracing::warn!(what, error = %e, "a run's task ended early");
            return;
        }
    };
    let run = ended.flow_run_id;
    match &ended.end {
        RunEnd::Skipped { reason } => tracing::debug!(what, %run, %reason, "a run was left to others"),
        RunEnd::Ended(outcome) => tracing::info!(what, %run, outcome = ?outcome, "a run ended"),
        RunEnd::Failed(e) => {
            tracing::warn!(what, %run, error = %e, "a run could not be executed to its end; the server keeps its state")
        }
    }
    // No reader: nothing to hand.
    let _ = ends.send(ended);
}

/// Hands the loop the runs the server's events say may be due, and stops the runs this process
/// executes that were cancelled, for as long as the loop runs: one lasting subscription,
/// opened again (with backoff) whenever it ends; the polls cover what it missed, and stand in
/// for good if the server refuses it.
async fn watch_events(core: Arc<Core>, filter: EventFilter, woken: mpsc::Sender<Uuid>) {
    let mut events = Lasting::new(&core.client, filter, "serving");
    while let Some(event) = events.next_event().await {
        if let Some(id) = cancelled_run(&event) {
            core.cancel_if_cancelled(id).await;
        } else if let Some(id) = flow_run_of(&event) {
            // A full queue drops it: the polls find the run.
            let _ = woken.try_send(id);
        }
    }
    tracing::warn!("the server refuses event subscriptions: runs are found by polls alone");
}
