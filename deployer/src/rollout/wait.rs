//! The rollout wait: polls ECS, shows what changes (service events, target health, stopped
//! tasks with their logs) and stops on a final [`Verdict`], the deadline or Ctrl-C.
//!
//! Polls start fast (200 ms) and back off to 5 s, so a rollout that is already done costs one
//! round trip and a long one does not hammer the API.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use aws_config::SdkConfig;
use aws_sdk_ecs::types::{DesiredStatus, Service, Task};

use super::verdict::{DeploymentState, Observation, StoppedTask, Verdict, judge, short_td};
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::progress::{Progress, Step};

const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(5);
/// How many log lines of a stopped task to show.
const LOG_LINES: i32 = 20;

/// The AWS clients the wait needs.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }
}

/// What to wait for.
#[derive(Clone, Debug)]
pub struct Target {
    pub cluster: String,
    pub service: String,
    /// The deployment to follow (from UpdateService); `None` follows the service's PRIMARY
    /// deployment as first seen (e.g. `status --wait`).
    pub deployment_id: Option<String>,
    pub timeout: Duration,
    /// Service events from this moment on are shown; older ones are history.
    pub since: SystemTime,
}

/// How a wait ended.
#[derive(Clone, Debug)]
pub struct Report {
    pub verdict: Verdict,
    pub deployment_id: String,
    /// Our deployment's task definition (ARN as ECS reports it).
    pub task_definition: String,
    /// Tasks of our deployment that stopped, with their last log lines.
    pub stopped_tasks: Vec<StoppedTask>,
    pub elapsed: Duration,
}

impl Report {
    pub fn exit(&self) -> Exit {
        self.verdict.exit()
    }
}

/// Waits for the rollout of `target` to reach a verdict, showing progress as it goes.
/// Errors only when AWS cannot be asked (or the service is gone); every rollout outcome,
/// including Ctrl-C, is a [`Report`].
pub async fn wait(
    clients: &Clients,
    target: &Target,
    progress: &Progress,
    interrupt: &Interrupt,
) -> anyhow::Result<Report> {
    let step = progress.step(format!("rollout {}", target.service));
    let started = tokio::time::Instant::now();
    let mut watch = Watch::new(clients, target, &step);
    let mut interval = FIRST_POLL;
    loop {
        let service = describe_service(&clients.ecs, &target.cluster, &target.service).await?;
        watch.show_new_events(&service);
        let deployment_id = watch.deployment_id(&service)?;
        watch.collect_stopped_tasks(&deployment_id).await?;
        watch.show_target_health(&service).await;

        let elapsed = started.elapsed();
        let observation = Observation {
            deployment_id: deployment_id.clone(),
            deployments: service.deployments().iter().map(deployment_state).collect(),
            stopped_tasks: watch.stopped.clone(),
            elapsed,
            timeout: target.timeout,
        };
        let verdict = judge(&observation);
        let report = |verdict: Verdict| Report {
            task_definition: observation
                .deployments
                .iter()
                .find(|d| d.id == deployment_id)
                .map(|d| d.task_definition.clone())
                .unwrap_or_default(),
            verdict,
            deployment_id: deployment_id.clone(),
            stopped_tasks: watch.stopped.clone(),
            elapsed,
        };
        if verdict.is_final() {
            let line = verdict.describe();
            if verdict.exit() == Exit::Success {
                step.finish(line);
            } else {
                step.fail(line);
            }
            return Ok(report(verdict));
        }
        step.set_message(verdict.describe());

        let remaining = target.timeout.saturating_sub(elapsed);
        tokio::select! {
            () = tokio::time::sleep(interval.min(remaining)) => {}
            () = interrupt.wait() => {
                let Verdict::InProgress { running, desired, .. } = verdict else {
                    unreachable!("only an unfinished rollout is waited on");
                };
                step.fail("interrupted; the rollout goes on in ECS");
                return Ok(report(Verdict::Interrupted { running, desired }));
            }
        }
        interval = (interval * 3 / 2).min(MAX_POLL);
    }
}

/// Looks up one service; a missing service (or cluster) is `Exit::NotFound`.
pub async fn describe_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Service> {
    crate::live_service::describe_service(ecs, cluster, service)
        .await?
        .ok_or_else(|| {
            fail(
                Exit::NotFound,
                format!("ECS service {service} does not exist in cluster {cluster}"),
            )
        })
}

