//! The releases of a task definition family, newest first, with their image, commit and
//! whether the image is still in the repository.

use aws_sdk_ecs::types::{SortOrder, TaskDefinitionField, TaskDefinitionStatus};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::image::ImageRef;
use super::presence::{self, Presence};
use super::{Revision, commit};
use crate::aws::AwsResultExt as _;
use crate::when;

/// One rollback target.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub revision: i32,
    pub family: String,
    pub task_definition_arn: String,
    pub image: String,
    pub image_tag: Option<String>,
    pub image_digest: Option<String>,
    pub git_commit: Option<String>,
    /// Where a promoted release's image came from (`staging@sha256:...`).
    pub promoted_from: Option<String>,
    #[serde(serialize_with = "serialize_time")]
    pub registered_at: Option<DateTime<Utc>>,
    /// Whether the service runs this revision now.
    pub running: bool,
    pub image_in_repository: Presence,
}

fn serialize_time<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&when::rfc3339(time)),
        None => serializer.serialize_none(),
    }
}

/// The ACTIVE revisions of `family` as (revision, ARN), newest first. `family_prefix` also
/// matches longer family names, so the family is compared exactly.
pub async fn revisions(
    ecs: &aws_sdk_ecs::Client,
    family: &str,
) -> anyhow::Result<Vec<(Revision, String)>> {
    let arns: Vec<String> = ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(TaskDefinitionStatus::Active)
        .sort(SortOrder::Desc)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws_context(|| format!("listing task definitions of family {family}"))?;
    let mut revisions: Vec<(Revision, String)> = arns
        .into_iter()
        .filter_map(|arn| Revision::parse(&arn).map(|rev| (rev, arn)))
        .filter(|(rev, _)| rev.family == family)
        .collect();
    revisions.sort_by_key(|(rev, _)| std::cmp::Reverse(rev.number));
    Ok(revisions)
}

/// The newest `limit` releases of `family` (all with `None`), newest first; `running` names
/// the service's current revision.
pub async fn list(
    ecs: &aws_sdk_ecs::Client,
    ecr: &aws_sdk_ecr::Client,
    family: &str,
    running: Option<&Revision>,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Release>> {
    let mut revisions = revisions(ecs, family).await?;
    if let Some(limit) = limit {
        revisions.truncate(limit);
    }
    let mut releases: Vec<Release> = futures_util::stream::iter(revisions)
        .map(|(revision, arn)| describe(ecs, revision, arn))
        .buffer_unordered(8)
        .try_collect()
        .await?;
    releases.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let images: Vec<String> = releases.iter().map(|r| r.image.clone()).collect();
    let found = presence::check(ecr, &images).await?;
    for release in &mut releases {
        release.running = running.is_some_and(|rev| rev.number == release.revision);
        if let Some(state) = found.get(&release.image) {
            if let Presence::Present(Some(digest)) = state {
                release.image_digest.get_or_insert_with(|| digest.clone());
            }
            release.image_in_repository = state.clone();
        }
    }
    Ok(releases)
}

/// One revision as a release.
pub async fn describe(
    ecs: &aws_sdk_ecs::Client,
    revision: Revision,
    arn: String,
) -> anyhow::Result<Release> {
    let response = ecs
        .describe_task_definition()
        .task_definition(&arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .aws_context(|| format!("describing task definition {revision}"))?;
    let definition = response.task_definition();
    let container = definition.and_then(|d| {
        let containers = d.container_definitions();
        containers
            .iter()
            .find(|c| c.essential() != Some(false))
            .or_else(|| containers.first())
    });
    let image = container
        .and_then(|c| c.image())
        .unwrap_or_default()
        .to_owned();
    let parsed = ImageRef::parse(&image);
    let tags = response
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?, tag.value().unwrap_or_default())));
    let labels = container
        .and_then(|c| c.docker_labels())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let promoted_from = response
        .tags()
        .iter()
        .find(|t| t.key() == Some(crate::deploy::release::TAG_ORIGIN))
        .and_then(|t| t.value())
        .map(str::to_owned);
    let git_commit = commit::find(tags, labels, parsed.tag.as_deref());
    Ok(Release {
        revision: revision.number,
        family: revision.family,
        task_definition_arn: definition
            .and_then(|d| d.task_definition_arn())
            .unwrap_or(&arn)
            .to_owned(),
        image_tag: parsed.tag,
        image_digest: parsed.digest,
        image,
        git_commit,
        promoted_from,
        registered_at: definition
            .and_then(|d| d.registered_at())
            .and_then(when::utc),
        running: false,
        image_in_repository: Presence::Unknown,
    })
}
