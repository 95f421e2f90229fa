//! One supervisor for every long-lived task of the server, and one shutdown
//! signal.
//!
//! Two kinds of task run under it:
//! - [`Supervisor::spawn_graceful`]: tasks that end themselves when shutdown is
//!   signalled (the TLS server drains its connections, the controller hands
//!   its Lease back); shutdown waits for them, up to [`SHUTDOWN_GRACE`];
//! - [`Supervisor::spawn`]: everything else (watches, certificates, the admin
//!   server): aborted once the graceful ones are done.
//!
//! A task that fails before shutdown stops the server (an error exit, so the
//! kubelet restarts it): a replica missing a watch or its certificates would
//! answer wrongly. A task that ends well (readiness, once set) just ends.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

/// Longest a shutdown waits for the graceful tasks: what is left of the pod's
/// termination grace period (30 s) after its preStop sleep (3 s), with a margin.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// The shutdown signal, as the tasks see it; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown is signalled (at once if it was already).
    pub(crate) async fn requested(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

type Outcome = (&'static str, anyhow::Result<()>);

pub(crate) struct Supervisor {
    tasks: JoinSet<Outcome>,
    /// Names of the running tasks, and whether shutdown waits for them.
    running: HashMap<Id, (&'static str, bool)>,
    stop: watch::Sender<bool>,
    shutdown: Shutdown,
    grace: Duration,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub(crate) fn new() -> Supervisor {
        let (stop, rx) = watch::channel(false);
        Supervisor { tasks: JoinSet::new(), running: HashMap::new(), stop, shutdown: Shutdown(rx), grace: SHUTDOWN_GRACE }
    }

    /// The signal to hand to graceful tasks.
    pub(crate) fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// A task aborted at shutdown.
    pub(crate) fn spawn(&mut self, name: &'static str, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.add(name, false, task);
    }

    /// A task that ends itself once [`Self::shutdown`] fires; shutdown waits for it.
    pub(crate) fn spawn_graceful(&mut self, name: &'static str, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.add(name, true, task);
    }

    fn add(&mut self, name: &'static str, graceful: bool, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let handle = self.tasks.spawn(async move { (name, task.await) });
        self.running.insert(handle.id(), (name, graceful));
    }

    /// Runs until `signal` fires and the graceful tasks are done (`Ok`), or a
    /// task fails first (`Err`, naming it).
    pub(crate) async fn run(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut signal = std::pin::pin!(signal);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let stopping = deadline.is_some();
            if stopping && !self.running.values().any(|(_, graceful)| *graceful) {
                self.tasks.shutdown().await;
                return Ok(());
            }
            tokio::select! {
                () = &mut signal, if !stopping => {
                    tracing::info!("shutting down");
                    let _ = self.stop.send(true);
                    deadline = Some(tokio::time::Instant::now() + self.grace);
                }
                () = sleep_until(deadline) => {
                    let late: Vec<_> = self.running.values().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
                    tracing::warn!(?late, "shutdown: tasks did not end in time; stopping them");
                    self.tasks.shutdown().await;
                    return Ok(());
                }
                Some(joined) = self.tasks.join_next_with_id() => {
                    let (id, (name, result)) = match joined {
                        Ok((id, outcome)) => (id, outcome),
                        Err(e) => {
                            let name = self.running.remove(&e.id()).map_or("a task", |(n, _)| n);
                            (e.id(), (name, Err(anyhow::anyhow!("{e}"))))
                        }
                    };
                    self.running.remove(&id);
                    match result {
                        Err(e) if !stopping => return Err(e).with_context(|| format!("{name} failed")),
                        Err(e) => tracing::warn!(task = name, error = format!("{e:#}"), "failed while shutting down"),
                        Ok(()) => tracing::debug!(task = name, "ended"),
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The process's one shutdown signal: SIGTERM (the kubelet) or Ctrl-C.
pub(crate) async fn terminate_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGTERM handler; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// A task that should run as long as the process: its end is a failure.
pub(crate) async fn forever(what: &'static str, task: impl Future<Output = ()>) -> anyhow::Result<()> {
    task.await;
    anyhow::bail!("{what} ended")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_waits_for_graceful_tasks_and_aborts_the_others() {
        let mut s = Supervisor::new();
        let drained = Arc::new(AtomicBool::new(false));
        let (shutdown, d) = (s.shutdown(), drained.clone());
        s.spawn_graceful("server", async move {
            shutdown.requested().await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            d.store(true, Ordering::SeqCst);
            Ok(())
        });
        s.spawn("watch", forever("watch", std::future::pending()));
        s.spawn("readiness", async { Ok(()) });
        s.run(tokio::time::sleep(Duration::from_millis(10))).await.unwrap();
        assert!(drained.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_failed_task_stops_the_server_and_is_named() {
        let mut s = Supervisor::new();
        s.spawn("watch", forever("the job watch", async {}));
        s.spawn_graceful("server", std::future::pending());
        let e = s.run(std::future::pending()).await.unwrap_err();
        assert!(format!("{e:#}").contains("watch failed: the job watch ended"), "{e:#}");
    }

    const TEST_GRACE: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_graceful_task_that_hangs_is_stopped_after_the_grace() {
        let mut s = Supervisor { grace: TEST_GRACE, ..Supervisor::new() };
        s.spawn_graceful("stuck", std::future::pending());
        let started = tokio::time::Instant::now();
        s.run(async {}).await.unwrap();
        assert!(started.elapsed() >= TEST_GRACE);
    }
}