/// The SDK's deployment as the verdict sees it.
pub fn deployment_state(d: &aws_sdk_ecs::types::Deployment) -> DeploymentState {
    DeploymentState {
        id: d.id().unwrap_or_default().to_owned(),
        status: d.status().unwrap_or_default().to_owned(),
        rollout_state: d.rollout_state().map(|s| s.as_str().to_owned()),
        rollout_reason: d.rollout_state_reason().map(str::to_owned),
        task_definition: d.task_definition().unwrap_or_default().to_owned(),
        desired: d.desired_count(),
        running: d.running_count(),
        pending: d.pending_count(),
        failed_tasks: d.failed_tasks(),
    }
}

/// State carried between polls: what was already shown.
struct Watch<'a> {
    clients: &'a Clients,
    target: &'a Target,
    step: &'a Step,
    deployment_id: Option<String>,
    seen_events: HashSet<String>,
    seen_tasks: HashSet<String>,
    stopped: Vec<StoppedTask>,
    last_health: String,
    /// awslogs (group, stream prefix, container) per task definition ARN.
    log_config: HashMap<String, Vec<(String, String, String)>>,
}

impl<'a> Watch<'a> {
    fn new(clients: &'a Clients, target: &'a Target, step: &'a Step) -> Self {
        Self {
            clients,
            target,
            step,
            deployment_id: target.deployment_id.clone(),
            seen_events: HashSet::new(),
            seen_tasks: HashSet::new(),
            stopped: Vec::new(),
            last_health: String::new(),
            log_config: HashMap::new(),
        }
    }

    fn deployment_id(&mut self, service: &Service) -> anyhow::Result<String> {
        if let Some(id) = &self.deployment_id {
            return Ok(id.clone());
        }
        let primary = service
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
            .ok_or_else(|| {
                fail(
                    Exit::Failure,
                    format!("service {} has no PRIMARY deployment", self.target.service),
                )
            })?;
        self.deployment_id = Some(primary.to_owned());
        Ok(primary.to_owned())
    }

    /// Service events arrive newest first; show the new ones oldest first.
    fn show_new_events(&mut self, service: &Service) {
        let since = aws_smithy_types::DateTime::from(self.target.since).as_secs_f64();
        let mut fresh: Vec<_> = service
            .events()
            .iter()
            .filter(|e| e.created_at().is_some_and(|t| t.as_secs_f64() >= since))
            .filter(|e| {
                self.seen_events
                    .insert(e.id().unwrap_or_default().to_owned())
            })
            .collect();
        fresh.reverse();
        for event in fresh {
            self.step
                .println(format!("event: {}", event.message().unwrap_or_default()));
        }
    }

    /// Finds tasks of our deployment that stopped since the last poll, with their logs.
    async fn collect_stopped_tasks(&mut self, deployment_id: &str) -> anyhow::Result<()> {
        let listed = self
            .clients
            .ecs
            .list_tasks()
            .cluster(&self.target.cluster)
            .started_by(deployment_id)
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await
            .map_err(crate::aws::error)
            .context("listing stopped tasks of the deployment")?;
        let new: Vec<String> = listed
            .task_arns()
            .iter()
            .filter(|arn| !self.seen_tasks.contains(*arn))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let described = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(&self.target.cluster)
            .set_tasks(Some(new))
            .send()
            .await
            .map_err(crate::aws::error)
            .context("describing stopped tasks")?;
        for task in described.tasks() {
            // Only tasks that really stopped; STOPPING ones come back next poll.
            if task.last_status() != Some("STOPPED") {
                continue;
            }
            self.seen_tasks
                .insert(task.task_arn().unwrap_or_default().to_owned());
            let mut stopped = stopped_task(task);
            if stopped.is_failure() {
                stopped.last_log_lines = self.last_log_lines(task).await;
                self.step.println(format!(
                    "task {} stopped: {}",
                    stopped.task_id,
                    stopped
                        .stopped_reason
                        .as_deref()
                        .unwrap_or("no reason given")
                ));
                for container in &stopped.containers {
                    self.step.println(format!("  {container}"));
                }
                for line in &stopped.last_log_lines {
                    self.step.println(format!("  | {line}"));
                }
            }
            self.stopped.push(stopped);
        }
        Ok(())
    }

