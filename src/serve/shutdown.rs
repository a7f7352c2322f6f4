//! Stopping a polling loop: how it is asked to stop, and the signals that ask a process to stop: SIGTERM (how
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

/// How a polling loop is asked to stop: gracefully first (`requested` turns true), then at once
/// (`now` is notified: the grace period ends).
#[derive(Debug)]
pub(crate) struct Stopping {
    pub(crate) requested: tokio::sync::watch::Receiver<bool>,
    pub(crate) now: std::sync::Arc<tokio::sync::Notify>,
}
