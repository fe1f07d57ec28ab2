//! Draining: what happens between SIGTERM and exit, and the count of open connections it waits on.
//!
//! ECS sends SIGTERM and kills the task 30 s later (stopTimeout). On the signal the server turns
//! `/health` to 503 and refuses new WebSocket upgrades, tells every connection to finish (each
//! completes its forwards in flight, sends their replies, then closes with 1001), waits for the
//! last one, and exits 0, all bounded by `WS_SHUTDOWN_TIMEOUT_SECONDS`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{Notify, watch};

use crate::metrics::{Metrics, incr};

/// The drain on SIGTERM: stops new connections and tells open ones to close.
pub struct Drain {
    draining: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    all_closed: Notify,
}

impl Drain {
    /// Not draining, no connection open.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            draining: watch::Sender::new(false),
            metrics,
            all_closed: Notify::new(),
        }
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Connections watch this to learn that the server drains.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Begins the drain: every connection is told to close.
    pub fn begin(&self) {
        self.draining.send_replace(true);
    }

    /// Counts a new connection unless `max` are open.
    pub fn try_open(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        let open = &self.metrics.open_connections;
        let mut n = open.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return None;
            }
            match open.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => n = actual,
            }
        }
        incr(&self.metrics.connections_opened);
        Some(ConnectionSlot {
            drain: self.clone(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.metrics.open_connections.load(Ordering::Acquire)
    }

    /// Resolves when no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One open connection; dropping it (when the connection task ends) releases the slot.
pub struct ConnectionSlot {
    drain: Arc<Drain>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self
            .drain
            .metrics
            .open_connections
            .fetch_sub(1, Ordering::AcqRel)
            == 1
        {
            self.drain.all_closed.notify_waiters();
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot listen for signals; shutting down on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves once the server drains (or the server state is gone).
pub async fn draining(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|d| *d).await.map(|_| ());
}

/// How long a client should spread its reconnect over (the `reconnect` frame's `jitter_ms`).
pub const RECONNECT_JITTER_MS: u64 = 2000;

/// One connection's turn to close, for a drain that begins now: a uniformly random moment
/// within `window` (`WS_DRAIN_SECONDS`), so the other tasks get the reconnects spread out
/// instead of all in one millisecond. Until then the connection keeps serving.
pub fn turn_to_close(window: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    if window.is_zero() {
        return now;
    }
    now + window.mul_f64(rand::random::<f64>())
}
