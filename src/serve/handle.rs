//! The one handle of a process that serves deployments or works a pool: [`Serving`]; and how
//! each run it took on ended, as a stream ([`RunEnded`]).

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{Notify, broadcast, watch};
use uuid::Uuid;

use super::shutdown::{Signals, Stopping};
use crate::Error;
use crate::runs::Outcome;
use crate::types::{DeploymentResponse, WorkPoolResponse};

/// Run ends kept for a subscriber that reads slower than runs end; past it the oldest are
/// passed over (and the count logged).
const ENDS_KEPT: usize = 1024;

/// How one run a serving process or worker took on ended; from [`Serving::ended_runs`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunEnded {
    /// The flow run.
    pub flow_run_id: Uuid,
    /// The name of the flow that executed it (the [`RustFlow`](super::RustFlow)'s).
    pub flow_name: String,
    /// How it ended.
    pub end: RunEnd,
}

/// How a run this process took on came to its end.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RunEnd {
    /// Nothing ran here: another process took the run, or the server keeps it from starting
    /// (its deployment's concurrency limit, a cancellation); why.
    Skipped {
        /// Why the run was left.
        reason: String,
    },
    /// It ran to this end, which the server recorded.
    Ended(Outcome<(), String>),
    /// Executing it failed for the SDK (the server away past every retry, its end not
    /// recorded): the server keeps the run's state, and Prefect's own clean-up (the zombie-run
    /// automation, lease expiry) ends it.
    Failed(Arc<Error>),
}

/// What a loop serves: deployments, or a work pool.
#[derive(Debug)]
pub(crate) enum Serves {
    Deployments(Vec<DeploymentResponse>),
    Pool(Box<WorkPoolResponse>),
}

/// A process serving deployments ([`Serve::start`](super::Serve::start)) or working a pool
/// ([`Worker::start`](super::Worker::start)). Dropping it does not stop the loop: call
/// [`shutdown`](Serving::shutdown) and [`wait`](Serving::wait), or
/// [`until_signal`](Serving::until_signal).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, flow: prefect_client::serve::RustFlow) -> Result<(), prefect_client::Error> {
/// use futures_util::StreamExt;
///
/// let serving = client.serve([&flow]).deployment(flow.deployment("nightly")).start().await?;
/// let mut ended = serving.ended_runs();
/// while let Some(run) = ended.next().await {
///     println!("{} ended: {:?}", run.flow_run_id, run.end);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Serving {
    serves: Serves,
    shutdown: watch::Sender<bool>,
    now: Arc<Notify>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
    /// Where the loop hands each run's end; weak, so the stream ends when the loop does.
    ends: broadcast::WeakSender<RunEnded>,
    /// What the loop does, for the error when the runtime stops first.
    what: &'static str,
}

impl Serving {
    /// Spawns the loop `body` makes of how it is asked to stop and where each run's end goes;
    /// `what` it does names it in the error when the runtime stops first.
    pub(crate) fn spawn<F>(
        serves: Serves,
        what: &'static str,
        body: impl FnOnce(Stopping, broadcast::Sender<RunEnded>) -> F,
    ) -> Serving
    where
        F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        let (shutdown, requested) = watch::channel(false);
        let now = Arc::new(Notify::new());
        let (ends, _) = broadcast::channel(ENDS_KEPT);
        let task = tokio::spawn(body(
            Stopping {
                requested,
                now: now.clone(),
            },
            ends.clone(),
        ));
        let ends = ends.downgrade();
        Serving {
            serves,
            shutdown,
            now,
            task,
            ends,
            what,
        }
    }

    /// The deployments served, as applied (none for a worker).
    pub fn deployments(&self) -> &[DeploymentResponse] {
        match &self.serves {
            Serves::Deployments(deployments) => deployments,
            Serves::Pool(_) => &[],
        }
    }

    /// The work pool worked on (none for served deployments).
    pub fn work_pool(&self) -> Option<&WorkPoolResponse> {
        match &self.serves {
            Serves::Pool(pool) => Some(pool),
            Serves::Deployments(_) => None,
        }
    }

    /// How each run taken on from now ends, as it ends: its outcome, a claim another process
    /// won, or a run the SDK could not execute to its end. The stream ends when the loop does.
    /// A subscriber that falls more than 1,024 ends behind passes over the oldest (logged).
    pub fn ended_runs(&self) -> BoxStream<'static, RunEnded> {
        let ends = self.ends.upgrade().map(|sender| sender.subscribe());
        futures_util::stream::unfold(ends, |ends| async move {
            let mut ends = ends?;
            loop {
                match ends.recv().await {
                    Ok(ended) => return Some((ended, Some(ends))),
                    Err(broadcast::error::RecvError::Lagged(passed)) => {
                        tracing::warn!(
                            passed,
                            "a reader of ended runs fell behind; the oldest ends were passed over"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    /// Starts a graceful shutdown: no more runs are claimed; runs executing get the grace period
    /// to finish. [`wait`](Self::wait) for it to end.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Shuts down without a grace period: the runs still executing are stopped at once, as
    /// [`ServeSettings::on_shutdown`](super::ServeSettings::on_shutdown) says (scheduled again by
    /// default). Also ends the grace period of a shutdown under way. [`wait`](Self::wait) for it
    /// to end.
    pub fn shutdown_now(&self) {
        self.shutdown();
        self.now.notify_one();
    }

    /// Waits until the loop ends (after [`shutdown`](Self::shutdown)).
    ///
    /// # Errors
    /// [`Error::RuntimeShutdown`] when the runtime stopped before the loop ended.
    pub async fn wait(self) -> Result<(), Error> {
        let what = self.what;
        self.task.await.map_err(|_| Error::RuntimeShutdown { what })?
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully and waits for it. A second
    /// SIGTERM or Ctrl-C ends the grace period at once.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub async fn until_signal(self) -> Result<(), Error> {
        let mut signals = Signals::listen();
        signals.next().await;
        tracing::info!(
            "shutdown signal: stopping gracefully (a second signal stops the runs still executing at once)"
        );
        self.shutdown();
        let now = self.now.clone();
        let ended = self.wait();
        tokio::pin!(ended);
        tokio::select! {
            result = &mut ended => return result,
            () = signals.next() => {}
        }
        tracing::warn!("second shutdown signal: stopping the runs still executing now");
        now.notify_one();
        ended.await
    }
}
