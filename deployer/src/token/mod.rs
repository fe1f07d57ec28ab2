//! Client tokens for operators, smoke tests and the demo (`wsctl token`): an HS256 JWT signed
//! with the environment's generated secret (stack output `JwtSecretArn`, Secrets Manager),
//! with the claims the server grants from (`sub`, `projects`, `queues`) and the issuer and
//! audience the stack makes the server check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};
use crate::settings::Environment;

/// The server refuses shorter HS256 keys.
pub const MIN_SECRET_BYTES: usize = 32;
/// Tokens from this command are for people and smoke tests: short-lived by design.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The agent queues a token can grant (or "*").
pub const QUEUES: [&str; 5] = ["pm", "dev", "qa", "ops", "*"];

/// What the server reads from a token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub projects: Vec<String>,
    pub queues: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The signing key of an environment and the checks its server makes.
pub struct Signer {
    pub secret_arn: String,
    secret: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("secret_arn", &self.secret_arn)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Reads the environment's stack and its signing secret, or says why there is none.
pub async fn signer(
    cfn: &aws_sdk_cloudformation::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    env: &Environment,
    region: &str,
) -> anyhow::Result<Signer> {
    let name = &env.stack_name;
    let Some(stack) = crate::stack::describe(cfn, name).await? else {
        return Err(fail(
            Exit::NotFound,
            format!(
                "environment '{}' not found: stack {name} does not exist in {region}; deploy it \
                 with `wsctl deploy --env {}`",
                env.name, env.name
            ),
        ));
    };
    let parameter = |key: &str| stack.parameters.get(key).filter(|v| !v.is_empty()).cloned();
    let Some(secret_arn) = stack.outputs.get("JwtSecretArn").cloned() else {
        if let Some(jwks) = parameter("JwtJwksUrl") {
            return Err(fail(
                Exit::Failure,
                format!(
                    "environment '{}' accepts tokens from the identity provider of {jwks} \
                     (jwt.jwks_url in wsctl.yaml), so it has no signing secret to mint one \
                     with: get the token from that provider",
                    env.name
                ),
            ));
        }
        return Err(fail(
            Exit::Failure,
            format!(
                "stack {name} has no output JwtSecretArn: it predates the generated signing \
                 secret; update it with `wsctl deploy --env {}`",
                env.name
            ),
        ));
    };
    let secret = read_secret(secrets, &secret_arn, env).await?;
    Ok(Signer {
        secret_arn,
        secret,
        issuer: parameter("JwtIssuer"),
        audience: parameter("JwtAudience"),
    })
}

async fn read_secret(
    secrets: &aws_sdk_secretsmanager::Client,
    arn: &str,
    env: &Environment,
) -> anyhow::Result<String> {
    let out = secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .or_missing(
            |e| e.is_resource_not_found_exception(),
            || format!("reading the signing secret {arn}"),
        )?;
    let Some(out) = out else {
        return Err(fail(
            Exit::NotFound,
            format!(
                "the signing secret {arn} of environment '{}' does not exist (deleted outside \
                 its stack?); `wsctl deploy --env {}` cannot bring it back, tear the environment \
                 down and deploy it again",
                env.name, env.name
            ),
        ));
    };
    let secret = out.secret_string().unwrap_or_default().to_owned();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(fail(
            Exit::Failure,
            format!(
                "the signing secret {arn} holds {} bytes; the server needs at least \
                 {MIN_SECRET_BYTES}",
                secret.len()
            ),
        ));
    }
    Ok(secret)
}

impl Signer {
    /// The claims of a token for `sub` valid from now for `ttl`.
    pub fn claims(
        &self,
        sub: &str,
        projects: Vec<String>,
        queues: Vec<String>,
        ttl: Duration,
        now: SystemTime,
    ) -> Claims {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Claims {
            sub: sub.to_owned(),
            iat,
            nbf: iat,
            exp: iat + ttl.as_secs(),
            projects,
            queues,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let key = jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &key,
        )
        .context("signing the token")
    }
}

/// `--ttl`: a duration such as 90s, 10m or 1h, above zero and at most [`MAX_TTL`].
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write it like 90s, 10m or 1h"))?;
    if ttl < Duration::from_secs(1) {
        return Err("the token must live at least a second".into());
    }
    if ttl > MAX_TTL {
        return Err(format!(
            "{text} is longer than {}: these tokens are short-lived; an application needs \
             its own identity provider (jwt.jwks_url)",
            humantime::format_duration(MAX_TTL)
        ));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer {
            secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:x".into(),
            secret: "k".repeat(MIN_SECRET_BYTES),
            issuer: Some("https://issuer.example".into()),
            audience: None,
        }
    }

    #[test]
    fn ttl_accepts_short_durations_and_refuses_long_or_garbled_ones() {
        assert_eq!(parse_ttl("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("24h"), Ok(MAX_TTL));
        assert!(
            parse_ttl("25h")
                .expect_err("too long")
                .contains("short-lived")
        );
        assert!(parse_ttl("ten").expect_err("garbled").contains("10m"));
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn a_token_verifies_with_the_secret_and_carries_the_grants_and_issuer() {
        let s = signer();
        let now = SystemTime::now();
        let claims = s.claims(
            "alice",
            vec!["p1".into()],
            vec!["dev".into()],
            Duration::from_secs(600),
            now,
        );
        let token = s.sign(&claims).expect("signed");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&["https://issuer.example"]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
        let got = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(s.secret.as_bytes()),
            &validation,
        )
        .expect("verifies")
        .claims;
        assert_eq!(got["sub"], "alice");
        assert_eq!(got["projects"], serde_json::json!(["p1"]));
        assert_eq!(got["queues"], serde_json::json!(["dev"]));
        assert_eq!(got["exp"].as_u64(), Some(claims.iat + 600));
        assert!(
            got.get("aud").is_none(),
            "no audience configured: none claimed"
        );

        let wrong = jsonwebtoken::DecodingKey::from_secret(&[b'x'; MIN_SECRET_BYTES]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &wrong, &validation).is_err());
    }

    #[test]
    fn the_debug_form_never_shows_the_secret() {
        let shown = format!("{:?}", signer());
        assert!(!shown.contains(&"k".repeat(MIN_SECRET_BYTES)), "{shown}");
    }
}
