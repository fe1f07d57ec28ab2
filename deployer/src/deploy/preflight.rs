//! Preflight: everything a deploy needs, checked before anything changes and all at once
//! (concurrently, and every failure reported, not just the first): AWS credentials, the Docker
//! engine, the main stack's outputs, the network, and the service stack's state.

use std::time::Duration;

use anyhow::Context as _;
use bollard::Docker;

use super::main_stack::{self, MainOutputs};
use super::network::{self, Network};
use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::exit::{Exit, classify, fail};
use crate::progress::Progress;
use crate::settings::Environment;
use crate::stack::readiness::{self, Readiness};

/// What preflight found.
pub struct Found {
    pub account: String,
    pub main: MainOutputs,
    pub network: Network,
    pub stack: Readiness,
}

/// Runs every check concurrently; fails with all failures listed. `docker` is the engine
/// the image is built on (`connect_docker`), already in use by the build; `None` when the
/// deploy builds nothing (a promotion).
pub async fn run(
    clients: &Clients,
    env: &Environment,
    docker: Option<&anyhow::Result<Docker>>,
    progress: &Progress,
) -> anyhow::Result<Found> {
    let step = progress.step("preflight");
    let (account, docker, main, network, stack) = tokio::join!(
        account(&clients.sts),
        async {
            match docker {
                Some(docker) => docker_answers(docker)
                    .await
                    .map(|v| format!("Docker {v}, ")),
                None => Ok(String::new()),
            }
        },
        main_stack::outputs(&clients.cloudformation, &env.main_stack),
        network::resolve(&clients.ec2, env),
        readiness::for_deploy(&clients.cloudformation, &env.stack_name, &env.name),
    );
    match (account, docker, main, network, stack) {
        (Ok(account), Ok(docker_version), Ok(main), Ok(network), Ok(stack)) => {
            if let Some(note) = &network.note {
                step.println(format!("note: {note}"));
            }
            let tasks = if network.task_subnet_ids.is_empty() {
                "tasks in public subnets".to_owned()
            } else {
                format!("tasks in private {}", network.task_subnet_ids.join(", "))
            };
            step.finish(format!(
                "account {account}, {docker_version}main stack {}, {} ({}), {tasks}",
                env.main_stack,
                network.vpc_id,
                network.zones.join(", ")
            ));
            Ok(Found {
                account,
                main,
                network,
                stack,
            })
        }
        (account, docker, main, network, stack) => {
            let errors: Vec<anyhow::Error> = [
                account.err(),
                docker.err(),
                main.err(),
                network.err(),
                stack.err(),
            ]
            .into_iter()
            .flatten()
            .collect();
            step.fail(format!("{} check(s) failed", errors.len()));
            // The most specific exit code wins (usage over failure).
            let exit = errors
                .iter()
                .map(classify)
                .find(|e| *e != Exit::Failure)
                .unwrap_or(Exit::Failure);
            let text = errors
                .iter()
                .map(|e| format!("  - {e:#}"))
                .collect::<Vec<_>>()
                .join("\n");
            Err(fail(
                exit,
                format!("preflight failed; nothing was changed:\n{text}"),
            ))
        }
    }
}

async fn account(sts: &aws_sdk_sts::Client) -> anyhow::Result<String> {
    let out = sts.get_caller_identity().send().await.aws_context(|| {
        "AWS credentials do not work (GetCallerIdentity): set AWS_PROFILE or --profile, or \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    })?;
    Ok(out.account().unwrap_or_default().to_owned())
}

fn docker_hint() -> String {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    format!(
        "the Docker engine does not answer at {host}: start it (locally: `scripts/services up \
         docker`) or point DOCKER_HOST at a running one"
    )
}

/// A client of the engine named by DOCKER_HOST (else the local socket); nothing is sent yet.
pub fn connect_docker() -> anyhow::Result<Docker> {
    Docker::connect_with_defaults().with_context(docker_hint)
}

/// The client `connect_docker` made, or why there is none.
pub fn engine(docker: &anyhow::Result<Docker>) -> anyhow::Result<&Docker> {
    docker.as_ref().map_err(|err| anyhow::anyhow!("{err:#}"))
}

/// Checks that the engine answers; its version.
async fn docker_answers(docker: &anyhow::Result<Docker>) -> anyhow::Result<String> {
    let docker = engine(docker)?;
    let version = tokio::time::timeout(Duration::from_secs(10), docker.version())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10s"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(docker_hint)?;
    Ok(version.version.unwrap_or_else(|| "?".into()))
}
