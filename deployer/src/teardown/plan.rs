//! What a teardown will delete: every resource of the stack, listed before anything changes.

use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::table;

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub resource_type: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
}

/// The stack's resources, in the order CloudFormation lists them.
pub async fn resources(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<Vec<Resource>> {
    let summaries: Vec<_> = cloudformation
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws_context(|| format!("listing resources of stack {stack}"))?;
    Ok(summaries
        .iter()
        // Entries without a logical id carry nothing to show.
        .filter(|r| r.logical_resource_id().is_some_and(|id| !id.is_empty()))
        .map(|r| Resource {
            resource_type: r.resource_type().unwrap_or_default().to_owned(),
            logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
            physical_id: r
                .physical_resource_id()
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        })
        .collect())
}

/// The physical id of the first resource of `resource_type`.
pub fn physical_id<'a>(resources: &'a [Resource], resource_type: &str) -> Option<&'a str> {
    resources
        .iter()
        .find(|r| r.resource_type == resource_type)
        .and_then(|r| r.physical_id.as_deref())
}

pub fn render(stack: &str, resources: &[Resource], images: usize, revisions: usize) -> String {
    let rows: Vec<Vec<String>> = resources
        .iter()
        .map(|r| {
            vec![
                r.resource_type.clone(),
                r.logical_id.clone(),
                r.physical_id.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    format!(
        "Teardown deletes stack {stack} and everything it owns:\n{}  plus {images} image(s) in its \
         repository and {revisions} registered release(s) of its task definition family.\n",
        table::render("  ", &["TYPE", "LOGICAL ID", "PHYSICAL ID"], &rows)
    )
}
