//! Stopping a polling loop: its handle, and the signals that ask a process to stop: SIGTERM (how
//! Kubernetes, systemd and Prefect's own workers stop a process) and Ctrl-C.

/// Resolves at the first SIGTERM or Ctrl-C (SIGINT).
pub(crate) async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `.await` on [`Serve`](super::Serve) or [`Worker`](super::Worker) (builders whose `start()`
/// gives the loop's handle): it serves or works (`does`) until SIGTERM or Ctrl-C, then shuts
/// down gracefully.
macro_rules! awaited_until_signal {
    ($builder:ty, does: $does:literal) => {
        impl ::std::future::IntoFuture for $builder {
            type Output = Result<(), $crate::Error>;
            type IntoFuture = ::std::pin::Pin<Box<dyn ::std::future::Future<Output = Self::Output> + Send>>;

            #[doc = concat!($does, " until SIGTERM or Ctrl-C, then shuts down gracefully.")]
            fn into_future(self) -> Self::IntoFuture {
                Box::pin(async move { self.start().await?.until_signal().await })
            }
        }
    };
}
pub(super) use awaited_until_signal;

/// The methods [`Serving`](super::Serving) and [`Working`](super::Working) share, over their
/// `handle:` [`LoopHandle`], given the words their docs differ in: what `ends` when the loop
/// ends (`serving`, `the worker`), and what it `does` until a signal (`Serves`, `Works`).
macro_rules! handle_methods {
    (ends: $ends:literal, does: $does:literal $(,)?) => {
        /// Starts a graceful shutdown: no more runs are claimed; runs executing get the grace
        /// period to finish. [`wait`](Self::wait) for it to end.
        pub fn shutdown(&self) {
            self.handle.shutdown();
        }

        #[doc = concat!("Waits until ", $ends, " ends (after [`shutdown`](Self::shutdown)).")]
        ///
        /// # Errors
        #[doc = concat!(
            "[`Error::RuntimeShutdown`](crate::Error::RuntimeShutdown) when the runtime stopped before ",
            $ends,
            " ended."
        )]
        pub async fn wait(self) -> Result<(), $crate::Error> {
            self.handle.wait().await
        }

        #[doc = concat!($does, " until SIGTERM or Ctrl-C, then shuts down gracefully and waits for it.")]
        ///
        /// # Errors
        /// As [`wait`](Self::wait).
        pub async fn until_signal(self) -> Result<(), $crate::Error> {
            self.handle.until_signal().await
        }
    };
}
pub(super) use handle_methods;

/// A running polling loop, as serving and the worker hand it out: ask it to stop, wait for it.
#[derive(Debug)]
pub(crate) struct LoopHandle {
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
    pub(crate) task: tokio::task::JoinHandle<Result<(), crate::Error>>,
    /// What the loop does, for the error when the runtime stops first.
    pub(crate) what: &'static str,
}

impl LoopHandle {
    /// Starts a graceful shutdown.
    pub(crate) fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the loop ends.
    pub(crate) async fn wait(self) -> Result<(), crate::Error> {
        let what = self.what;
        self.task
            .await
            .map_err(|_| crate::Error::RuntimeShutdown { what })?
    }

    /// Runs until SIGTERM or Ctrl-C, then shuts down gracefully and waits for it.
    pub(crate) async fn until_signal(self) -> Result<(), crate::Error> {
        signal().await;
        tracing::info!("shutdown signal: stopping gracefully");
        self.shutdown();
        self.wait().await
    }
}
