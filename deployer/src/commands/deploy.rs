//! `wsctl deploy`: build, push and roll out the server, creating or updating its stack first.
//! The flow itself lives in `crate::deploy`, one file per step.

use std::time::Duration;

use crate::cli::Global;
use crate::exit::Exit;

/// Build, push and roll out the server; create or update its stack first.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wsctl deploy --env dev\n  wsctl deploy --env prod --yes \
                        --output json\n\nExit codes: 0 deployed (its tasks' targets healthy), 1 \
                        failed (the release fails and ECS goes on, or the wait could not go on), \
                        2 bad usage, 3 rolled back (by ECS's circuit breaker, or by wsctl after \
                        failing fast; the previous release runs), 4 timed out, 6 superseded by \
                        another deployment, 130 interrupted. Resume an interrupted wait with \
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
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Exit> {
    crate::deploy::run(
        global,
        crate::deploy::Options {
            yes: args.yes,
            timeout: args.timeout.map(Duration::from_secs),
            no_wait: args.no_wait,
        },
    )
    .await
}
