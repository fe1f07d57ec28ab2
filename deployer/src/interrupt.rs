//! Ctrl-C as a value: waits (rollout, stack events, log follow) select on it so they can stop
//! watching, say what is still running in AWS and how to resume, and exit 130 — instead of the
//! process dying mid-sentence. A second Ctrl-C ends the process at once.

use tokio::sync::watch;

use crate::exit::Exit;

/// A handle that resolves when the user pressed Ctrl-C. Cheap to clone.
#[derive(Clone)]
pub struct Interrupt {
    pressed: watch::Receiver<bool>,
    // Keeps the channel open for `never()`, so `wait` pends instead of returning.
    _keep: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Interrupt {
    /// Installs the Ctrl-C handler; once per process, by `Context::interrupt`.
    pub fn install() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handling available: keep the channel open, never fire.
                std::future::pending::<()>().await;
            }
            let _ = tx.send(true);
            // A second Ctrl-C means "stop now".
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(Exit::Interrupted as i32);
            }
        });
        Self {
            pressed: rx,
            _keep: None,
        }
    }

    /// A handle that never fires (tests).
    #[cfg(test)]
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            pressed: rx,
            _keep: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Whether Ctrl-C was pressed.
    pub fn is_set(&self) -> bool {
        *self.pressed.borrow()
    }

    /// Resolves once Ctrl-C was pressed; pends forever otherwise.
    pub async fn wait(&self) {
        let mut rx = self.pressed.clone();
        if rx.wait_for(|pressed| *pressed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
