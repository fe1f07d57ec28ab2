//! Build once, promote: `wsctl deploy --image-from staging` (or `--image URI@sha256:...`)
//! deploys the exact image another environment runs. Its digest is read from that
//! environment's running task definition (the release ledger), checked to be in the source
//! repository (else the deploy is refused before anything changes), and the image is copied
//! into this environment's repository registry to registry: blobs by cross-repository mount
//! (or streamed across when the registry does not mount), then the manifest, byte for byte, so
//! the digest is the same. Nothing is rebuilt and nothing passes through the local engine.
//!
//! The registry side is `oci-client` (the OCI distribution API: blob HEAD, mount, streamed
//! upload, manifest PUT); ECR's own API answers what is in the source repository and the
//! registry's credentials (GetAuthorizationToken).

use std::path::Path;

use anyhow::Context as _;
use aws_sdk_ecr::types::ImageIdentifier;
use futures_util::TryStreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use super::push::{Login, Pushed};
use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::exit::{Exit, fail};
use crate::live_service;
use crate::release::{self, image::ImageRef};
use crate::settings::{self, Environment};

/// Where the image to deploy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// What environment NAME runs now.
    Environment(String),
    /// An image named by digest, `REPOSITORY_URI@sha256:...` (a tag may stand before the `@`).
    Image(String),
}

/// The image to promote, resolved to its digest.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub image: ImageRef,
    pub digest: String,
    /// The tag to give it in the target repository (the source's, else the digest's first 12
    /// hex digits).
    pub tag: String,
    /// The environment it came from, when `--image-from`.
    pub environment: Option<String>,
    /// The commit the source release recorded.
    pub commit: Option<String>,
}

impl Resolved {
    /// The release ledger's record of the origin: `staging@sha256:...` or the image itself.
    pub fn origin(&self) -> String {
        match &self.environment {
            Some(env) => format!("{env}@{}", self.digest),
            None => format!(
                "{}/{}@{}",
                self.image.registry, self.image.repository, self.digest
            ),
        }
    }
}

