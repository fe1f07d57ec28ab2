//! The rollout wait: polls ECS, shows what changes (service events, target health, stopped
//! tasks with their logs) and stops on a final [`Verdict`], the deadline or Ctrl-C.
//!
//! Polls start fast (200 ms) and back off to 5 s, so a rollout that is already done costs one
//! round trip and a long one does not hammer the API. A poll that fails on something that may
//! heal (throttling, a 5xx, a timeout, a dropped connection; the SDK has already retried it) is
//! retried with its own backoff and jitter until the deadline: the rollout does not stop
//! because its observer was throttled. Only a permanent error ends the wait, and then as a
//! verdict, so every caller still prints its summary with the deployment and how to resume.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::{DesiredStatus, Service, Task, TaskDefinitionField};
use aws_sdk_elasticloadbalancingv2::types::TargetHealthDescription;

use super::verdict::{
    Actor, DeploymentState, Observation, Restore, Rollback, StoppedTask, Targets, TaskTarget,
    Verdict, count_states, judge, settled, short_td,
};
use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::live_service;
use crate::progress::{Progress, Step, format_duration};

const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(5);
/// The pause after a failed poll doubles from the first to the last (before jitter).
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(20);
/// How many log lines of a stopped task to show.
const LOG_LINES: i32 = 20;

/// What to wait for.
#[derive(Clone, Debug)]
pub struct Target {
    pub cluster: String,
    pub service: String,
    /// The deployment to follow (from UpdateService, or `status --wait --deployment`); `None`
    /// follows the service's PRIMARY deployment as first seen.
    pub deployment_id: Option<String>,
    pub timeout: Duration,
    /// Service events from this moment on are shown; older ones are history.
    pub since: SystemTime,
    /// The task definition to put back when the release fails fast (deploy: the one the
    /// service ran before), so the service runs what the verdict says. `None` leaves the
    /// service to ECS, and the verdict says so.
    pub restore_to: Option<String>,
}

impl Target {
    /// Follows `deployment_id` of the live service with nothing to put back on failure (a
    /// rollback is reported, not rolled back again; a count change starts no new release).
    pub fn on(
        live: &crate::live_service::LiveService,
        deployment_id: Option<String>,
        timeout: Duration,
        since: SystemTime,
    ) -> Self {
        Self {
            cluster: live.cluster.clone(),
            service: live.name.clone(),
            deployment_id,
            timeout,
            since,
            restore_to: None,
        }
    }
}

/// How a wait ended.
#[derive(Clone, Debug)]
pub struct Report {
    pub verdict: Verdict,
    pub deployment_id: String,
    /// The deployment a resumed wait should follow: ours, or the one wsctl started to roll
    /// back.
    pub follow: String,
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
/// Errors only when no deployment is known yet (AWS refuses at the first poll) or the service
/// does not exist; every other outcome, including Ctrl-C and a failed poll, is a [`Report`].
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
    let mut retry = FIRST_RETRY;
    loop {
        let elapsed = started.elapsed();
        let (verdict, pause) = match watch.poll(elapsed).await {
            Ok(observation) => {
                retry = FIRST_RETRY;
                let mut verdict = judge(&observation);
                watch.act_on(&mut verdict).await;
                let pause = interval;
                interval = (interval * 3 / 2).min(MAX_POLL);
                (verdict, pause)
            }
            Err(err) if crate::aws::is_transient(&err) => {
                let (running, desired) = watch.counts;
                if elapsed >= target.timeout {
                    let note = Some(format!("the last poll failed: {err:#}"));
                    let verdict = Verdict::TimedOut {
                        running,
                        desired,
                        note,
                    };
                    (verdict, Duration::ZERO)
                } else {
                    // Jitter (half to all of the backoff): waiters throttled together spread out.
                    let pause = retry.mul_f64(0.5 + fastrand::f64() / 2.0);
                    retry = (retry * 2).min(MAX_RETRY);
                    step.println(format!(
                        "poll failed, retrying in {}: {err:#}",
                        format_duration(pause)
                    ));
                    let verdict = Verdict::InProgress {
                        running,
                        desired,
                        pending: 0,
                        waiting_for: Some("ECS to answer again".into()),
                    };
                    (verdict, pause)
                }
            }
            // Nothing to report on yet, or nothing left to follow (the service is gone).
            Err(err)
                if watch.deployment_id.is_none()
                    || crate::exit::classify(&err) == Exit::NotFound =>
            {
                return Err(err);
            }
            Err(err) => (
                Verdict::WaitFailed {
                    error: format!("{err:#}"),
                },
                Duration::ZERO,
            ),
        };
        if verdict.is_final() {
            let verdict = super::alarms::name_the_alarm(clients, target, verdict).await;
            watch.state_event(&verdict);
            let line = verdict.describe();
            let report = watch.report(verdict, elapsed);
            if report.exit() == Exit::Success {
                step.finish(line);
            } else {
                step.fail(line);
            }
            return Ok(report);
        }
        step.set_message(verdict.describe());
        watch.state_event(&verdict);

        let remaining = target.timeout.saturating_sub(elapsed);
        tokio::select! {
            () = tokio::time::sleep(pause.min(remaining)) => {}
            () = interrupt.wait() => {
                let (running, desired) = watch.counts;
                let report = watch.report(Verdict::Interrupted { running, desired }, elapsed);
                step.fail("interrupted; the rollout goes on in ECS");
                return Ok(report);
            }
        }
    }
}

