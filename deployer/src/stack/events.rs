//! Watching a CloudFormation stack operation (create, update, delete) to its end: stack
//! events are shown as they arrive, and a failure comes back with the resources that failed
//! and why, which is what an operator needs instead of "UPDATE_ROLLBACK_COMPLETE".
//! Used by `deploy` and `teardown`.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudformation::Client;
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::interrupt::Interrupt;
use crate::progress::Step;

const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(3);

/// A resource that failed, with CloudFormation's reason.
#[derive(Debug, Clone, Serialize)]
pub struct FailedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// Where the stack operation ended.
#[derive(Debug, Clone, Serialize)]
pub struct StackOutcome {
    /// The last stack status seen (DELETE_COMPLETE once the stack is gone).
    pub status: String,
    pub status_reason: Option<String>,
    /// Resources that failed during this operation, oldest first.
    pub failed: Vec<FailedResource>,
    /// Ctrl-C stopped the watch; CloudFormation carries on.
    pub interrupted: bool,
}

impl StackOutcome {
    pub fn succeeded(&self) -> bool {
        !self.interrupted && is_success(&self.status)
    }

    /// A multi-line account of a failure: the status, then each failed resource.
    pub fn failure_report(&self) -> String {
        let mut text = format!("stack ended in {}", self.status);
        if let Some(reason) = &self.status_reason {
            text.push_str(&format!(" ({reason})"));
        }
        if self.failed.is_empty() {
            text.push_str("; no resource reported a failure reason");
        }
        for f in &self.failed {
            text.push_str(&format!(
                "\n  {} {} {}: {}",
                f.status, f.resource_type, f.logical_id, f.reason
            ));
        }
        text
    }
}

/// Whether a stack status is the end of an operation (nothing is in progress).
/// REVIEW_IN_PROGRESS waits for a change set to be executed: nothing runs.
pub fn is_terminal(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS") || status == "REVIEW_IN_PROGRESS"
}

/// Whether a terminal status means the requested operation worked.
pub fn is_success(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// Watches `stack` (name or id) until its status is terminal, printing each new stack event
/// from `since` on under `step`. Returns early, with `interrupted`, on Ctrl-C.
pub async fn watch(
    cfn: &Client,
    stack: &str,
    since: SystemTime,
    step: &Step,
    interrupt: &Interrupt,
) -> anyhow::Result<StackOutcome> {
    let since = aws_smithy_types::DateTime::from(since).as_secs_f64();
    let mut seen = HashSet::new();
    let mut failed = Vec::new();
    let mut interval = FIRST_POLL;
    loop {
        let described = super::describe(cfn, stack).await?;
        // Events after the status, so the last events of a finished operation are included.
        show_new_events(cfn, stack, since, &mut seen, &mut failed, step).await?;
        let (status, status_reason) = described.map_or_else(
            || ("DELETE_COMPLETE".into(), None),
            |s| (s.status, s.reason),
        );
        if is_terminal(&status) {
            return Ok(StackOutcome {
                status,
                status_reason,
                failed,
                interrupted: false,
            });
        }
        step.set_message(status.clone());
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = interrupt.wait() => {
                return Ok(StackOutcome { status, status_reason, failed, interrupted: true });
            }
        }
        interval = (interval * 3 / 2).min(MAX_POLL);
    }
}

/// When the stack's newest event happened (`None`: no stack or no events yet). Events after
/// it belong to the next operation; AWS's timestamps, so no clock skew.
pub async fn latest_event_time(cfn: &Client, stack: &str) -> Option<SystemTime> {
    let out = cfn
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .ok()?;
    let newest = out
        .stack_events()
        .iter()
        .filter_map(|e| e.timestamp())
        .max_by(|a, b| a.as_secs_f64().total_cmp(&b.as_secs_f64()))?;
    SystemTime::try_from(*newest).ok()
}

async fn show_new_events(
    cfn: &Client,
    stack: &str,
    since: f64,
    seen: &mut HashSet<String>,
    failed: &mut Vec<FailedResource>,
    step: &Step,
) -> anyhow::Result<()> {
    let out = cfn
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .or_missing(super::is_missing, || {
            format!("reading events of stack {stack}")
        })?;
    // A deleted stack's events are only reachable by stack id; nothing more to show.
    let Some(out) = out else { return Ok(()) };
    // Newest first; the first page covers what happened since the last poll.
    let mut fresh: Vec<_> = out
        .stack_events()
        .iter()
        .filter(|e| e.timestamp().is_some_and(|t| t.as_secs_f64() >= since))
        .filter(|e| seen.insert(e.event_id().unwrap_or_default().to_owned()))
        .collect();
    fresh.reverse();
    for e in fresh {
        let status = e.resource_status().map_or("", |s| s.as_str());
        let logical = e.logical_resource_id().unwrap_or_default();
        let kind = e.resource_type().unwrap_or_default();
        let reason = e.resource_status_reason().unwrap_or_default();
        let sep = if reason.is_empty() { "" } else { ": " };
        step.println(format!("{status:<20} {kind:<40} {logical}{sep}{reason}"));
        step.event(
            "stack_event",
            serde_json::json!({"stack": stack, "resource": logical, "resource_type": kind,
                "status": status, "reason": reason}),
        );
        if status.ends_with("_FAILED") && kind != "AWS::CloudFormation::Stack" {
            failed.push(FailedResource {
                logical_id: logical.to_owned(),
                resource_type: kind.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_and_success_statuses() {
        assert!(!is_terminal("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(
            is_terminal("REVIEW_IN_PROGRESS"),
            "waits for us, not for AWS"
        );
        assert!(!is_success("REVIEW_IN_PROGRESS"));
        assert!(is_terminal("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!is_success("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!is_success("ROLLBACK_COMPLETE"));
        assert!(is_success("UPDATE_COMPLETE"));
    }
}
