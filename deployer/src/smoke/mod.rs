//! The smoke test: after a rollout, does the service answer a client the way docs/protocol.md
//! says? It connects to the environment's endpoint (through the load balancer) with a token
//! minted for the environment, subscribed to a project of its own, and checks in order:
//!
//! 1. `connect`: the upgrade is accepted with the token in the `Authorization` header;
//! 2. `welcome`: the first frame is the welcome, authenticated as the smoke test's user and
//!    subscribed to its project;
//! 3. `ping`: a ping gets its pong;
//! 4. `publish`: `POST /publish` of an update to that project with the environment's
//!    `PUBLISH_TOKEN` is accepted (202), and
//! 5. `receive`: the connection receives that very update.
//!
//! Publishing is for the agents inside the VPC: from outside it (a laptop, a CI runner) the
//! load balancer answers 403 itself. The smoke test says so and counts `publish` and `receive`
//! as skipped, not as passed or failed; the same when the environment has no publish token.
//! Checks 1-3 prove that a client gets through the load balancer to a task that authenticates
//! and answers; 4-5 add the fan-out path when the test runs where publishing is allowed.

pub mod endpoint;
pub mod environment;
pub mod run;

use serde::Serialize;

pub use endpoint::Endpoint;
pub use run::{Credentials, run};

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Passed(String),
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub seconds: f64,
}

/// What the smoke test found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The WebSocket URL it connected to.
    pub endpoint: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(endpoint: String, checks: Vec<Check>) -> Self {
        let passed = !checks
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Failed(_)));
        Self {
            endpoint,
            passed,
            checks,
        }
    }

    /// The first failed check as "name: what failed".
    pub fn failure(&self) -> Option<String> {
        self.checks.iter().find_map(|c| match &c.outcome {
            Outcome::Failed(why) => Some(format!("{}: {why}", c.name)),
            _ => None,
        })
    }

    /// One line: "passed (connect, welcome, ping; publish skipped: ...)".
    pub fn describe(&self) -> String {
        if let Some(failure) = self.failure() {
            return format!("failed at {failure}");
        }
        let passed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Passed(_)))
            .map(|c| c.name)
            .collect();
        let mut text = format!("passed ({})", passed.join(", "));
        let skipped: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
            .collect();
        if let Some(Outcome::Skipped(why)) = skipped.first().map(|c| &c.outcome) {
            let names: Vec<&str> = skipped.iter().map(|c| c.name).collect();
            text.push_str(&format!("; {} skipped: {why}", names.join(" and ")));
        }
        text
    }
}

/// The smoke test's part of a deploy's (or rollback's) result.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// It ran; `report.passed` says how it went.
    Ran { report: Report },
    /// It did not run, and why (`--no-smoke`, `--no-wait`, an emulator's endpoint).
    Skipped { reason: String },
}

impl Verdict {
    pub fn describe(&self) -> String {
        match self {
            Self::Ran { report } => report.describe(),
            Self::Skipped { reason } => format!("skipped: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &'static str, outcome: Outcome) -> Check {
        Check {
            name,
            outcome,
            seconds: 0.0,
        }
    }

    #[test]
    fn a_skip_is_not_a_failure_and_the_first_failure_is_named() {
        let report = Report::new(
            "ws://x/ws".into(),
            vec![
                check("connect", Outcome::Passed("101".into())),
                check("welcome", Outcome::Passed("ok".into())),
                check("ping", Outcome::Passed("pong".into())),
                check("publish", Outcome::Skipped("outside the VPC".into())),
                check("receive", Outcome::Skipped("outside the VPC".into())),
            ],
        );
        assert!(report.passed);
        assert_eq!(
            report.describe(),
            "passed (connect, welcome, ping); publish and receive skipped: outside the VPC"
        );
        let failed = Report::new(
            "ws://x/ws".into(),
            vec![
                check("connect", Outcome::Passed("101".into())),
                check("welcome", Outcome::Failed("no frame within 10s".into())),
            ],
        );
        assert!(!failed.passed);
        assert_eq!(
            failed.failure().as_deref(),
            Some("welcome: no frame within 10s")
        );
        let json = serde_json::to_value(&failed).expect("json");
        assert_eq!(json["checks"][1]["status"], "failed");
        assert_eq!(json["checks"][1]["detail"], "no frame within 10s");
    }
}