/// `--image` must name a digest: a tag can move, a digest cannot.
pub fn parse_image(image: &str) -> anyhow::Result<ImageRef> {
    let parsed = ImageRef::parse(image);
    let digest_ok = parsed.digest.as_deref().is_some_and(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !digest_ok || !parsed.is_ecr() {
        return Err(fail(
            Exit::Usage,
            format!(
                "--image {image}: name an ECR image by digest, \
                 ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY@sha256:<64 hex digits> \
                 (`wsctl releases --env NAME` shows the digests)"
            ),
        ));
    }
    Ok(parsed)
}

/// Resolves `source` to a digest that is in its repository, before anything changes: the
/// image environment `NAME` runs now (its service's task definition), or the image given.
pub async fn resolve(
    settings_file: &Path,
    target: &Environment,
    clients: &Clients,
    source: &Source,
) -> anyhow::Result<Resolved> {
    let (image, environment, commit, from) = match source {
        Source::Image(image) => (parse_image(image)?, None, None, "the source".to_owned()),
        Source::Environment(name) => {
            if *name == target.name {
                return Err(fail(
                    Exit::Usage,
                    format!("--image-from {name}: promote from another environment than {name}"),
                ));
            }
            let env = settings::load(settings_file, name)?;
            let (_, live) = live_service::find(clients, &env).await?;
            let revision = live.revision.with_context(|| {
                format!(
                    "environment {name}'s service {} runs no task definition",
                    live.name
                )
            })?;
            let release =
                release::list::describe(&clients.ecs, revision.clone(), revision.to_string())
                    .await?;
            let image = ImageRef::parse(&release.image);
            if !image.is_ecr() {
                return Err(fail(
                    Exit::Failure,
                    format!(
                        "environment {name} runs {}, which is not in an ECR repository",
                        release.image
                    ),
                ));
            }
            (
                image,
                Some(name.clone()),
                release.git_commit,
                format!("{name}'s"),
            )
        }
    };
    let id = match (&image.digest, &image.tag) {
        (Some(digest), _) => ImageIdentifier::builder().image_digest(digest).build(),
        (None, Some(tag)) => ImageIdentifier::builder().image_tag(tag).build(),
        (None, None) => ImageIdentifier::builder().image_tag("latest").build(),
    };
    let out = clients
        .ecr
        .batch_get_image()
        .repository_name(&image.repository)
        .image_ids(id)
        .send()
        .await
        .aws_context(|| format!("looking up the image in repository {}", image.repository))?;
    let Some(found) = out.images().first() else {
        let why = out
            .failures()
            .first()
            .and_then(|f| f.failure_reason())
            .unwrap_or("not found");
        let what = image
            .digest
            .clone()
            .or_else(|| image.tag.clone())
            .unwrap_or_default();
        return Err(fail(
            Exit::Failure,
            format!(
                "refusing to promote {what}: it is not in {from} repository {} ({why}); \
                 nothing was changed",
                image.repository
            ),
        ));
    };
    let digest = found
        .image_id()
        .and_then(|i| i.image_digest())
        .or(image.digest.as_deref())
        .context("ECR named no digest for the source image")?
        .to_owned();
    let tag = image.tag.clone().unwrap_or_else(|| digest_tag(&digest));
    Ok(Resolved {
        image,
        digest,
        tag,
        environment,
        commit,
    })
}

/// The short tag a digest gets when its source had none.
pub fn digest_tag(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256-{}", &hex[..hex.len().min(12)])
}

/// Copies `source` into `repository_uri` (this environment's repository) under `tag`, by
/// digest; the same digest comes out.
pub async fn copy(
    login: &Login,
    source: &Resolved,
    repository_uri: &str,
) -> anyhow::Result<Pushed> {
    let target = ImageRef::parse(repository_uri);
    if target.registry != source.image.registry {
        return Err(fail(
            Exit::Failure,
            format!(
                "the source image is in registry {} and this environment's repository in {}: \
                 promotion copies within one registry (one account and region)",
                source.image.registry, target.registry
            ),
        ));
    }
    let registry = &target.registry;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Https,
        extra_root_certificates: registry_ca(registry),
        ..ClientConfig::default()
    });
    let auth = RegistryAuth::Basic(login.username().to_owned(), login.password().to_owned());
    let from = Reference::with_digest(
        registry.clone(),
        source.image.repository.clone(),
        source.digest.clone(),
    );
    let to = Reference::with_tag(
        registry.clone(),
        target.repository.clone(),
        source.tag.clone(),
    );
    let registry_error = |what: String| {
        move |e: oci_client::errors::OciDistributionError| anyhow::anyhow!("{what}: {e}")
    };
    // Every call below then logs in as it needs (pull from the source, push to the target).
    client.store_auth_if_needed(registry, &auth).await;

    let (manifest, media_type) = pull_manifest(&client, &auth, &from, &source.digest).await?;
    let mut copied = 0;
    let mut existing = 0;
    // An index names one manifest per platform: copy each, then the index.
    let mut manifests = vec![(source.digest.clone(), manifest.clone(), media_type.clone())];
    let document: Value = serde_json::from_slice(&manifest).context("the manifest is not JSON")?;
    for child in document["manifests"].as_array().into_iter().flatten() {
        let digest = child["digest"]
            .as_str()
            .context("a manifest entry without digest")?;
        let child_from = Reference::with_digest(
            registry.clone(),
            source.image.repository.clone(),
            digest.to_owned(),
        );
        let (bytes, media) = pull_manifest(&client, &auth, &child_from, digest).await?;
        manifests.insert(0, (digest.to_owned(), bytes, media));
    }
    for (digest, bytes, media) in &manifests {
        let document: Value = serde_json::from_slice(bytes).context("the manifest is not JSON")?;
        let blobs = document["config"]["digest"].as_str().into_iter().chain(
            document["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["digest"].as_str()),
        );
        for blob in blobs {
            if copy_blob(&client, &from, &to, blob).await? {
                copied += 1;
            } else {
                existing += 1;
            }
        }
        // The index goes last, under the tag; the others by their digest.
        let reference = if digest == &source.digest {
            to.clone()
        } else {
            Reference::with_digest(registry.clone(), target.repository.clone(), digest.clone())
        };
        client
            .push_manifest_raw(
                &reference,
                bytes.clone(),
                media
                    .parse()
                    .with_context(|| format!("media type {media}"))?,
            )
            .await
            .map_err(registry_error(format!(
                "putting manifest {digest} into {}",
                target.repository
            )))?;
    }
    Ok(Pushed {
        image: format!("{repository_uri}:{}", source.tag),
        tag: source.tag.clone(),
        digest: source.digest.clone(),
        layers_pushed: copied,
        layers_existing: existing,
        origin: Some(source.origin()),
    })
}

