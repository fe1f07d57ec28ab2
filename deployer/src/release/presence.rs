//! Whether release images are still in ECR: the lifecycle policy or a person may have deleted
//! them, and a rollback to a missing image would only fail later, inside ECS.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ecr::types::ImageIdentifier;
use serde::Serialize;

use super::image::ImageRef;
use crate::aws::AwsResultExt as _;

/// What ECR says about one image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "digest")]
pub enum Presence {
    /// In the repository, with its digest.
    Present(Option<String>),
    /// Not in the repository (expired or deleted).
    Missing,
    /// Not an ECR image, so it cannot be checked here.
    Unknown,
}

/// Looks up every image in one BatchGetImage call per repository (which, unlike
/// DescribeImages, reports missing images one by one instead of failing the call).
pub async fn check(
    ecr: &aws_sdk_ecr::Client,
    images: &[String],
) -> anyhow::Result<HashMap<String, Presence>> {
    let mut by_repository: BTreeMap<String, Vec<(String, ImageRef)>> = BTreeMap::new();
    let mut result = HashMap::new();
    for image in images {
        let parsed = ImageRef::parse(image);
        if parsed.is_ecr() && (parsed.tag.is_some() || parsed.digest.is_some()) {
            by_repository
                .entry(parsed.repository.clone())
                .or_default()
                .push((image.clone(), parsed));
        } else {
            result.insert(image.clone(), Presence::Unknown);
        }
    }
    let lookups = by_repository
        .into_iter()
        .map(|(repository, images)| check_repository(ecr, repository, images));
    for found in futures_util::future::try_join_all(lookups).await? {
        result.extend(found);
    }
    Ok(result)
}

async fn check_repository(
    ecr: &aws_sdk_ecr::Client,
    repository: String,
    images: Vec<(String, ImageRef)>,
) -> anyhow::Result<Vec<(String, Presence)>> {
    let mut out = Vec::with_capacity(images.len());
    // BatchGetImage takes at most 100 ids.
    for chunk in images.chunks(100) {
        let ids: Vec<ImageIdentifier> = chunk.iter().map(|(_, image)| identifier(image)).collect();
        let response = ecr
            .batch_get_image()
            .repository_name(&repository)
            .set_image_ids(Some(ids))
            .send()
            .await
            .or_missing(
                |e| e.is_repository_not_found_exception(),
                || format!("looking up images in ECR repository {repository}"),
            )?;
        let Some(response) = response else {
            out.extend(
                chunk
                    .iter()
                    .map(|(name, _)| (name.clone(), Presence::Missing)),
            );
            continue;
        };
        for (name, image) in chunk {
            let found = response.images().iter().find_map(|found| {
                let id = found.image_id()?;
                let matches = match (&image.digest, &image.tag) {
                    (Some(digest), _) => id.image_digest() == Some(digest.as_str()),
                    (None, Some(tag)) => id.image_tag() == Some(tag.as_str()),
                    (None, None) => false,
                };
                matches.then(|| id.image_digest().map(str::to_owned))
            });
            out.push((
                name.clone(),
                found.map_or(Presence::Missing, Presence::Present),
            ));
        }
    }
    Ok(out)
}

fn identifier(image: &ImageRef) -> ImageIdentifier {
    let id = ImageIdentifier::builder();
    match (&image.digest, &image.tag) {
        (Some(digest), _) => id.image_digest(digest),
        (None, Some(tag)) => id.image_tag(tag),
        (None, None) => id,
    }
    .build()
}
