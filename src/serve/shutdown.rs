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