    /// The last lines a task logged (awslogs driver), or a note saying why there are none.
    async fn last_log_lines(&mut self, task: &Task) -> Vec<String> {
        let task_id = task_id(task);
        let Some(td) = task.task_definition_arn() else {
            return vec![];
        };
        if !self.log_config.contains_key(td) {
            let config = match self
                .clients
                .ecs
                .describe_task_definition()
                .task_definition(td)
                .send()
                .await
            {
                Ok(out) => out
                    .task_definition()
                    .map(|t| awslogs_streams(t.container_definitions()))
                    .unwrap_or_default(),
                Err(err) => {
                    return vec![format!("(logs unavailable: {})", crate::aws::error(err))];
                }
            };
            self.log_config.insert(td.to_owned(), config);
        }
        let mut lines = Vec::new();
        for (group, prefix, container) in self.log_config.get(td).into_iter().flatten() {
            let stream = format!("{prefix}/{container}/{task_id}");
            match self
                .clients
                .logs
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(&stream)
                .limit(LOG_LINES)
                .start_from_head(false)
                .send()
                .await
            {
                Ok(out) => lines.extend(
                    out.events()
                        .iter()
                        .filter_map(|e| e.message())
                        .map(|m| m.trim_end().to_owned()),
                ),
                Err(err) => lines.push(format!(
                    "(logs of {container} unavailable in {group}/{stream}: {})",
                    crate::aws::error(err)
                )),
            }
        }
        lines
    }

    /// ALB target health, printed when it changes ("2 healthy, 1 initial").
    async fn show_target_health(&mut self, service: &Service) {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for lb in service.load_balancers() {
            let Some(tg) = lb.target_group_arn() else {
                continue;
            };
            let Ok(out) = self
                .clients
                .elb
                .describe_target_health()
                .target_group_arn(tg)
                .send()
                .await
            else {
                continue;
            };
            for desc in out.target_health_descriptions() {
                let state = desc
                    .target_health()
                    .and_then(|h| h.state())
                    .map_or("unknown", |s| s.as_str())
                    .to_owned();
                match counts.iter_mut().find(|(s, _)| *s == state) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((state, 1)),
                }
            }
        }
        if counts.is_empty() {
            return;
        }
        counts.sort();
        let line = counts
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect::<Vec<_>>()
            .join(", ");
        if line != self.last_health {
            self.step.println(format!("targets: {line}"));
            self.last_health = line;
        }
    }
}

fn task_id(task: &Task) -> String {
    let arn = task.task_arn().unwrap_or_default();
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

fn stopped_task(task: &Task) -> StoppedTask {
    StoppedTask {
        task_id: task_id(task),
        stop_code: task.stop_code().map(|c| c.as_str().to_owned()),
        stopped_reason: task.stopped_reason().map(str::to_owned),
        containers: task
            .containers()
            .iter()
            .filter(|c| c.exit_code().is_some() || c.reason().is_some())
            .map(|c| {
                let exit = c
                    .exit_code()
                    .map_or(String::new(), |code| format!("exit {code}"));
                let reason = c.reason().map_or(String::new(), |r| format!(" ({r})"));
                format!("{}: {exit}{reason}", c.name().unwrap_or("container"))
            })
            .collect(),
        last_log_lines: vec![],
    }
}

/// (group, stream prefix, container name) for each container logging through awslogs.
fn awslogs_streams(
    containers: &[aws_sdk_ecs::types::ContainerDefinition],
) -> Vec<(String, String, String)> {
    containers
        .iter()
        .filter_map(|c| {
            let log = c.log_configuration()?;
            if log.log_driver().as_str() != "awslogs" {
                return None;
            }
            let options = log.options()?;
            Some((
                options.get("awslogs-group")?.clone(),
                options.get("awslogs-stream-prefix")?.clone(),
                c.name()?.to_owned(),
            ))
        })
        .collect()
}

/// What to tell an operator who stopped watching: what still runs and how to resume.
pub fn resume_hint(env: &str, report: &Report) -> String {
    format!(
        "deployment {} ({}) is still rolling out in ECS; nothing was undone.\n\
         Resume watching with: wsctl status --env {env} --wait",
        report.deployment_id,
        short_td(&report.task_definition)
    )
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
