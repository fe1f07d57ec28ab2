//! Create or update the service stack through a change set, so the operator sees what will
//! change (add, modify, replace, remove, per resource) before anything does. An empty change
//! set means the stack is already as asked: success, not an error.

use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, ExecutionStatus, Parameter, Tag,
};
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};

const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);

/// One resource change, as shown before executing.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceChange {
    /// Add, Modify, Remove, Import, Dynamic.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For Modify: True, False or Conditional (CloudFormation's words).
    pub replacement: Option<String>,
}

impl ResourceChange {
    /// "+ Add    AWS::ECS::Service  Service" and "~ Modify ... (replacement)".
    pub fn line(&self) -> String {
        let mark = match self.action.as_str() {
            "Add" => '+',
            "Remove" => '-',
            "Modify" => '~',
            _ => '*',
        };
        let replace = match self.replacement.as_deref() {
            Some("True") => "  (REPLACED)",
            Some("Conditional") => "  (may be replaced)",
            _ => "",
        };
        format!(
            "{mark} {:<7} {:<45} {}{replace}",
            self.action, self.resource_type, self.logical_id
        )
    }
}

/// A change set that is ready to execute.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub id: String,
    pub stack_name: String,
    pub changes: Vec<ResourceChange>,
}

/// What creating a change set gave.
#[derive(Debug)]
pub enum Planned {
    /// Something to execute.
    Ready(ChangeSet),
    /// CloudFormation found nothing to change; the change set was deleted again.
    NoChanges,
}

/// What the stack should become.
pub struct Request<'a> {
    pub stack_name: &'a str,
    pub kind: ChangeSetType,
    pub template_body: &'a str,
    pub parameters: Vec<Parameter>,
    pub tags: Vec<Tag>,
    /// The service role CloudFormation acts as (least privilege for CI: docs/ci.md).
    pub role_arn: Option<&'a str>,
}

/// A parameter with a value.
pub fn param(key: &str, value: impl Into<String>) -> Parameter {
    Parameter::builder()
        .parameter_key(key)
        .parameter_value(value)
        .build()
}

/// A parameter that keeps the stack's current value.
pub fn keep(key: &str) -> Parameter {
    Parameter::builder()
        .parameter_key(key)
        .use_previous_value(true)
        .build()
}

/// Creates a change set and waits until CloudFormation has computed it.
pub async fn plan(cfn: &Client, req: Request<'_>) -> anyhow::Result<Planned> {
    let name = format!("wsctl-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f"));
    let created = cfn
        .create_change_set()
        .stack_name(req.stack_name)
        .change_set_name(&name)
        .change_set_type(req.kind.clone())
        .template_body(req.template_body)
        .set_parameters(Some(req.parameters))
        .set_tags(Some(req.tags))
        .set_role_arn(req.role_arn.map(str::to_owned))
        .capabilities(Capability::CapabilityNamedIam)
        .description("wsctl deploy")
        .send()
        .await
        .aws_context(|| format!("creating a change set for stack {}", req.stack_name))?;
    let id = created.id().unwrap_or(&name).to_owned();

    let mut interval = FIRST_POLL;
    loop {
        let (status, reason, execution, changes) = describe(cfn, &id).await?;
        match status {
            ChangeSetStatus::CreateComplete => {
                if execution != Some(ExecutionStatus::Available) {
                    return Err(fail(
                        Exit::Failure,
                        format!(
                            "change set {name} for stack {} cannot be executed (execution \
                             status {})",
                            req.stack_name,
                            execution.as_ref().map_or("unknown", |e| e.as_str())
                        ),
                    ));
                }
                return Ok(Planned::Ready(ChangeSet {
                    id,
                    stack_name: req.stack_name.to_owned(),
                    changes,
                }));
            }
            ChangeSetStatus::Failed => {
                let reason = reason.unwrap_or_default();
                if is_empty_change_set(&reason) {
                    delete(cfn, &id).await;
                    return Ok(Planned::NoChanges);
                }
                delete(cfn, &id).await;
                return Err(fail(
                    Exit::Failure,
                    format!(
                        "CloudFormation rejected the change to stack {}: {reason}",
                        req.stack_name
                    ),
                ));
            }
            _ => {}
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(MAX_POLL);
    }
}

/// CloudFormation's ways of saying "nothing to do".
pub fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

type Described = (
    ChangeSetStatus,
    Option<String>,
    Option<ExecutionStatus>,
    Vec<ResourceChange>,
);

async fn describe(cfn: &Client, id: &str) -> anyhow::Result<Described> {
    let mut changes = Vec::new();
    let mut token = None;
    loop {
        let out = cfn
            .describe_change_set()
            .change_set_name(id)
            .set_next_token(token)
            .send()
            .await
            .aws_context(|| "reading the change set")?;
        for change in out.changes() {
            let Some(rc) = change.resource_change() else {
                continue;
            };
            changes.push(ResourceChange {
                action: rc.action().map_or("", |a| a.as_str()).to_owned(),
                logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                replacement: rc.replacement().map(|r| r.as_str().to_owned()),
            });
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok((
                out.status()
                    .cloned()
                    .unwrap_or(ChangeSetStatus::CreatePending),
                out.status_reason().map(str::to_owned),
                out.execution_status().cloned(),
                changes,
            ));
        }
    }
}

/// Starts executing a change set; watch the stack with `events::watch` afterwards.
pub async fn execute(cfn: &Client, set: &ChangeSet) -> anyhow::Result<()> {
    cfn.execute_change_set()
        .change_set_name(&set.id)
        .send()
        .await
        .aws_context(|| format!("executing the change set for stack {}", set.stack_name))?;
    Ok(())
}

/// Deletes a change set that will not be executed; best effort (it expires anyway).
pub async fn delete(cfn: &Client, id: &str) {
    let _ = cfn.delete_change_set().change_set_name(id).send().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_change_sets_are_recognised_in_both_wordings() {
        assert!(is_empty_change_set(
            "The submitted information didn't contain changes. Submit different information \
             to create a change set."
        ));
        assert!(is_empty_change_set("No updates are to be performed."));
        assert!(!is_empty_change_set("Template format error"));
    }

    #[test]
    fn change_lines_mark_replacements() {
        let change = ResourceChange {
            action: "Modify".into(),
            logical_id: "LoadBalancer".into(),
            resource_type: "AWS::ElasticLoadBalancingV2::LoadBalancer".into(),
            replacement: Some("True".into()),
        };
        let line = change.line();
        assert!(line.starts_with("~ Modify"), "{line}");
        assert!(line.ends_with("(REPLACED)"), "{line}");
    }
}
