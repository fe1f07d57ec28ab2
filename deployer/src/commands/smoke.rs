//! `wsctl smoke`: the smoke test a deploy ends with, alone: connect through the environment's
//! endpoint with a token minted for it, check the welcome and a ping, publish an update and
//! receive it (`crate::smoke`). Changes nothing.

use crate::context::Context;
use crate::exit::{Exit, fail};
use crate::smoke::{self, environment::Aws};

/// Run the smoke test against an environment.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl smoke --env staging
  → smoke ws://agenticai-alb-staging-1.us-east-1.elb.amazonaws.com/ws
    ✓ connect: upgraded (HTTP 101)
    ✓ welcome: connection 2f1c... on server 0.1.0
    ✓ ping: pong
    - publish: POST /publish is only answered inside the VPC ...
  ✓ smoke ...: passed (connect, welcome, ping); publish and receive skipped: ...

  $ wsctl smoke --env dev --endpoint ws://127.0.0.1:8080/ws   # a server you run

Publishing is checked only where the load balancer answers POST /publish (inside the VPC);
elsewhere it is reported as skipped. Exit codes: 0 passed, 1 a check failed (named), 2 bad
usage, 5 no such environment.")]
pub struct Args {
    /// Where to connect instead of the stack's endpoint (e.g. ws://127.0.0.1:8080/ws).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let env = &ctx.env;
    let aws = Aws::new(&ctx.clients);
    let verdict =
        smoke::environment::check(&aws, env, args.endpoint.as_deref(), &ctx.progress).await?;
    let json = serde_json::json!({"environment": env.name, "smoke": verdict});
    ctx.print(&json, || {
        format!("smoke test of {}: {}\n", env.name, verdict.describe())
    })?;
    match verdict {
        smoke::Verdict::Ran { report } if !report.passed => Err(fail(
            Exit::Failure,
            format!(
                "the smoke test of {} failed at {}",
                env.name,
                report.failure().unwrap_or_default()
            ),
        )),
        _ => Ok(Exit::Success),
    }
}
