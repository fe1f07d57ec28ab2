//! `wsctl exec`: run a command in a running task through ECS Exec. ECS hands out a Session
//! Manager session (ExecuteCommand) and AWS's `session-manager-plugin` carries the terminal,
//! exactly as `aws ecs execute-command` does; the plugin is the one thing wsctl cannot do
//! itself (its data channel protocol is not public as a crate).
//!
//! Everything that would make the plugin hang or fail obscurely is checked first and explained:
//! the plugin on PATH, ECS Exec enabled on the service (`exec: true` in wsctl.yaml) and on the
//! task (tasks started before it was enabled have no agent), and the caller's permission.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use aws_sdk_ecs::operation::execute_command::ExecuteCommandError;
use aws_sdk_ecs::types::{DesiredStatus, Task};
use serde_json::json;

use crate::aws::AwsResultExt as _;
use crate::context::Context;

use crate::exit::{Exit, fail};
use crate::live_service::{self, task_id};

/// Run a command in a running task (ECS Exec).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl exec --env dev -- /bin/sh                  # a shell, if the image has one
  $ wsctl exec --env dev --task 1a2b3c4d -- ws-server --version

Needs `exec: true` for the environment in wsctl.yaml (then deploy), AWS's
session-manager-plugin on PATH, and ecs:ExecuteCommand for your identity.
The image is FROM scratch: only the binaries it ships can run.")]
pub struct Args {
    /// Task ID (or ARN) to run in; default: the first running task of the service.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Container of the task.
    #[arg(long, default_value = "websocket")]
    pub container: String,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The name AWS's plugin installs under.
const PLUGIN: &str = "session-manager-plugin";

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let plugin = find_plugin().ok_or_else(|| {
        fail(
            Exit::Failure,
            format!(
                "{PLUGIN} is not on PATH: ECS Exec carries the session through AWS's Session \
                 Manager plugin. Install it (https://docs.aws.amazon.com/systems-manager/latest/\
                 userguide/session-manager-working-with-install-plugin.html) and run again"
            ),
        )
    })?;
    let (env, clients) = (&ctx.env, &ctx.clients);
    let (_, live) = live_service::find(clients, env).await?;
    if !live.service.enable_execute_command() {
        return Err(fail(
            Exit::Failure,
            format!(
                "ECS Exec is off for {}: set `exec: true` for environment {} in wsctl.yaml and \
                 deploy (the stack then enables it and grants the task role the Session Manager \
                 channel)",
                live.name, env.name
            ),
        ));
    }
    let task = choose_task(
        &clients.ecs,
        &live.cluster,
        &live.name,
        args.task.as_deref(),
    )
    .await?;
    let task_id = task_id(task.task_arn().unwrap_or_default()).to_owned();
    if !task.enable_execute_command() {
        return Err(fail(
            Exit::Failure,
            format!(
                "task {task_id} was started before ECS Exec was enabled, so it has no exec \
                 agent: deploy a new release (or `aws ecs update-service --force-new-deployment`) \
                 and exec into one of the new tasks"
            ),
        ));
    }
    let runtime_id = task
        .containers()
        .iter()
        .find(|c| c.name() == Some(args.container.as_str()))
        .and_then(|c| c.runtime_id())
        .ok_or_else(|| {
            fail(
                Exit::Usage,
                format!(
                    "task {task_id} has no running container {:?}",
                    args.container
                ),
            )
        })?
        .to_owned();
    let command = shell_words(&args.command);
    let out = clients
        .ecs
        .execute_command()
        .cluster(&live.cluster)
        .task(task.task_arn().unwrap_or_default())
        .container(&args.container)
        .interactive(true)
        .command(&command)
        .send()
        .await
        .map_err(|err| explain(err.into_service_error(), &task_id))?;
    let session = out
        .session()
        .context("ECS returned no session for ExecuteCommand")?;
    let session_json = json!({
        "SessionId": session.session_id(),
        "StreamUrl": session.stream_url(),
        "TokenValue": session.token_value(),
    });
    let target = json!({ "Target": format!("ecs:{}_{}_{}", live.cluster, task_id, runtime_id) });
    let region = clients.region.clone();
    let endpoint = format!("https://ssm.{region}.amazonaws.com");
    let status = Command::new(&plugin)
        .arg(session_json.to_string())
        .arg(&region)
        .arg("StartSession")
        .arg(ctx.aws.profile.clone().unwrap_or_default())
        .arg(target.to_string())
        .arg(endpoint)
        .status()
        .with_context(|| format!("starting {}", plugin.display()))?;
    Ok(if status.success() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// `session-manager-plugin` on PATH.
fn find_plugin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(PLUGIN))
        .find(|candidate| candidate.is_file())
}

