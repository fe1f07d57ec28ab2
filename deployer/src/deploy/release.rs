//! The release, ecspresso-style: the stack owns the infrastructure and the first task
//! definition; every deploy takes the revision the service runs now and, when its image is
//! not the one just pushed, registers a copy naming the new immutable image (with the commit,
//! tag and digest in its tags) and points the service at it. The same image means no new
//! revision and no service update: a deploy with nothing changed changes nothing.

use anyhow::Context as _;
use aws_sdk_ecs::types::{Tag, TaskDefinition, TaskDefinitionField};
use serde::Serialize;

use super::image::push::Pushed;
use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};
use crate::live_service::{primary_deployment, require_service};
use crate::progress::Progress;
use crate::rollout::verdict::short_td;

/// Task definition tags wsctl writes (read by `wsctl releases`).
pub const TAG_COMMIT: &str = "wsctl:git-commit";
pub const TAG_IMAGE_TAG: &str = "wsctl:image-tag";
pub const TAG_DIGEST: &str = "wsctl:image-digest";
/// Where a promoted image came from: `ENV@sha256:...` (`deploy --image-from`) or the image.
pub const TAG_ORIGIN: &str = "wsctl:promoted-from";

#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub task_definition_arn: String,
    /// `family:revision`.
    pub revision: String,
    /// Whether this deploy registered the revision (false: the service already ran the image).
    pub registered: bool,
    /// Whether UpdateService was called (new revision or scaling up from zero).
    pub service_updated: bool,
    /// The deployment to watch: the one UpdateService started, else the current one.
    pub deployment_id: String,
    /// The task definition the service ran before this release, when it ran another one:
    /// what the rollout wait puts back if the release fails fast.
    pub previous_task_definition: Option<String>,
}

