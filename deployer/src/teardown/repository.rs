//! Emptying the environment's ECR repository: CloudFormation cannot delete a repository that
//! still holds images, and a failed delete would leave the stack half-gone.

use crate::aws::AwsResultExt as _;
use aws_sdk_ecr::types::ImageIdentifier;

/// Every image id in `repository`; empty when the repository does not exist.
pub async fn images(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
) -> anyhow::Result<Vec<ImageIdentifier>> {
    let listed: Option<Vec<ImageIdentifier>> = ecr
        .list_images()
        .repository_name(repository)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .or_missing(
            |e| e.is_repository_not_found_exception(),
            || format!("listing images in ECR repository {repository}"),
        )?;
    Ok(listed.unwrap_or_default())
}

/// Deletes `ids` from `repository` (100 per call); returns how many were deleted.
pub async fn delete(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    ids: &[ImageIdentifier],
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for chunk in ids.chunks(100) {
        let out = ecr
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(chunk.to_vec()))
            .send()
            .await
            .aws_context(|| format!("deleting images from ECR repository {repository}"))?;
        deleted += out.image_ids().len();
        // An image that is already gone is what we want; anything else stops the teardown.
        if let Some(failure) = out.failures().iter().find(|f| {
            f.failure_code()
                .is_some_and(|c| c.as_str() != "ImageNotFound")
        }) {
            anyhow::bail!(
                "could not delete an image from ECR repository {repository}: {}",
                failure.failure_reason().unwrap_or("no reason given")
            );
        }
    }
    Ok(deleted)
}
