//! Whether a deploy can go on from the service stack's state, read before anything changes:
//! the states a deploy cannot proceed from, each with the way out (instead of a raw AWS error
//! halfway through).

use aws_sdk_cloudformation::Client;

use crate::exit::{Exit, fail};

/// What the deploy finds.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// No such stack, or one left in REVIEW_IN_PROGRESS by a change set never executed:
    /// the next change set is a CREATE.
    Missing { in_review: bool },
    /// A stack that can be updated.
    Ready,
}

/// Reads the service stack and decides whether a deploy can go on from its state.
pub async fn for_deploy(cfn: &Client, name: &str, env: &str) -> anyhow::Result<Readiness> {
    let Some(stack) = super::describe(cfn, name).await? else {
        return Ok(Readiness::Missing { in_review: false });
    };
    if stack.status == "REVIEW_IN_PROGRESS" {
        return Ok(Readiness::Missing { in_review: true });
    }
    check_deployable(&stack.status, name, env)?;
    Ok(Readiness::Ready)
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
