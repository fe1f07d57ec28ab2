//! `wsctl unlock`: removes an environment's deploy lock, for when its holder is gone and the
//! lease should not be waited out. Shows the holder and asks first; removes exactly the lock
//! it showed (a lock taken meanwhile by someone else stays).

use std::io::IsTerminal as _;

use chrono::Utc;

use crate::context::Context;
use crate::exit::{Exit, fail};
use crate::lock::{Lock, table::Table};

/// Remove an environment's deploy lock (after showing who holds it).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  $ wsctl unlock --env prod
  The deploy lock of prod is held by deploy by arn:aws:sts::123456789012:assumed-role/ci/run-7
  on runner-3 (pid 4121), CI run https://github.com/o/r/actions/runs/7, commit 3f2a9c1, since
  2026-12-01T10:00:00Z (12m05s ago), lease until 2026-12-01T10:14:00Z.
  Remove it? [y/N] y
  Removed the deploy lock of prod.

Remove a lock only when its holder is gone: the holder's operation may still be changing the
environment. Exit codes: 0 removed or not locked, 1 failed or not confirmed, 2 no terminal and
no --yes, 6 the lock changed while asking (nothing removed).")]
pub struct Args {
    /// Do not ask; needed when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let env = &ctx.env;
    let lock = Lock::new(
        Table::new(ctx.clients.dynamodb.clone()),
        &env.stack_name,
        &env.name,
    );
    lock.table.ensure().await?;
    let holder = lock.holder().await?;
    let Some(holder) = holder else {
        let json = serde_json::json!({"environment": env.name, "removed": null});
        ctx.print(&json, || {
            format!("{} is not locked; nothing to remove.\n", env.name)
        })?;
        return Ok(Exit::Success);
    };
    let shown = holder.describe(Utc::now());
    eprintln!("The deploy lock of {} is held by {shown}.", env.name);
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(fail(
                Exit::Usage,
                "unlock asks for confirmation and there is no terminal to ask on: pass --yes \
                 to remove the lock unattended. Nothing was changed.",
            ));
        }
        if !crate::deploy::ask(&ctx.progress, "Remove it?") {
            return Err(fail(Exit::Failure, "not confirmed: the lock stays"));
        }
    }
    lock.remove(&holder).await?;
    let json = serde_json::json!({"environment": env.name, "removed": holder});
    ctx.print(&json, || {
        format!("Removed the deploy lock of {}.\n", env.name)
    })?;
    Ok(Exit::Success)
}
