//! Retiring the releases: wsctl registered them outside the stack, so the stack delete leaves
//! them behind. Deregistered revisions can no longer start tasks.

use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::aws::AwsResultExt as _;
use crate::release::Revision;

/// Deregisters every revision given; returns how many.
pub async fn deregister(
    ecs: &aws_sdk_ecs::Client,
    revisions: Vec<(Revision, String)>,
) -> anyhow::Result<usize> {
    let count = revisions.len();
    futures_util::stream::iter(revisions)
        .map(|(revision, arn)| async move {
            ecs.deregister_task_definition()
                .task_definition(arn)
                .send()
                .await
                .aws_context(|| format!("deregistering task definition {revision}"))
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(count)
}
