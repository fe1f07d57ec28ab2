//! Exit codes are an interface: scripts branch on them, so they are fixed and documented
//! (README, "Exit codes"; `wsctl --help` prints [`help`]). Every command shares them. A new
//! code is a variant here, in [`Exit::ALL`] and [`Exit::summary`], and a README row: the
//! tests below hold the three together.

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
    /// Another operation holds or took the environment: its deploy lock is held by someone
    /// else (`crate::lock`), or another deployment replaced ours before it finished. The
    /// output names the holder or the deployment.
    Superseded = 6,
    /// Interrupted by Ctrl-C during a wait; AWS was left consistent.
    Interrupted = 130,
}

impl Exit {
    /// Every code, in the order the help and the README list them.
    pub const ALL: [Exit; 8] = [
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::RolledBack,
        Exit::TimedOut,
        Exit::NotFound,
        Exit::Superseded,
        Exit::Interrupted,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// A few words for `wsctl --help`.
    pub fn summary(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "bad usage",
            Exit::RolledBack => "rolled back",
            Exit::TimedOut => "timed out",
            Exit::NotFound => "not found",
            Exit::Superseded => "another operation holds or took the environment",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// The line `wsctl --help` ends with: "Exit codes: 0 success, 1 failure, ...".
pub fn help() -> String {
    let codes: Vec<String> = Exit::ALL
        .iter()
        .map(|exit| format!("{} {}", exit.code(), exit.summary()))
        .collect();
    format!("Exit codes: {}.", codes.join(", "))
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
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

    /// The codes of a "| 3 | meaning |" table under README's "## Exit codes".
    fn readme_codes() -> Vec<u8> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Exit codes")
            .nth(1)
            .expect("README has an Exit codes section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| ")?.split(" |").next()?.parse().ok())
            .collect()
    }

    /// The codes a help text names after "Exit codes:" ("0 deployed (...), 1 failed, ...").
    fn help_codes(help: &str) -> Vec<u8> {
        let Some((_, codes)) = help.split_once("Exit codes:") else {
            return Vec::new();
        };
        let words: Vec<&str> = codes.split_whitespace().collect();
        words
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || words[i - 1].ends_with(',') || words[i - 1].ends_with(':'))
            .filter_map(|(_, w)| w.trim_end_matches(',').parse().ok())
            .collect()
    }

    #[test]
    fn readme_help_and_exit_rs_list_the_same_codes() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(readme_codes(), codes, "README's Exit codes table");
        assert_eq!(help_codes(&help()), codes, "{}", help());
        for exit in Exit::ALL {
            assert_eq!(
                Exit::ALL.iter().filter(|e| e.code() == exit.code()).count(),
                1
            );
        }
    }

    #[test]
    fn every_command_names_only_codes_exit_rs_has() {
        use clap::CommandFactory as _;
        let cli = crate::cli::Cli::command();
        let top = cli
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert_eq!(top, help(), "`wsctl --help` ends with the codes of exit.rs");
        let known: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        for command in cli.get_subcommands() {
            let text = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            for code in help_codes(&text) {
                assert!(
                    known.contains(&code),
                    "`wsctl {} --help` names exit code {code}, which exit.rs does not have",
                    command.get_name()
                );
            }
        }
    }
}
