//! The push to ECR: credentials from GetAuthorizationToken (base64 `user:password` for the
//! registry at `proxyEndpoint`), the image tagged with its immutable tag, pushed with progress,
//! and the manifest digest recorded (the task definition's tags keep it). The repository's tags
//! are immutable, so there is no `latest`, and a tag already there is reused when it names the
//! same image (`existing`). A push of an unchanged image uploads no layer.

use anyhow::Context as _;
use base64::Engine as _;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt as _;
use serde::Serialize;

use super::existing::{self, Decision};
use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::progress::{Progress, Step};

#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// `repository-uri:immutable-tag`, what task definitions name.
    pub image: String,
    pub tag: String,
    /// The manifest digest, `sha256:...`.
    pub digest: String,
    pub layers_pushed: usize,
    pub layers_existing: usize,
    /// For a promoted image, where it came from (the release ledger's record).
    pub origin: Option<String>,
}

/// Registry credentials from ECR.
pub struct Login {
    credentials: DockerCredentials,
    pub registry: String,
}

impl Login {
    /// For registry clients other than the engine (the promotion's copy).
    pub fn username(&self) -> &str {
        self.credentials.username.as_deref().unwrap_or_default()
    }

    pub fn password(&self) -> &str {
        self.credentials.password.as_deref().unwrap_or_default()
    }
}

/// GetAuthorizationToken, decoded.
pub async fn ecr_login(ecr: &aws_sdk_ecr::Client) -> anyhow::Result<Login> {
    let out = ecr
        .get_authorization_token()
        .send()
        .await
        .aws_context(|| "getting ECR credentials (GetAuthorizationToken)")?;
    let data = out
        .authorization_data()
        .first()
        .context("ECR returned no authorization data")?;
    let token = data.authorization_token().unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .context("ECR authorization token is not base64")?;
    let decoded = String::from_utf8(decoded).context("ECR authorization token is not text")?;
    let (username, password) = decoded
        .split_once(':')
        .context("ECR authorization token is not user:password")?;
    let endpoint = data.proxy_endpoint().unwrap_or_default().to_owned();
    let registry = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    Ok(Login {
        credentials: DockerCredentials {
            username: Some(username.to_owned()),
            password: Some(password.to_owned()),
            serveraddress: Some(endpoint),
            ..Default::default()
        },
        registry,
    })
}

/// The image to push and where: `repository` is the URI, `repository_name` its ECR name.
pub struct Source<'a> {
    pub local_ref: &'a str,
    /// The local image ID, compared with what the repository may already hold under the tag.
    pub image_id: &'a str,
    pub repository: &'a str,
    pub repository_name: &'a str,
    pub tag: &'a str,
}

/// Tags `local_ref` as `repository:tag` and pushes it, unless the tag already names it.
pub async fn push(
    docker: &Docker,
    ecr: &aws_sdk_ecr::Client,
    source: &Source<'_>,
    login: &Login,
    progress: &Progress,
    interrupt: &Interrupt,
) -> anyhow::Result<Pushed> {
    let Source {
        local_ref,
        repository,
        tag,
        ..
    } = *source;
    let step = progress.step("push image");
    let image = format!("{repository}:{tag}");
    let found = existing::lookup(ecr, source.repository_name, tag).await?;
    if let Decision::Reuse { digest } = existing::decide(found, source.image_id, repository, tag)? {
        step.finish(format!("{image} already in the repository ({digest})"));
        return Ok(Pushed {
            image,
            tag: tag.to_owned(),
            digest,
            layers_pushed: 0,
            layers_existing: 0,
            origin: None,
        });
    }
    docker
        .tag_image(
            local_ref,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(repository)
                    .tag(tag)
                    .build(),
            ),
        )
        .await
        .with_context(|| format!("tagging {local_ref} as {repository}:{tag}"))?;
    let immutable = tokio::select! {
        r = push_tag(docker, repository, tag, login, &step) => r?,
        () = interrupt.wait() => {
            step.fail("interrupted");
            return Err(fail(Exit::Interrupted, "interrupted during the push; the service was not changed"));
        }
    };
    let digest = immutable.digest.clone().ok_or_else(|| {
        fail(
            Exit::Failure,
            format!("the registry reported no digest for {image}"),
        )
    })?;
    step.finish(format!(
        "{image} ({} layer(s) pushed, {} already in the registry)",
        immutable.pushed, immutable.existing
    ));
    Ok(Pushed {
        image,
        tag: tag.to_owned(),
        digest,
        layers_pushed: immutable.pushed,
        layers_existing: immutable.existing,
        origin: None,
    })
}

#[derive(Default)]
struct Counts {
    pushed: usize,
    existing: usize,
    digest: Option<String>,
}

async fn push_tag(
    docker: &Docker,
    repository: &str,
    tag: &str,
    login: &Login,
    step: &Step,
) -> anyhow::Result<Counts> {
    let mut stream = docker.push_image(
        repository,
        Some(PushImageOptionsBuilder::default().tag(tag).build()),
        Some(login.credentials.clone()),
    );
    let mut counts = Counts::default();
    while let Some(item) = stream.next().await {
        let info =
            item.map_err(|err| push_error(repository, tag, &login.registry, &err.to_string()))?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(push_error(repository, tag, &login.registry, &message));
        }
        let Some(status) = info.status else { continue };
        match status.as_str() {
            "Pushed" => {
                counts.pushed += 1;
                step.detail(format!("{tag}: layer pushed"));
            }
            "Layer already exists" => counts.existing += 1,
            s if s.starts_with("Mounted from") => counts.existing += 1,
            "Pushing" => {
                if let Some(p) = info.progress_detail {
                    let (cur, total) = (p.current.unwrap_or(0), p.total.unwrap_or(0));
                    step.set_message(format!(
                        "{tag}: pushing a layer, {} / {} KiB",
                        cur / 1024,
                        total / 1024
                    ));
                }
            }
            s => {
                if let Some(digest) = digest_of(s) {
                    counts.digest = Some(digest);
                }
            }
        }
    }
    Ok(counts)
}

fn push_error(repository: &str, tag: &str, registry: &str, message: &str) -> anyhow::Error {
    fail(
        Exit::Failure,
        format!(
            "pushing {repository}:{tag} failed: {message} (registry {registry}; check that \
             the repository exists and the ECR credentials are valid)"
        ),
    )
}

/// The digest in the push's last status line: "<tag>: digest: sha256:... size: 1234".
fn digest_of(status: &str) -> Option<String> {
    let rest = status.split_once("digest: ")?.1;
    let digest = rest.split_whitespace().next()?;
    digest.starts_with("sha256:").then(|| digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_digest_from_the_final_status() {
        assert_eq!(
            digest_of("3f2a9c1: digest: sha256:abcd1234 size: 739").as_deref(),
            Some("sha256:abcd1234")
        );
        assert_eq!(digest_of("Preparing"), None);
    }
}
