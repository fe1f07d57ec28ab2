//! `wsctl deploy`: build, push and roll out the server, creating or updating its stack first.
//! The flow itself lives in `crate::deploy`, one file per step.

use std::time::Duration;

use crate::context::Context;
use crate::deploy::image::promote::Source;
use crate::exit::Exit;

/// Build, push and roll out the server; create or update its stack first.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wsctl deploy --env dev\n  wsctl deploy --env prod --yes \
                        --output json\n  wsctl deploy --env prod --image-from staging   # the \
                        image staging runs, by digest; nothing is rebuilt\n\nExit codes: 0 deployed (its tasks' targets healthy), 1 \
                        failed (the release fails and ECS goes on, or the wait could not go on), \
                        2 bad usage, 3 rolled back (by ECS's circuit breaker, by wsctl after \
                        failing fast, or after a failed smoke test; the previous release runs), \
                        4 timed out, 6 another operation holds the environment's lock or \
                        another deployment replaced ours, 130 interrupted. Resume an interrupted wait with \
                        `wsctl status --env NAME --wait --deployment ID`."
)]
pub struct Args {
    /// Apply stack changes without asking (prod asks on a terminal otherwise).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How long to wait for the rollout, in seconds (default: the environment's
    /// timeout_seconds, else 900).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Start the rollout and return without waiting for its verdict.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait while another operation holds the environment's lock (e.g. 10m);
    /// by default a held lock fails the deploy at once (exit 6, naming the holder).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = crate::lock::parse_wait)]
    pub lock_wait: Duration,
    /// Skip the smoke test after the rollout.
    #[arg(long)]
    pub no_smoke: bool,
    /// Where the smoke test connects instead of the stack's endpoint (e.g. a server you run:
    /// ws://127.0.0.1:8080/ws).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The role CloudFormation acts as when this deploy changes the stack (the ci-role
    /// stack's CloudFormationRoleArn; docs/ci.md). Default: the settings' cloudformation_role_arn.
    #[arg(long, env = "WSCTL_CLOUDFORMATION_ROLE_ARN", value_name = "ARN")]
    pub cloudformation_role_arn: Option<String>,
    /// Build once, promote: deploy the exact image environment ENV runs now (by digest, copied
    /// registry to registry into this environment's repository; nothing is built).
    #[arg(long, value_name = "ENV", conflicts_with = "image")]
    pub image_from: Option<String>,
    /// Deploy this image, named by digest (`REPOSITORY_URI@sha256:...`), copied into this
    /// environment's repository; nothing is built.
    #[arg(long, value_name = "URI@sha256:DIGEST")]
    pub image: Option<String>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    crate::deploy::run(
        ctx,
        crate::deploy::Options {
            yes: args.yes,
            timeout: args.timeout.map(Duration::from_secs),
            no_wait: args.no_wait,
            lock_wait: args.lock_wait,
            smoke: !args.no_smoke,
            endpoint: args.endpoint,
            cloudformation_role_arn: args.cloudformation_role_arn.filter(|a| !a.is_empty()),
            image: match (args.image_from, args.image) {
                (Some(env), _) => Some(Source::Environment(env)),
                (None, Some(image)) => Some(Source::Image(image)),
                (None, None) => None,
            },
        },
    )
    .await
}
