//! The repository's tags are immutable (ImageTagMutability: IMMUTABLE): a release tag is pushed
//! once. A deploy that builds the same commit again finds its tag already there; it reuses it
//! when it names the same image (the manifest's config digest is the local image ID) and
//! refuses, naming both, when it names another one: ECR would reject the push anyway.

use aws_sdk_ecr::types::ImageIdentifier;

use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};

/// What the repository already holds under a tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    /// The manifest digest, what a task definition pinned to the tag runs.
    pub digest: String,
    /// The image config's digest (the image ID), when the manifest names one.
    pub config_digest: Option<String>,
}

/// What to do with the push of `tag`.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// The tag is new: push it.
    Push,
    /// The tag already names this very image: nothing to push.
    Reuse { digest: String },
}

/// The image the repository holds under `tag`, if any (BatchGetImage).
pub async fn lookup(
    ecr: &aws_sdk_ecr::Client,
    repository_name: &str,
    tag: &str,
) -> anyhow::Result<Option<Existing>> {
    let out = ecr
        .batch_get_image()
        .repository_name(repository_name)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .aws_context(|| format!("looking up tag {tag} in ECR repository {repository_name}"))?;
    let Some(image) = out.images().first() else {
        // A missing tag comes back as a failure entry (ImageNotFound), not as an error.
        return Ok(None);
    };
    let digest = image
        .image_id()
        .and_then(|id| id.image_digest())
        .unwrap_or_default()
        .to_owned();
    let config_digest = image.image_manifest().and_then(config_digest);
    Ok(Some(Existing {
        digest,
        config_digest,
    }))
}

/// `config.digest` of a single-image manifest (Docker v2 or OCI).
fn config_digest(manifest: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(manifest).ok()?;
    value["config"]["digest"].as_str().map(str::to_owned)
}

/// Push, reuse, or refuse: `image_id` is the local image's ID (`sha256:` of its config).
pub fn decide(
    existing: Option<Existing>,
    image_id: &str,
    repository: &str,
    tag: &str,
) -> anyhow::Result<Decision> {
    let Some(existing) = existing else {
        return Ok(Decision::Push);
    };
    if existing.config_digest.as_deref() == Some(image_id) && !existing.digest.is_empty() {
        return Ok(Decision::Reuse {
            digest: existing.digest,
        });
    }
    Err(fail(
        Exit::Failure,
        format!(
            "{repository}:{tag} already exists and names another image ({}, config {}; this \
             build is {image_id}), and the repository's tags are immutable. The same commit \
             built differently (another toolchain or base): commit the change that made the \
             difference so the release gets a tag of its own, or run the existing release \
             again with `wsctl rollback --revision N` (see `wsctl releases`)",
            existing.digest,
            existing.config_digest.as_deref().unwrap_or("unknown"),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
    use aws_sdk_ecr::types::{Image, ImageFailure, ImageFailureCode};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-dev";
    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1234,"digest":"sha256:c0ffee"},"layers":[]}"#;

    fn tagged(tag: &str) -> BatchGetImageOutput {
        BatchGetImageOutput::builder()
            .images(
                Image::builder()
                    .repository_name("agenticai-websocket-dev")
                    .image_id(
                        ImageIdentifier::builder()
                            .image_tag(tag)
                            .image_digest("sha256:manifest1")
                            .build(),
                    )
                    .image_manifest(MANIFEST)
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn same_image_under_the_tag_is_reused_with_its_digest() {
        let rule = mock!(aws_sdk_ecr::Client::batch_get_image)
            .match_requests(|r| {
                r.image_ids().first().and_then(|i| i.image_tag()) == Some("3f2a9c1")
                    && r.repository_name() == Some("agenticai-websocket-dev")
            })
            .then_output(|| tagged("3f2a9c1"));
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let found = lookup(&ecr, "agenticai-websocket-dev", "3f2a9c1")
            .await
            .expect("lookup");
        let decision = decide(found, "sha256:c0ffee", REPO, "3f2a9c1").expect("same image");
        assert_eq!(
            decision,
            Decision::Reuse {
                digest: "sha256:manifest1".into()
            }
        );
    }

    #[tokio::test]
    async fn another_image_under_the_tag_is_refused_naming_both() {
        let rule = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| tagged("3f2a9c1"));
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let found = lookup(&ecr, "agenticai-websocket-dev", "3f2a9c1")
            .await
            .expect("lookup");
        let err = decide(found, "sha256:beef", REPO, "3f2a9c1").expect_err("another image");
        let text = err.to_string();
        assert!(
            text.contains("already exists and names another image"),
            "{text}"
        );
        assert!(
            text.contains("sha256:manifest1") && text.contains("sha256:beef"),
            "{text}"
        );
        assert!(text.contains("immutable"), "{text}");
        assert_eq!(crate::exit::classify(&err), Exit::Failure);
    }

    #[tokio::test]
    async fn a_new_tag_is_pushed() {
        let rule = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| {
            BatchGetImageOutput::builder()
                .failures(
                    ImageFailure::builder()
                        .image_id(ImageIdentifier::builder().image_tag("3f2a9c1").build())
                        .failure_code(ImageFailureCode::ImageNotFound)
                        .failure_reason("Requested image not found")
                        .build(),
                )
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let found = lookup(&ecr, "agenticai-websocket-dev", "3f2a9c1")
            .await
            .expect("lookup");
        assert_eq!(found, None);
        assert_eq!(
            decide(found, "sha256:c0ffee", REPO, "3f2a9c1").expect("push"),
            Decision::Push
        );
    }
}
