//! The service stack's current state, read before anything changes, and the states a deploy
//! cannot proceed from, each with the way out (instead of a raw AWS error halfway through).

use std::collections::BTreeMap;

use anyhow::Context as _;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};

use crate::exit::{Exit, fail};

/// What the deploy finds.
#[derive(Debug, Clone)]
pub enum StackState {
    /// No such stack, or one left in REVIEW_IN_PROGRESS by a change set never executed:
    /// the next change set is a CREATE.
    Missing { in_review: bool },
    /// A stack that can be updated.
    Ready,
}

/// A stack's identity, status, parameters, tags and outputs.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub status: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
}

impl Stack {
    /// An output's value, or an error naming the output and the stack.
    pub fn output(&self, key: &str, stack_name: &str) -> anyhow::Result<&str> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| {
            fail(
                Exit::Failure,
                format!(
                    "stack {stack_name} has no output {key} (outputs: {}); is it made from \
                     this version's template?",
                    list(self.outputs.keys())
                ),
            )
        })
    }
}

fn list<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<&str> = keys.map(String::as_str).collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// Whether an error says the stack does not exist (CloudFormation has no dedicated code).
pub fn is_missing_stack<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.message())
        .is_some_and(|m| m.contains("does not exist"))
}

/// Reads a stack; `None` when it does not exist.
pub async fn read(cfn: &Client, name: &str) -> anyhow::Result<Option<Stack>> {
    let out = match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => out,
        Err(err) if is_missing_stack(&err) => return Ok(None),
        Err(err) => {
            return Err(crate::aws::error(err)).with_context(|| format!("describing stack {name}"));
        }
    };
    let Some(s) = out.stacks().first() else {
        return Ok(None);
    };
    Ok(Some(Stack {
        status: s.stack_status().map_or("", |st| st.as_str()).to_owned(),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_owned(),
                    p.parameter_value()?.to_owned(),
                ))
            })
            .collect(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect(),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect(),
    }))
}

/// Reads the service stack and decides whether a deploy can go on from its state.
pub async fn for_deploy(cfn: &Client, name: &str, env: &str) -> anyhow::Result<StackState> {
    let Some(stack) = read(cfn, name).await? else {
        return Ok(StackState::Missing { in_review: false });
    };
    if stack.status == "REVIEW_IN_PROGRESS" {
        return Ok(StackState::Missing { in_review: true });
    }
    check_deployable(&stack.status, name, env)?;
    Ok(StackState::Ready)
}

/// The states a stack cannot be updated from, each with the way out.
pub fn check_deployable(status: &str, name: &str, env: &str) -> anyhow::Result<()> {
    let way_out = match status {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => format!(
            "its first creation failed and CloudFormation cannot update it. Delete it with \
             `wsctl teardown --env {env}` (see `wsctl status --env {env}` for why it failed), \
             then deploy again"
        ),
        "DELETE_FAILED" => format!(
            "an earlier delete failed. Finish it with `wsctl teardown --env {env}`, then deploy \
             again"
        ),
        "UPDATE_ROLLBACK_FAILED" => format!(
            "an update failed and so did its rollback. Fix the cause, then run `aws \
             cloudformation continue-update-rollback --stack-name {name}` and deploy again"
        ),
        s if s.ends_with("_IN_PROGRESS") => format!(
            "another operation is still running on it. Wait for it to end (`wsctl status \
             --env {env}`), then deploy again"
        ),
        _ => return Ok(()),
    };
    Err(fail(
        Exit::Failure,
        format!("stack {name} is in {status}: {way_out}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::classify;

    #[test]
    fn stuck_states_name_the_way_out() {
        for ok in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
        ] {
            assert!(check_deployable(ok, "s", "dev").is_ok(), "{ok}");
        }
        let err = check_deployable("ROLLBACK_COMPLETE", "s", "dev").expect_err("stuck");
        assert!(
            err.to_string().contains("wsctl teardown --env dev"),
            "{err}"
        );
        assert_eq!(classify(&err), Exit::Failure);
        let err = check_deployable("UPDATE_IN_PROGRESS", "s", "dev").expect_err("busy");
        assert!(err.to_string().contains("still running"), "{err}");
        let err = check_deployable("UPDATE_ROLLBACK_FAILED", "s", "dev").expect_err("stuck");
        assert!(
            err.to_string().contains("continue-update-rollback"),
            "{err}"
        );
    }
}
