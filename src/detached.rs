//! Finishing what a dropped caller left: a release of slots, the end of a flow run whose future
//! was dropped. On the current runtime while it runs; else (no runtime here, or the runtime is
//! shutting down at program end) from a thread of its own with a runtime and a client of its
//! own, waiting for it. Those threads share one budget, [`EXIT_BUDGET`], so a program that ends
//! with much left to finish against a server that does not answer still ends in bounded time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use crate::Client;
use crate::waits::EXIT_RELEASE_BUDGET as EXIT_BUDGET;

/// A boxed job, given a client usable on the runtime it runs on.
pub(crate) type Job =
    Box<dyn Fn(Client) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Runs `job` to its end although its caller is gone: spawned on the current runtime; if that
/// task is dropped before it finished (the runtime shut down), or no runtime runs here, the job
/// runs again, to its end, from a thread of its own ([`run_blocking`]). `what` names it in logs.
/// The job must be safe to run twice.
pub(crate) fn finish(client: &Client, what: &'static str, job: Job) {
    let unfinished = Unfinished {
        client: client.clone(),
        what,
        job: Some(job),
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                let mut unfinished = unfinished;
                if let Some(job) = &unfinished.job {
                    let outcome = job(unfinished.client.clone()).await;
                    if let Err(error) = outcome {
                        tracing::warn!(what, %error, "could not finish it after its caller was dropped");
                    }
                }
                unfinished.job = None;
            });
        }
        Err(_) => drop(unfinished),
    }
}

/// A job not finished yet: dropped so, it runs from a thread.
struct Unfinished {
    client: Client,
    what: &'static str,
    job: Option<Job>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            run_blocking(&self.client, self.what, job);
        }
    }
}

/// When the current run of blocking jobs began: together they wait at most [`EXIT_BUDGET`].
static BLOCKING_SINCE: Mutex<Option<std::time::Instant>> = Mutex::new(None);

/// What is left of the budget of the current run of blocking jobs.
fn blocking_budget() -> Duration {
    let now = std::time::Instant::now();
    let mut since = BLOCKING_SINCE.lock().unwrap_or_else(|p| p.into_inner());
    let start = match *since {
        Some(start) if now.duration_since(start) < EXIT_BUDGET * 4 => start,
        _ => *since.insert(now),
    };
    (start + EXIT_BUDGET).saturating_duration_since(now)
}

/// Runs `job` from a thread of its own, with its own runtime and a client for it, and waits for
/// it (within what is left of the shared budget).
pub(crate) fn run_blocking(client: &Client, what: &'static str, job: Job) {
    let budget = blocking_budget();
    if budget.is_zero() {
        tracing::warn!(what, "no time left at exit to finish it");
        return;
    }
    let client = client.clone();
    let thread = std::thread::Builder::new()
        .name("prefect-finish".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let client = client.for_another_runtime();
            runtime.block_on(async {
                match tokio::time::timeout(budget, job(client)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("the server did not answer within {budget:?}")),
                }
            })
        });
    let outcome = match thread {
        Ok(thread) => thread
            .join()
            .unwrap_or_else(|_| Err("the thread finishing it panicked".into())),
        Err(e) => Err(format!("cannot start a thread to finish it: {e}")),
    };
    match outcome {
        Ok(()) => tracing::debug!(what, "finished without a runtime"),
        Err(error) => tracing::warn!(what, %error, "could not finish it at exit"),
    }
}
