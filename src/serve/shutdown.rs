//! Stopping a polling loop: its handle, and the signals that ask a process to stop: SIGTERM (how
//! Kubernetes, systemd and Prefect's own workers stop a process) and Ctrl-C.

/// SIGTERM (how Kubernetes, systemd and Prefect's own workers stop a process) and Ctrl-C
/// (SIGINT), listened for from when it is made: none is missed between two waits.
pub(crate) struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts listening.
    pub(crate) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {name}; it stops nothing gracefully");
                    None
                }
            };
            Self {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves at the next SIGTERM or Ctrl-C (never, when neither can be listened for).
    pub(crate) async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn of(listener: &mut Option<tokio::signal::unix::Signal>) {
                let received = match listener {
                    Some(listener) => listener.recv().await.is_some(),
                    None => false,
                };
                if !received {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                () = of(&mut self.terminate) => {}
                () = of(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves at the first SIGTERM or Ctrl-C (SIGINT).
pub(crate) async fn signal() {
    Signals::listen().next().await;
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

        /// Shuts down without a grace period: the runs still executing are stopped at once, as
        /// `on_shutdown` says (scheduled again by default). Also ends the grace period of a
        /// shutdown under way. [`wait`](Self::wait) for it to end.
        pub fn shutdown_now(&self) {
            self.handle.shutdown_now();
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
        /// A second SIGTERM or Ctrl-C ends the grace period at once.
        ///
        /// # Errors
        /// As [`wait`](Self::wait).
        pub async fn until_signal(self) -> Result<(), $crate::Error> {
            self.handle.until_signal().await
        }
    };
}
pub(super) use handle_methods;

/// How a polling loop is asked to stop: gracefully first (`requested` turns true), then at once
/// (`now` is notified: the grace period ends).
#[derive(Debug)]
pub(crate) struct Stopping {
    pub(crate) requested: tokio::sync::watch::Receiver<bool>,
    pub(crate) now: std::sync::Arc<tokio::sync::Notify>,
}

/// A running polling loop, as serving and the worker hand it out: ask it to stop, wait for it.
#[derive(Debug)]
pub(crate) struct LoopHandle {
    shutdown: tokio::sync::watch::Sender<bool>,
    now: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<Result<(), crate::Error>>,
    /// What the loop does, for the error when the runtime stops first.
    what: &'static str,
}

impl LoopHandle {
    /// Spawns the loop `body` makes of how it is asked to stop; `what` it does names it in the
    /// error when the runtime stops first.
    pub(crate) fn spawn<F>(what: &'static str, body: impl FnOnce(Stopping) -> F) -> Self
    where
        F: std::future::Future<Output = Result<(), crate::Error>> + Send + 'static,
    {
        let (shutdown, requested) = tokio::sync::watch::channel(false);
        let now = std::sync::Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(body(Stopping {
            requested,
            now: now.clone(),
        }));
        Self {
            shutdown,
            now,
            task,
            what,
        }
    }

    /// Starts a graceful shutdown.
    pub(crate) fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Shuts down without a grace period: the runs still executing are stopped at once.
    pub(crate) fn shutdown_now(&self) {
        self.shutdown();
        self.now.notify_one();
    }

    /// Waits until the loop ends.
    pub(crate) async fn wait(self) -> Result<(), crate::Error> {
        let what = self.what;
        self.task
            .await
            .map_err(|_| crate::Error::RuntimeShutdown { what })?
    }

    /// Runs until SIGTERM or Ctrl-C, then shuts down gracefully and waits for it; a second
    /// signal ends the grace period at once.
    pub(crate) async fn until_signal(self) -> Result<(), crate::Error> {
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