/// A manifest by digest, checked against it (the registry could serve anything).
async fn pull_manifest(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
    digest: &str,
) -> anyhow::Result<(Vec<u8>, String)> {
    const ACCEPTED: &[&str] = &[
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ];
    let (bytes, served) = client
        .pull_manifest_raw(reference, auth, ACCEPTED)
        .await
        .map_err(|e| anyhow::anyhow!("reading manifest {digest}: {e}"))?;
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let computed = format!("sha256:{hex}");
    if computed != digest || served != digest {
        return Err(fail(
            Exit::Failure,
            format!("the registry served manifest {computed} for {digest}: nothing was copied"),
        ));
    }
    let document: Value = serde_json::from_slice(&bytes).context("the manifest is not JSON")?;
    let media = document["mediaType"].as_str().map_or_else(
        || {
            if document["manifests"].is_array() {
                ACCEPTED[1].to_owned()
            } else {
                ACCEPTED[0].to_owned()
            }
        },
        str::to_owned,
    );
    Ok((bytes.to_vec(), media))
}

/// Makes blob `digest` exist in `to`; whether it had to be copied.
async fn copy_blob(
    client: &Client,
    from: &Reference,
    to: &Reference,
    digest: &str,
) -> anyhow::Result<bool> {
    let failed = |what: &str, e: oci_client::errors::OciDistributionError| {
        anyhow::anyhow!("{what} blob {digest} into {}: {e}", to.repository())
    };
    if client
        .blob_exists(to, digest)
        .await
        .map_err(|e| failed("checking", e))?
    {
        return Ok(false);
    }
    // A mount shares the blob without moving it; a registry that does not mount answers 202
    // (an upload session), and the blob is streamed across instead.
    if client.mount_blob(to, from, digest).await.is_ok()
        && client.blob_exists(to, digest).await.unwrap_or(false)
    {
        return Ok(true);
    }
    let blob = client
        .pull_blob_stream(from, digest)
        .await
        .map_err(|e| failed("reading", e))?;
    let size = blob.content_length;
    let stream = blob
        .stream
        .map_err(|e| oci_client::errors::OciDistributionError::GenericError(Some(e.to_string())));
    client
        .push_blob_stream(to, stream, digest, size)
        .await
        .map_err(|e| failed("copying", e))?;
    Ok(true)
}

/// The CA a registry is trusted with beyond the system's, where Docker keeps it
/// (`/etc/docker/certs.d/HOST/ca.crt`): wsctl's pushes go through the engine, which trusts it,
/// so the copy trusts the same registries the push does.
fn registry_ca(registry: &str) -> Vec<Certificate> {
    let path = Path::new("/etc/docker/certs.d")
        .join(registry)
        .join("ca.crt");
    std::fs::read(path)
        .map(|data| {
            vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            }]
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_named_by_digest_in_ecr() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let ok = format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-staging@{digest}"
        );
        assert_eq!(
            parse_image(&ok).expect("by digest").digest.as_deref(),
            Some(digest.as_str())
        );
        for bad in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-staging:3f2a9c1",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo@sha256:abc",
            "docker.io/library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let err = parse_image(bad).expect_err(bad);
            assert_eq!(crate::exit::classify(&err), Exit::Usage, "{bad}");
            assert!(err.to_string().contains("by digest"), "{err}");
        }
    }

    #[test]
    fn origins_and_fallback_tags() {
        let digest = format!("sha256:{}", "0f".repeat(32));
        let resolved = Resolved {
            image: ImageRef::parse("r.dkr.ecr.x.amazonaws.com/agenticai-websocket-staging:v1"),
            digest: digest.clone(),
            tag: "v1".into(),
            environment: Some("staging".into()),
            commit: None,
        };
        assert_eq!(resolved.origin(), format!("staging@{digest}"));
        assert_eq!(digest_tag(&digest), "sha256-0f0f0f0f0f0f");
    }
}
