//! Graceful shutdown: one signal every long-running task watches, one tracker that waits for them.
//!
//! The binary triggers [`Shutdown`] on SIGTERM or SIGINT; the HTTP server stops accepting and finishes
//! in-flight requests, background tasks finish their current unit of work, then pools close. The
//! binary bounds the whole drain (`BW_SHUTDOWN_GRACE`) and exits regardless once it is over.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The shutdown signal and the set of tasks that must finish before the process exits.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// The drain did not finish in time; the named number of tasks were still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainTimedOut {
    /// Tasks still running when the grace period ended.
    pub still_running: usize,
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every task to stop (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once shutdown is asked for; pass it to anything that must stop.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Runs `task` as a tracked task: [`Shutdown::drain`] waits for it. The task must watch
    /// [`Shutdown::triggered`] and return soon after it fires.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Triggers shutdown and waits up to `grace` for every tracked task to finish.
    pub async fn drain(&self, grace: Duration) -> Result<(), DrainTimedOut> {
        self.trigger();
        self.tracker.close();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(DrainTimedOut {
                still_running: self.tracker.len(),
            }),
        }
    }
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tasks_that_watch_the_signal() {
        let shutdown = Shutdown::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = shutdown.triggered();
        shutdown.spawn(async move {
            stop.await;
            tx.send("finished its unit of work").ok();
        });
        assert_eq!(shutdown.drain(Duration::from_secs(5)).await, Ok(()));
        assert_eq!(rx.await, Ok("finished its unit of work"));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace_period() {
        let shutdown = Shutdown::new();
        shutdown.spawn(std::future::pending::<()>());
        let result = shutdown.drain(Duration::from_secs(25)).await;
        assert_eq!(result, Err(DrainTimedOut { still_running: 1 }));
    }
}