/// State carried between polls: what was already shown, and what wsctl did.
struct Watch<'a> {
    clients: &'a Clients,
    target: &'a Target,
    step: &'a Step,
    deployment_id: Option<String>,
    /// Our deployment's task definition, once seen.
    task_definition: String,
    /// (running, desired) of the deployment followed, at the last good poll.
    counts: (i32, i32),
    restore: Option<Restore>,
    seen_events: HashSet<String>,
    seen_tasks: HashSet<String>,
    stopped: Vec<StoppedTask>,
    last_health: String,
    /// The deployment's state at the last `deployment_state` event (`--output ndjson`).
    last_state: String,
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
            task_definition: String::new(),
            counts: (0, 0),
            restore: None,
            seen_events: HashSet::new(),
            seen_tasks: HashSet::new(),
            stopped: Vec::new(),
            last_health: String::new(),
            last_state: String::new(),
            log_config: HashMap::new(),
        }
    }

    /// A `deployment_state` event each time the deployment's state changes (ndjson).
    fn state_event(&mut self, verdict: &Verdict) {
        let state = verdict.describe();
        if state != self.last_state {
            self.step.event(
                "deployment_state",
                serde_json::json!({"deployment_id": self.deployment_id, "state": verdict,
                    "description": state}),
            );
            self.last_state = state;
        }
    }

    fn report(&self, verdict: Verdict, elapsed: Duration) -> Report {
        let deployment_id = self.deployment_id.clone().unwrap_or_default();
        Report {
            verdict,
            follow: self
                .restore
                .as_ref()
                .map_or_else(|| deployment_id.clone(), |r| r.deployment_id.clone()),
            deployment_id,
            task_definition: self.task_definition.clone(),
            stopped_tasks: self.stopped.clone(),
            elapsed,
        }
    }

    /// One poll: everything the verdict needs, shown as it changes.
    async fn poll(&mut self, elapsed: Duration) -> anyhow::Result<Observation> {
        let ecs = &self.clients.ecs;
        let service =
            live_service::require_service(ecs, &self.target.cluster, &self.target.service).await?;
        self.show_new_events(&service);
        let deployment_id = self.deployment_id(&service)?;
        self.collect_stopped_tasks(&deployment_id).await?;
        let deployments: Vec<DeploymentState> = live_service::deployments(&service);
        let health = self.target_health(&service).await?;
        let targets = if service.load_balancers().is_empty() {
            Targets::NoLoadBalancer
        } else if settled(&deployments, &deployment_id) {
            self.task_targets(&deployment_id, &health).await?
        } else {
            Targets::NotRead
        };
        let followed = self
            .restore
            .as_ref()
            .map_or(deployment_id.as_str(), |r| r.deployment_id.as_str());
        if let Some(d) = deployments.iter().find(|d| d.id == followed) {
            self.counts = (d.running, d.desired);
        }
        if let Some(d) = deployments.iter().find(|d| d.id == deployment_id) {
            self.task_definition.clone_from(&d.task_definition);
        }
        Ok(Observation {
            deployment_id,
            deployments,
            stopped_tasks: self.stopped.clone(),
            events: service
                .events()
                .iter()
                .filter_map(|e| e.message())
                .map(str::to_owned)
                .collect(),
            targets,
            restore: self.restore.clone(),
            elapsed,
            timeout: self.target.timeout,
        })
    }

    /// What wsctl does on a verdict: roll back a release that fails fast (when it has one to
    /// go back to), and name who started a deployment that superseded ours.
    async fn act_on(&mut self, verdict: &mut Verdict) {
        match verdict {
            Verdict::TasksStopped { rule, .. } => {
                let Some(td) = self.target.restore_to.clone() else {
                    return;
                };
                if self.restore.is_some() {
                    return;
                }
                self.step.println(format!(
                    "the new release fails ({rule}): rolling back to {}, so that what runs is \
                     what the verdict says",
                    short_td(&td)
                ));
                let updated = self
                    .clients
                    .ecs
                    .update_service()
                    .cluster(&self.target.cluster)
                    .service(&self.target.service)
                    .task_definition(&td)
                    .send()
                    .await;
                match updated.map(|out| live_service::primary_deployment(out.service())) {
                    Ok(Some(id)) => {
                        let reason = format!("the new release failed fast: {rule}");
                        *verdict = Verdict::RollingBack(Rollback {
                            by: Actor::Wsctl,
                            reason: reason.clone(),
                            restored: Some(td),
                            running: 0,
                            desired: self.counts.1,
                        });
                        self.restore = Some(Restore {
                            deployment_id: id,
                            reason,
                        });
                    }
                    Ok(None) => rule.push_str("; the rollback started no deployment"),
                    Err(err) => rule.push_str(&format!(
                        "; rolling back to {} failed: {}",
                        short_td(&td),
                        crate::aws::error(err)
                    )),
                }
            }
            Verdict::Superseded {
                task_definition,
                started_by,
                ..
            } => *started_by = self.started_by(task_definition).await,
            _ => {}
        }
    }

    /// Who started the deployment of `task_definition`, as far as ECS records it: ECS keeps
    /// no principal on a deployment, but a wsctl deploy tags its revision with the commit.
    async fn started_by(&self, task_definition: &str) -> Option<String> {
        if task_definition.is_empty() {
            return None;
        }
        let out = self
            .clients
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .ok()?;
        let commit = out
            .tags()
            .iter()
            .find(|t| t.key() == Some(crate::deploy::release::TAG_COMMIT))
            .and_then(|t| t.value())?;
        Some(format!("a wsctl deploy of commit {commit}"))
    }

    fn deployment_id(&mut self, service: &Service) -> anyhow::Result<String> {
        if let Some(id) = &self.deployment_id {
            return Ok(id.clone());
        }
        let primary = live_service::primary_deployment(Some(service)).ok_or_else(|| {
            fail(
                Exit::Failure,
                format!("service {} has no PRIMARY deployment", self.target.service),
            )
        })?;
        self.deployment_id = Some(primary.clone());
        Ok(primary)
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
            self.step.event(
                "service_event",
                serde_json::json!({"message": event.message().unwrap_or_default()}),
            );
        }
    }

    /// Finds tasks of our deployment that stopped since the last poll, with their logs.
    async fn collect_stopped_tasks(&mut self, deployment_id: &str) -> anyhow::Result<()> {
        let tasks = self
            .deployment_tasks(deployment_id, DesiredStatus::Stopped)
            .await?;
        for task in &tasks {
            // Only tasks that really stopped; STOPPING ones come back next poll.
            if task.last_status() != Some("STOPPED") {
                continue;
            }
            self.seen_tasks
                .insert(task.task_arn().unwrap_or_default().to_owned());
            let mut stopped = stopped_task(task);
            if stopped.is_failure() {
                stopped.last_log_lines = self.last_log_lines(task).await;
                self.step
                    .event("stopped_task", serde_json::json!({"task": stopped}));
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

    /// The tasks ECS started for `deployment_id` with this desired status, described; stopped
    /// tasks already seen are not asked about again.
    async fn deployment_tasks(
        &self,
        deployment_id: &str,
        status: DesiredStatus,
    ) -> anyhow::Result<Vec<Task>> {
        let what = status.as_str().to_ascii_lowercase();
        let ecs = &self.clients.ecs;
        let listed = ecs
            .list_tasks()
            .cluster(&self.target.cluster)
            .started_by(deployment_id)
            .desired_status(status)
            .send()
            .await
            .aws_context(|| format!("listing {what} tasks of the deployment"))?;
        let new: Vec<String> = listed
            .task_arns()
            .iter()
            .filter(|arn| !self.seen_tasks.contains(*arn))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let described = ecs
            .describe_tasks()
            .cluster(&self.target.cluster)
            .set_tasks(Some(new))
            .send()
            .await
            .aws_context(|| format!("describing {what} tasks of the deployment"))?;
        Ok(described.tasks().to_vec())
    }

    /// Every target of the service's target groups, with the counts printed when they change
    /// ("targets: 2 healthy, 1 initial"). A read error is the poll's error: success needs
    /// the targets, so it is never skipped in silence.
    async fn target_health(
        &mut self,
        service: &Service,
    ) -> anyhow::Result<Vec<(String, Vec<TargetHealthDescription>)>> {
        let mut groups = Vec::new();
        for tg in service
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn())
        {
            let out = self
                .clients
                .elb
                .describe_target_health()
                .target_group_arn(tg)
                .send()
                .await
                .aws_context(|| format!("reading the target health of {tg}"))?;
            groups.push((tg.to_owned(), out.target_health_descriptions().to_vec()));
        }
        let line = count_states(groups.iter().flat_map(|(_, targets)| {
            targets.iter().map(|t| {
                t.target_health()
                    .and_then(|h| h.state())
                    .map_or("unknown", |s| s.as_str())
            })
        }));
        if !line.is_empty() && line != self.last_health {
            self.step.println(format!("targets: {line}"));
            self.last_health = line;
        }
        Ok(groups)
    }

    /// The target of each running task of our deployment, matched by the task's address
    /// (awsvpc tasks are registered by IP), in every target group of the service.
    async fn task_targets(
        &self,
        deployment_id: &str,
        groups: &[(String, Vec<TargetHealthDescription>)],
    ) -> anyhow::Result<Targets> {
        let tasks = self
            .deployment_tasks(deployment_id, DesiredStatus::Running)
            .await?;
        if tasks.is_empty() {
            return Ok(Targets::NoTasksListed);
        }
        let mut targets = Vec::new();
        for task in &tasks {
            let address = task_address(task);
            for (_, descriptions) in groups {
                let state = descriptions
                    .iter()
                    .find(|d| {
                        d.target().and_then(|t| t.id()).is_some()
                            && d.target().and_then(|t| t.id()) == address.as_deref()
                    })
                    .and_then(|d| d.target_health())
                    .and_then(|h| h.state())
                    .map_or("not registered", |s| s.as_str());
                targets.push(TaskTarget {
                    task_id: task_id(task),
                    state: state.to_owned(),
                });
            }
        }
        Ok(Targets::Read(targets))
    }
}

/// A task's private IPv4 address (its network interface's, in awsvpc mode).
fn task_address(task: &Task) -> Option<String> {
    task.attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .map(str::to_owned)
}

fn task_id(task: &Task) -> String {
    live_service::task_id(task.task_arn().unwrap_or_default()).to_owned()
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

/// The command that resumes watching the deployment a report follows, when ECS may still be
/// rolling it out.
pub fn resume_command(env: &str, report: &Report) -> Option<String> {
    (report.verdict.rollout_goes_on() && !report.follow.is_empty()).then(|| {
        format!(
            "wsctl status --env {env} --wait --deployment {}",
            report.follow
        )
    })
}

/// What to tell an operator whose wait ended before ECS did: what goes on, and how to resume.
pub fn resume_hint(env: &str, report: &Report) -> Option<String> {
    let command = resume_command(env, report)?;
    let deployment = format!(
        "deployment {} ({})",
        report.follow,
        short_td(&report.task_definition)
    );
    let what = match &report.verdict {
        Verdict::TasksStopped { .. } => format!(
            "ECS keeps trying to start {deployment}; its circuit breaker rolls it back after \
             repeated failures, `wsctl rollback --env {env}` does now."
        ),
        Verdict::TimedOut { .. } => format!("{deployment} may still finish in ECS."),
        Verdict::WaitFailed { .. } => {
            format!("wsctl could not follow {deployment} to its end; ECS carries on.")
        }
        _ if report.follow != report.deployment_id => format!(
            "wsctl's rollback ({deployment}) is still rolling out in ECS; nothing was undone."
        ),
        _ => format!("{deployment} is still rolling out in ECS; nothing was undone."),
    };
    Some(format!("{what}\nResume watching with: {command}"))
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
