//! `wsctl status`: an environment at a glance (stack, service, deployments, running release,
//! tasks, targets, alarms, CPU and memory, endpoint, events, and what needs attention), or as
//! one JSON document. A missing stack or service exits 5 with the way forward.

use std::time::{Duration, SystemTime};

use crate::context::Context;

use crate::exit::Exit;

use crate::live_service;
use crate::rollout;
use crate::status::model::{Rollout, Status};
use crate::status::{gather, render};

/// Show the state of an environment at a glance.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  $ wsctl status --env prod
  Environment  prod (us-east-1)
  Endpoint     ws://agenticai-ws-prod-123456.us-east-1.elb.amazonaws.com/ws
  Stack        agenticai-websocket-prod  UPDATE_COMPLETE  (since 2024-05-01T11:58:02Z)
  Service      agenticai-websocket-prod  ACTIVE  desired 2  running 2  pending 0
  Release      revision 14  123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-prod:9c1e2f7
  ...
  All good: nothing needs attention.

  $ wsctl status --env prod --output json | jq .healthy
  $ wsctl status --env prod --wait --deployment ecs-svc/123   # resume a deploy's wait

Exit codes: 0 shown (with --wait: the rollout completed), 1 failed (with --wait: the release
fails, or the wait could not go on), 3 rolled back (the rollback completed), 4 timed out,
5 the stack or service does not exist, 6 superseded by another deployment, 130 interrupted.")]
pub struct Args {
    /// Wait until the rollout ends, with the same verdict and exit codes as deploy, then
    /// show the status.
    #[arg(long)]
    pub wait: bool,
    /// The deployment to follow with --wait (the id deploy prints); default: the service's
    /// current PRIMARY deployment.
    #[arg(long, value_name = "ID", requires = "wait")]
    pub deployment: Option<String>,
    /// How long --wait waits, in seconds (default: the environment's timeout).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub timeout: Option<u64>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = (&ctx.env, &ctx.clients);
    let mut exit = Exit::Success;
    let mut rollout = None;
    if args.wait {
        let (_, live) = live_service::find(clients, env).await?;
        let target = rollout::Target {
            cluster: live.cluster,
            service: live.name,
            deployment_id: args.deployment,
            timeout: args.timeout.map_or(env.timeout, Duration::from_secs),
            since: SystemTime::now(),
            // status only watches: a failing release is reported, ECS keeps going.
            restore_to: None,
        };
        let report = rollout::wait(clients, &target, &ctx.progress, ctx.interrupt()).await?;
        exit = report.exit();
        if let Some(hint) = rollout::wait::resume_hint(&env.name, &report) {
            eprintln!("{hint}");
        }
        rollout = Some(Rollout {
            resume: rollout::wait::resume_command(&env.name, &report),
            deployment_id: report.deployment_id,
            verdict: report.verdict,
        });
    }
    let mut status = match gather::gather(clients, env).await {
        Ok(status) => status,
        // The wait's outcome is still the answer: show it, then why the rest is missing.
        Err(err) if rollout.is_some() => {
            let status = Status {
                environment: env.name.clone(),
                region: clients.region.clone(),
                rollout,
                ..Status::default()
            };
            print(ctx, &status)?;
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    status.rollout = rollout;
    if status.stack.is_none() && status.service.is_none() {
        return Err(live_service::not_found(
            env,
            &clients.region,
            None,
            &env.cluster,
            &env.service,
        ));
    }
    print(ctx, &status)?;
    if status.service.is_none() {
        // What exists was shown; now say what is missing, with the distinct exit code.
        let stack_status = status.stack.as_ref().map(|s| s.status.as_str());
        return Err(live_service::not_found(
            env,
            &clients.region,
            stack_status,
            &env.cluster,
            &env.service,
        ));
    }
    Ok(exit)
}

fn print(ctx: &Context, status: &Status) -> anyhow::Result<()> {
    ctx.print(status, || render::render(status))
}
