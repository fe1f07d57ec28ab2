//! `wsctl status`: an environment at a glance (stack, service, deployments, running release,
//! tasks, targets, alarms, CPU and memory, endpoint, events, and what needs attention), or as
//! one JSON document. A missing stack or service exits 5 with the way forward.

use crate::cli::Global;
use crate::clients;
use crate::exit::Exit;
use crate::live_service;
use crate::output::{self, Format};
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

Exit codes: 0 shown, 5 the stack or service does not exist, 1 AWS could not be asked.")]
pub struct Args {}

pub async fn run(global: &Global, _args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = clients::for_env(global).await?;
    let status = gather::gather(&clients, &env).await?;
    if status.stack.is_none() && status.service.is_none() {
        return Err(live_service::not_found(&env, &clients.region, None, &env.cluster, &env.service));
    }
    match global.output {
        Format::Json => output::print_json(&status)?,
        Format::Text => print!("{}", render::render(&status)),
    }
    if status.service.is_none() {
        // What exists was shown; now say what is missing, with the distinct exit code.
        let stack_status = status.stack.as_ref().map(|s| s.status.as_str());
        return Err(live_service::not_found(
            &env,
            &clients.region,
            stack_status,
            &env.cluster,
            &env.service,
        ));
    }
    Ok(Exit::Success)
}