/// Makes the service run `pushed`, registering a revision only when the image changed.
pub async fn roll_out(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service_name: &str,
    desired_count: u32,
    pushed: &Pushed,
    commit: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<Release> {
    let step = progress.step("release");
    let service = require_service(ecs, cluster, service_name).await?;
    let current = service
        .task_definition()
        .context("the service names no task definition")?
        .to_owned();
    let described = ecs
        .describe_task_definition()
        .task_definition(&current)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .aws_context(|| format!("describing task definition {current}"))?;
    let td = described
        .task_definition()
        .with_context(|| format!("task definition {current} not found"))?;
    let tags = described.tags();
    let container = release_container(td, &pushed.image)?;
    let running_image = td.container_definitions()[container]
        .image()
        .unwrap_or_default()
        .to_owned();
    let recorded_digest = tag_value(tags, TAG_DIGEST);
    let same = running_image == pushed.image || recorded_digest == Some(pushed.digest.as_str());
    let current_arn = td.task_definition_arn().unwrap_or(&current).to_owned();
    // A service at zero (just created, or a first deploy that stopped early) is scaled up.
    let scale_to = (service.desired_count() == 0 && desired_count > 0).then_some(desired_count);

    let (arn, registered, previous_task_definition) = if same {
        if recorded_digest.is_none() {
            // The stack's revision: record what it runs, so later deploys can compare digests.
            let _ = ecs
                .tag_resource()
                .resource_arn(&current_arn)
                .set_tags(Some(release_tags(pushed, commit)))
                .send()
                .await;
        }
        (current_arn, false, None)
    } else {
        (
            register_copy(ecs, td, container, tags, pushed, commit).await?,
            true,
            Some(current_arn),
        )
    };

    let service_updated = registered || scale_to.is_some();
    let deployment_id = if service_updated {
        let mut update = ecs
            .update_service()
            .cluster(cluster)
            .service(service_name)
            .task_definition(&arn);
        if let Some(count) = scale_to {
            update = update.desired_count(count as i32);
        }
        let out = update
            .send()
            .await
            .aws_context(|| format!("updating service {service_name} to {}", short_td(&arn)))?;
        primary_deployment(out.service())
    } else {
        primary_deployment(Some(&service))
    }
    .ok_or_else(|| {
        fail(
            Exit::Failure,
            format!("service {service_name} reports no PRIMARY deployment"),
        )
    })?;

    let revision = short_td(&arn).to_owned();
    let what = match (registered, scale_to) {
        (true, Some(n)) => format!("registered {revision}; service scaled to {n}"),
        (true, None) => format!("registered {revision}; service updated"),
        (false, Some(n)) => format!("{revision} already names the image; service scaled to {n}"),
        (false, None) => format!("unchanged: {revision} already runs this image"),
    };
    step.finish(what);
    Ok(Release {
        task_definition_arn: arn,
        revision,
        registered,
        service_updated,
        deployment_id,
        previous_task_definition,
    })
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn release_tags(pushed: &Pushed, commit: Option<&str>) -> Vec<Tag> {
    let mut tags = vec![
        Tag::builder().key(TAG_IMAGE_TAG).value(&pushed.tag).build(),
        Tag::builder().key(TAG_DIGEST).value(&pushed.digest).build(),
    ];
    if let Some(commit) = commit {
        tags.push(Tag::builder().key(TAG_COMMIT).value(commit).build());
    }
    if let Some(origin) = &pushed.origin {
        tags.push(Tag::builder().key(TAG_ORIGIN).value(origin).build());
    }
    tags
}

/// The container that runs our image: the one from the same repository, else the only one.
fn release_container(td: &TaskDefinition, image: &str) -> anyhow::Result<usize> {
    let repository = |i: &str| {
        let name = i.split('@').next().unwrap_or(i);
        let slash = name.rfind('/').map_or(0, |s| s + 1);
        match name[slash..].rfind(':') {
            Some(colon) => name[..slash + colon].to_owned(),
            None => name.to_owned(),
        }
    };
    let ours = repository(image);
    let containers = td.container_definitions();
    if let Some(i) = containers
        .iter()
        .position(|c| c.image().is_some_and(|i| repository(i) == ours))
    {
        return Ok(i);
    }
    if containers.len() == 1 {
        return Ok(0);
    }
    Err(fail(
        Exit::Failure,
        format!(
            "task definition {} has {} containers and none runs an image of {ours}",
            td.family().unwrap_or_default(),
            containers.len()
        ),
    ))
}

/// Registers a copy of `td` whose release container runs `pushed.image`.
async fn register_copy(
    ecs: &aws_sdk_ecs::Client,
    td: &TaskDefinition,
    container: usize,
    tags: &[Tag],
    pushed: &Pushed,
    commit: Option<&str>,
) -> anyhow::Result<String> {
    let mut containers = td.container_definitions().to_vec();
    containers[container].image = Some(pushed.image.clone());
    let mut new_tags: Vec<Tag> = tags
        .iter()
        .filter(|t| {
            t.key().is_some_and(|k| {
                !k.starts_with("aws:")
                    && ![TAG_COMMIT, TAG_IMAGE_TAG, TAG_DIGEST, TAG_ORIGIN].contains(&k)
            })
        })
        .cloned()
        .collect();
    new_tags.extend(release_tags(pushed, commit));
    let family = td.family().context("task definition without a family")?;
    let out = ecs
        .register_task_definition()
        .family(family)
        .set_container_definitions(Some(containers))
        .set_task_role_arn(td.task_role_arn().map(str::to_owned))
        .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
        .set_network_mode(td.network_mode().cloned())
        .set_volumes(Some(td.volumes().to_vec()).filter(|v| !v.is_empty()))
        .set_placement_constraints(
            Some(td.placement_constraints().to_vec()).filter(|v| !v.is_empty()),
        )
        .set_requires_compatibilities(
            Some(td.requires_compatibilities().to_vec()).filter(|v| !v.is_empty()),
        )
        .set_cpu(td.cpu().map(str::to_owned))
        .set_memory(td.memory().map(str::to_owned))
        .set_pid_mode(td.pid_mode().cloned())
        .set_ipc_mode(td.ipc_mode().cloned())
        .set_proxy_configuration(td.proxy_configuration().cloned())
        .set_ephemeral_storage(td.ephemeral_storage().cloned())
        .set_runtime_platform(td.runtime_platform().cloned())
        .set_tags(Some(new_tags))
        .send()
        .await
        .aws_context(|| format!("registering a new revision of {family}"))?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned)
        .context("RegisterTaskDefinition returned no ARN")
}
