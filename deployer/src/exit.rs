//! Exit codes are an interface: scripts branch on them, so they are fixed and documented
//! (README, "Exit codes"). Every command shares them.

use std::fmt;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything the command was asked to do holds.
    Success = 0,
    /// It failed; the message says why.
    Failure = 1,
    /// The command line or the settings file was wrong; nothing was changed.
    Usage = 2,
    /// The deployment was rolled back (by ECS's circuit breaker, or by wsctl after failing
    /// fast) and the rollback completed: the old release runs.
    RolledBack = 3,
    /// The wait ran out of time; the rollout may still finish on its own.
    TimedOut = 4,
    /// The environment (stack or service) does not exist.
    NotFound = 5,
    /// Another deployment replaced ours before it finished (someone else deployed); the
    /// output names it.
    Superseded = 6,
    /// Interrupted by Ctrl-C during a wait; AWS was left consistent.
    Interrupted = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

/// An error that carries the exit code it should end the process with.
#[derive(Debug)]
pub struct ExitError {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for ExitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitError {}

/// Fails with a specific exit code: `return Err(fail(Exit::NotFound, "..."))`.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    ExitError {
        exit,
        message: message.into(),
    }
    .into()
}

/// The exit code for an error: the first `ExitError` in its chain, else a plain failure.
pub fn classify(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<ExitError>())
        .map_or(Exit::Failure, |e| e.exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_finds_the_code_under_context() {
        let err = fail(Exit::NotFound, "no stack").context("reading status");
        assert_eq!(classify(&err), Exit::NotFound);
        assert_eq!(classify(&anyhow::anyhow!("boom")), Exit::Failure);
    }
}