/// The task asked for (by ID or ARN) or the service's first running one.
async fn choose_task(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    wanted: Option<&str>,
) -> anyhow::Result<Task> {
    let arns: Vec<String> = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .aws_context(|| format!("listing the running tasks of {service}"))?
        .task_arns()
        .to_vec();
    let chosen: Vec<String> = match wanted {
        Some(w) => arns
            .into_iter()
            .filter(|arn| arn == w || task_id(arn) == w)
            .collect(),
        None => arns.into_iter().take(1).collect(),
    };
    if chosen.is_empty() {
        let what = wanted.map_or_else(
            || format!("{service} has no running task"),
            |w| format!("no running task {w} in {service} (see `wsctl status`)"),
        );
        return Err(fail(Exit::NotFound, what));
    }
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(chosen))
        .send()
        .await
        .aws_context(|| "describing the task")?;
    out.tasks()
        .first()
        .cloned()
        .context("ECS did not describe the task")
}

/// The command line ECS runs (it splits on spaces itself): arguments with spaces quoted.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", w.replace('\'', r"'\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// ExecuteCommand's refusals, explained.
fn explain(err: ExecuteCommandError, task_id: &str) -> anyhow::Error {
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    let message = err.message().unwrap_or_default().to_owned();
    match &err {
        ExecuteCommandError::AccessDeniedException(_) => fail(
            Exit::Failure,
            format!(
                "not allowed to exec into task {task_id} ({message}): your IAM identity needs \
                 ecs:ExecuteCommand on the task (and ssm:StartSession when a policy limits it)"
            ),
        ),
        ExecuteCommandError::TargetNotConnectedException(_) => fail(
            Exit::Failure,
            format!(
                "task {task_id}'s exec agent is not connected ({message}): the task role needs \
                 the ssmmessages channel (the stack grants it with exec: true), and a task in a \
                 private subnet needs a NAT gateway or an ssmmessages VPC endpoint"
            ),
        ),
        _ => fail(
            Exit::Failure,
            format!(
                "ExecuteCommand failed for task {task_id}: {}",
                crate::aws::error(err)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::error::{AccessDeniedException, TargetNotConnectedException};

    use super::*;

    #[test]
    fn arguments_with_spaces_stay_one_word() {
        let words = ["sh", "-c", "echo 'hi there'"].map(String::from);
        assert_eq!(shell_words(&words), r"sh -c 'echo '\''hi there'\'''");
        assert_eq!(shell_words(&["ws-server".into()]), "ws-server");
    }

    #[test]
    fn refusals_name_the_permission_or_the_agent() {
        let denied = ExecuteCommandError::AccessDeniedException(
            AccessDeniedException::builder()
                .message("User is not authorized to perform ecs:ExecuteCommand")
                .build(),
        );
        let text = explain(denied, "1a2b").to_string();
        assert!(text.contains("needs ecs:ExecuteCommand"), "{text}");
        let offline = ExecuteCommandError::TargetNotConnectedException(
            TargetNotConnectedException::builder()
                .message("The execute command failed due to an internal error")
                .build(),
        );
        let text = explain(offline, "1a2b").to_string();
        assert!(text.contains("ssmmessages"), "{text}");
    }
}
