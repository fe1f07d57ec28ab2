//! `wsctl token`: mints a short-lived client token from the environment's signing secret and
//! prints it (alone on stdout, so `$(wsctl token ...)` works; with `--output json`, with its
//! claims). What it grants is what the flags say and nothing more.

use std::time::{Duration, SystemTime};

use crate::context::Context;
use crate::exit::Exit;
use crate::output::{self, Format};
use crate::token;

/// Mint a short-lived client token from the environment's signing secret.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  $ wsctl token --env dev --sub alice --project p1 --queue dev --ttl 10m
  eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6...

  $ websocat -H \"Authorization: Bearer $(wsctl token --env dev --sub alice --project p1)\" ws://.../ws

Environments whose wsctl.yaml sets jwt.jwks_url take tokens from that identity provider and
have no secret to sign with. Exit codes: 0 printed, 1 failed, 2 bad usage, 5 no such stack or
secret.")]
pub struct Args {
    /// The user the token names (claim `sub`, the server's user_id).
    #[arg(long, value_name = "USER")]
    pub sub: String,
    /// A project it may subscribe to; repeat for more, '*' for all.
    #[arg(long = "project", value_name = "ID", required = true)]
    pub projects: Vec<String>,
    /// An agent queue it may forward to (pm, dev, qa, ops, or '*'); repeat for more; none by
    /// default.
    #[arg(long = "queue", value_name = "QUEUE", value_parser = clap::builder::PossibleValuesParser::new(token::QUEUES))]
    pub queues: Vec<String>,
    /// How long it is valid (e.g. 90s, 10m, 1h; at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = token::parse_ttl)]
    pub ttl: Duration,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = (&ctx.env, &ctx.clients);
    let signer = token::signer(
        &clients.cloudformation,
        &clients.secretsmanager,
        env,
        &clients.region,
    )
    .await?;
    let claims = signer.claims(
        &args.sub,
        args.projects,
        args.queues,
        args.ttl,
        SystemTime::now(),
    );
    let jwt = signer.sign(&claims)?;
    match ctx.format {
        Format::Json | Format::Ndjson => ctx.print_json(&serde_json::json!({
            "environment": env.name,
            "token": jwt,
            "claims": claims,
            "expires_at": claims.exp,
            "secret_arn": signer.secret_arn,
        }))?,
        Format::Text => {
            output::print(format!("{jwt}\n"))?;
            eprintln!(
                "token for {} (projects {}; queues {}), valid for {}",
                claims.sub,
                claims.projects.join(", "),
                if claims.queues.is_empty() {
                    "none".to_owned()
                } else {
                    claims.queues.join(", ")
                },
                humantime::format_duration(args.ttl),
            );
        }
    }
    Ok(Exit::Success)
}
