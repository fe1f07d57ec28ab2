//! The smoke test's inputs from the environment: its endpoint (the stack's output, unless
//! `--endpoint` names one), a client token signed with its secret, and its publish token.
//!
//! Against an emulator (`--endpoint-url`/`AWS_ENDPOINT_URL` set, so AWS is not AWS's own) the
//! stack's load balancer is a name no DNS resolves and nothing listens behind: without
//! `--endpoint` the smoke test is skipped at once, saying so, instead of hanging or failing on
//! a load balancer that cannot exist.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{Credentials, Endpoint, Report, Verdict};
use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};
use crate::progress::Progress;
use crate::settings::Environment;
use crate::stack;

/// The token's user, as the server logs it.
pub const USER: &str = "wsctl-smoke";
const TTL: Duration = Duration::from_secs(300);

/// The AWS clients the smoke test reads the environment with.
pub struct Aws<'a> {
    pub cfn: &'a aws_sdk_cloudformation::Client,
    pub secrets: &'a aws_sdk_secretsmanager::Client,
    pub region: &'a str,
    /// The AWS endpoint when it is not AWS's own (an emulator).
    pub endpoint_url: Option<&'a str>,
}

impl<'a> Aws<'a> {
    pub fn new(clients: &'a crate::clients::Clients) -> Self {
        Self {
            cfn: &clients.cloudformation,
            secrets: &clients.secretsmanager,
            region: &clients.region,
            endpoint_url: clients.endpoint_url.as_deref(),
        }
    }
}

/// Runs the smoke test of `env` (or says why it cannot run here).
pub async fn check(
    aws: &Aws<'_>,
    env: &Environment,
    endpoint: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<Verdict> {
    let endpoint = match (endpoint, aws.endpoint_url) {
        (Some(given), _) => Endpoint::parse(given)?,
        (None, Some(emulator)) => {
            let reason = format!(
                "AWS is reached at {emulator} (an emulator), whose load balancer no client can \
                 reach; pass --endpoint URL to smoke-test a server you run"
            );
            progress.println(format!("smoke test skipped: {reason}"));
            progress.event("smoke_skipped", serde_json::json!({"reason": reason}));
            return Ok(Verdict::Skipped { reason });
        }
        (None, None) => stack_endpoint(aws, env).await?,
    };
    let credentials = credentials(aws, env).await?;
    let report: Report = super::run(&endpoint, &credentials, progress).await;
    Ok(Verdict::Ran { report })
}

/// The stack's TLS endpoint when it has a certificate, else its plain one.
async fn stack_endpoint(aws: &Aws<'_>, env: &Environment) -> anyhow::Result<Endpoint> {
    let stack = stack::describe(aws.cfn, &env.stack_name)
        .await?
        .ok_or_else(|| {
            fail(
                Exit::NotFound,
                format!(
                    "environment '{}' not found: stack {} does not exist in {}",
                    env.name, env.stack_name, aws.region
                ),
            )
        })?;
    let url = match stack.outputs.get("SecureWebSocketEndpoint") {
        Some(url) => url.as_str(),
        None => stack.output("WebSocketEndpoint", &env.stack_name)?,
    };
    Endpoint::parse(url)
}

async fn credentials(aws: &Aws<'_>, env: &Environment) -> anyhow::Result<Credentials> {
    let signer = crate::token::signer(aws.cfn, aws.secrets, env, aws.region)
        .await
        .context("minting the smoke test's client token")?;
    let project = format!("wsctl-smoke-{:08x}", fastrand::u32(..));
    let claims = signer.claims(
        USER,
        vec![project.clone()],
        Vec::new(),
        TTL,
        SystemTime::now(),
    );
    Ok(Credentials {
        token: signer.sign(&claims)?,
        user: USER.to_owned(),
        project,
        publish_token: publish_token(aws, env).await?,
    })
}

/// The environment's `PUBLISH_TOKEN`: `WSCTL_PUBLISH_TOKEN` when set, else the secret named by
/// the stack parameter `PublishTokenSecretArn`; or why the smoke test has none to publish with.
async fn publish_token(aws: &Aws<'_>, env: &Environment) -> anyhow::Result<Result<String, String>> {
    // The agents' token where the runner has it (a CI secret), e.g. when the stack keeps it
    // in SSM, or for a server run locally.
    if let Ok(token) = std::env::var("WSCTL_PUBLISH_TOKEN")
        && !token.is_empty()
    {
        return Ok(Ok(token));
    }
    let stack = stack::describe(aws.cfn, &env.stack_name)
        .await?
        .unwrap_or_default();
    let arn = stack
        .parameters
        .get("PublishTokenSecretArn")
        .filter(|arn| !arn.is_empty());
    let Some(arn) = arn else {
        return Ok(Err(
            "the environment has no publish token (PublishTokenSecretArn is empty): publishing \
             is off"
                .into(),
        ));
    };
    if !arn.contains(":secretsmanager:") {
        return Ok(Err(format!(
            "the publish token is the SSM parameter {arn}, which the smoke test does not read; \
             keep it in Secrets Manager to have publishing checked"
        )));
    }
    let value = aws
        .secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .aws_context(|| format!("reading the publish token from {arn}"))?;
    Ok(value
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| format!("the secret {arn} holds no string")))
}
