//! `wsctl teardown`: delete an environment's stack and everything it owns, after showing what
//! goes and having the environment's name typed. The flow lives in `crate::teardown`.

use crate::context::Context;
use crate::exit::Exit;

/// Delete an environment's stack and everything it owns.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl teardown --env staging
  Teardown deletes stack agenticai-websocket-staging and everything it owns:
    TYPE                                       LOGICAL ID    PHYSICAL ID
    AWS::ECS::Service                          Service       arn:aws:ecs:...
    ...
  Type the environment name (staging) to delete it: staging
  ✓ scale service to zero ...
  ✓ delete stack: DELETE_COMPLETE (2m41s)
  Environment staging is gone.

  $ wsctl teardown --env pr-123 --yes          # unattended (CI)

Exit codes: 0 deleted or nothing left, 1 failed, 2 no confirmation (no terminal and no --yes),
6 another operation holds the environment's lock, 130 interrupted (the delete goes on; re-run
to keep watching).")]
pub struct Args {
    /// Do not ask; needed when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How long to wait while another operation holds the environment's lock (e.g. 10m);
    /// by default a held lock fails at once (exit 6, naming the holder).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = crate::lock::parse_wait)]
    pub lock_wait: std::time::Duration,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let options = crate::teardown::Options {
        yes: args.yes,
        lock_wait: args.lock_wait,
    };
    crate::teardown::run(ctx, options).await
}
