//! One verdict from every signal ECS gives about a deployment. The rules are written for
//! operators in `docs/wsctl-deploy.md` ("The verdict"); what deploy tools get wrong, and the
//! rule here that avoids it:
//! - "the service is stable" is not "our release runs": a circuit-breaker rollback also ends
//!   stable, on the old task definition. So we follow *our* deployment, by its id, also when a
//!   wait is resumed (`status --wait --deployment ID`).
//! - a rolled-back deployment is a failure although nothing is "in progress"; and "rolled back"
//!   is only said once the rollback deployment completed, so exit 3 means the old release runs.
//! - a deployment replaced by someone else's is superseded, not rolled back.
//! - fail fast on what will not heal (the same failure on two tasks, an image that does not
//!   exist, a secret that cannot be read), wait on what may: one flaky task is a warning, as
//!   ECS replaces it.
//! - behind a load balancer, ECS's "completed" is not enough: our tasks' targets must be healthy.
//! - a desired count of 0 runs nothing, so it is never a success.
//! - the wait has a deadline; running out of it is its own outcome (the rollout may still end
//!   well on its own).

use std::time::Duration;

use serde::Serialize;

use crate::exit::Exit;

pub use crate::live_service::DeploymentState;

impl DeploymentState {
    /// Whether ECS is done with this deployment: it is the PRIMARY one, its rollout COMPLETED
    /// (without a circuit breaker ECS reports no rollout state: it is the only deployment
    /// left) and it runs every desired task.
    fn settled(&self, all: &[DeploymentState]) -> bool {
        let done = match self.rollout_state.as_deref() {
            Some(state) => state == "COMPLETED",
            None => all.len() == 1,
        };
        self.status == "PRIMARY" && done && self.running == self.desired
    }
}

/// Whether ECS reports deployment `id` done (then its targets are worth reading).
pub fn settled(deployments: &[DeploymentState], id: &str) -> bool {
    deployments
        .iter()
        .any(|d| d.id == id && d.settled(deployments))
}

/// A task of our deployment that stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoppedTask {
    pub task_id: String,
    /// ECS's category: TaskFailedToStart, EssentialContainerExited, ServiceSchedulerInitiated...
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// Per container: "name: exit 1 (reason)".
    pub containers: Vec<String>,
    /// The last lines the task logged, when they could be read.
    pub last_log_lines: Vec<String>,
}

impl StoppedTask {
    /// Whether this stop means something is wrong with the release (and not a scale-in, a
    /// user's stop or a Spot interruption, which say nothing about the image).
    pub fn is_failure(&self) -> bool {
        let reason = self.stopped_reason.as_deref().unwrap_or_default();
        match self.stop_code.as_deref() {
            Some("TaskFailedToStart" | "EssentialContainerExited") => true,
            Some("UserInitiated" | "SpotInterruption" | "TerminationNotice") => false,
            _ => {
                let reason = reason.to_ascii_lowercase();
                reason.contains("health check")
                    || reason.contains("essential container")
                    || reason.contains("cannotpull")
                    || reason.contains("resourceinitializationerror")
            }
        }
    }

    /// Two stops are the same failure when ECS gives the same stop code and reason and the
    /// containers exited the same way: what one task hit, the next will too.
    fn failure_key(&self) -> (Option<&str>, Option<&str>, &[String]) {
        (
            self.stop_code.as_deref(),
            self.stopped_reason.as_deref(),
            &self.containers,
        )
    }

    /// Why this stop will not heal when ECS starts the task again, if it will not: the image
    /// does not exist or may not be pulled, or a secret cannot be read.
    pub fn will_not_heal(&self) -> Option<&'static str> {
        let text = format!(
            "{} {}",
            self.stopped_reason.as_deref().unwrap_or_default(),
            self.containers.join(" ")
        )
        .to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if text.contains("cannotpullcontainer") {
            if any(&["not found", "manifest unknown", "does not exist"]) {
                return Some("the image does not exist");
            }
            if any(&["403", "access denied", "accessdenied", "not authorized"]) {
                return Some("the image may not be pulled (access denied)");
            }
        }
        if text.contains("secret")
            && any(&[
                "accessdenied",
                "access denied",
                "not authorized",
                "resourcenotfound",
                "parameternotfound",
                "does not exist",
            ])
        {
            return Some("a secret cannot be read");
        }
        None
    }

    fn summary(&self) -> StoppedTaskSummary {
        StoppedTaskSummary {
            task_id: self.task_id.clone(),
            reason: self
                .stopped_reason
                .clone()
                .unwrap_or_else(|| self.stop_code.clone().unwrap_or_else(|| "stopped".into())),
        }
    }
}

/// The health of our deployment's targets in the service's target group(s).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Targets {
    /// Not read: ECS does not report our deployment done yet.
    #[default]
    NotRead,
    /// The service has no load balancer: nothing to check.
    NoLoadBalancer,
    /// ECS lists no running task of our deployment, so no target can be matched to one.
    NoTasksListed,
    /// Each running task of our deployment, per target group, with its target's state.
    Read(Vec<TaskTarget>),
}

/// One of our tasks as its target group sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTarget {
    pub task_id: String,
    /// healthy, initial, unhealthy, draining, unused, unavailable, or "not registered".
    pub state: String,
}

/// The deployment wsctl started to put the previous release back after failing fast.
#[derive(Debug, Clone)]
pub struct Restore {
    pub deployment_id: String,
    pub reason: String,
}

/// Everything observed at one poll.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The deployment we are waiting for.
    pub deployment_id: String,
    /// The service's deployments, as listed by DescribeServices.
    pub deployments: Vec<DeploymentState>,
    /// Tasks started by our deployment that have stopped.
    pub stopped_tasks: Vec<StoppedTask>,
    /// The service's event messages as ECS lists them (newest first): they say whether ECS
    /// failed a deployment that it no longer lists.
    pub events: Vec<String>,
    pub targets: Targets,
    pub restore: Option<Restore>,
    pub elapsed: Duration,
    pub timeout: Duration,
}

/// Who rolled a deployment back.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    /// ECS's circuit breaker.
    Ecs,
    /// wsctl itself, after failing fast (so the service runs what the verdict says).
    Wsctl,
}

impl Actor {
    fn name(self) -> &'static str {
        match self {
            Actor::Ecs => "ECS",
            Actor::Wsctl => "wsctl",
        }
    }
}

/// The outcome of a rollout, or where it stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Our deployment finished, runs the desired number of tasks, and their targets are
    /// healthy. Warnings: what went wrong on the way but healed (a flaky task).
    Completed {
        running: i32,
        desired: i32,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// Our deployment was rolled back and the rollback deployment completed: the previous
    /// release runs.
    RolledBack(Rollback),
    /// The rollback deployment is still under way (not final: the wait goes on).
    RollingBack(Rollback),
    /// The release fails in a way that will not heal (`rule` says which); ECS goes on trying
    /// unless wsctl rolled back (then the verdict is `RolledBack` by wsctl).
    TasksStopped {
        tasks: Vec<StoppedTaskSummary>,
        rule: String,
    },
    /// Another deployment replaced ours before it finished: someone else deployed.
    Superseded {
        /// The deployment that replaced ours.
        by: String,
        task_definition: String,
        /// Who started it, where ECS's records say (a wsctl deploy tags its revision).
        #[serde(skip_serializing_if = "Option::is_none")]
        started_by: Option<String>,
    },
    /// The service's desired count is 0: the release runs nothing.
    NothingToRun,
    /// The deadline passed first; `note` says what was still awaited.
    TimedOut {
        running: i32,
        desired: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Still rolling out (not final).
    InProgress {
        running: i32,
        desired: i32,
        pending: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        waiting_for: Option<String>,
    },
    /// The operator pressed Ctrl-C (set by the wait loop, never by [`judge`]).
    Interrupted { running: i32, desired: i32 },
    /// ECS could not be asked any more (a permanent error); the rollout goes on.
    WaitFailed { error: String },
}

/// A rollback of our deployment: who, why, and what runs (`running` of `desired` tasks of
/// `restored`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rollback {
    pub by: Actor,
    pub reason: String,
    /// The task definition the service goes back to, if known.
    pub restored: Option<String>,
    pub running: i32,
    pub desired: i32,
}

impl Rollback {
    fn describe(&self, done: bool) -> String {
        let to = self
            .restored
            .as_deref()
            .map_or("the previous release", short_td);
        let (running, desired) = (self.running, self.desired);
        if done {
            format!(
                "rolled back by {} to {to} ({running}/{desired} tasks running): {}",
                self.by.name(),
                self.reason
            )
        } else {
            format!(
                "{} is rolling back to {to} ({running}/{desired} running): {}",
                self.by.name(),
                self.reason
            )
        }
    }
}

/// The part of a stopped task a verdict reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoppedTaskSummary {
    pub task_id: String,
    pub reason: String,
}

impl Verdict {
    /// Whether waiting can stop.
    pub fn is_final(&self) -> bool {
        !matches!(self, Verdict::InProgress { .. } | Verdict::RollingBack(_))
    }

    /// The process exit code for this outcome (see `exit.rs`).
    pub fn exit(&self) -> Exit {
        match self {
            Verdict::Completed { .. } => Exit::Success,
            Verdict::RolledBack(_) => Exit::RolledBack,
            Verdict::Superseded { .. } => Exit::Superseded,
            Verdict::TimedOut { .. } => Exit::TimedOut,
            Verdict::Interrupted { .. } => Exit::Interrupted,
            Verdict::TasksStopped { .. }
            | Verdict::NothingToRun
            | Verdict::WaitFailed { .. }
            | Verdict::InProgress { .. }
            | Verdict::RollingBack(_) => Exit::Failure,
        }
    }

    /// Whether ECS may still be rolling the deployment out when the wait ends with this
    /// verdict (then a resume command is worth printing).
    pub fn rollout_goes_on(&self) -> bool {
        matches!(
            self,
            Verdict::TasksStopped { .. }
                | Verdict::TimedOut { .. }
                | Verdict::InProgress { .. }
                | Verdict::RollingBack(_)
                | Verdict::Interrupted { .. }
                | Verdict::WaitFailed { .. }
        )
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Completed {
                running,
                desired,
                warnings,
            } => {
                let mut line = format!("rollout completed: {running}/{desired} tasks running");
                for warning in warnings {
                    line.push_str(&format!("; warning: {warning}"));
                }
                line
            }
            Verdict::RolledBack(rollback) => rollback.describe(true),
            Verdict::RollingBack(rollback) => rollback.describe(false),
            Verdict::TasksStopped { tasks, rule } => {
                let first = tasks.first().map_or(String::new(), |t| {
                    format!("; task {} stopped: {}", t.task_id, t.reason)
                });
                format!("the new release fails: {rule}{first}")
            }
            Verdict::Superseded {
                by,
                task_definition,
                started_by,
            } => format!(
                "superseded: deployment {by} ({}) replaced ours, started by {}",
                short_td(task_definition),
                started_by
                    .as_deref()
                    .unwrap_or("someone ECS does not name (CloudTrail's UpdateService events do)")
            ),
            Verdict::NothingToRun => {
                "the service's desired count is 0: the release runs no task".into()
            }
            Verdict::TimedOut {
                running,
                desired,
                note,
            } => {
                let note = note.as_deref().map_or(String::new(), |n| format!("; {n}"));
                format!("timed out waiting: {running}/{desired} tasks running{note}")
            }
            Verdict::InProgress {
                running,
                desired,
                pending,
                waiting_for,
            } => {
                let waiting = waiting_for
                    .as_deref()
                    .map_or(String::new(), |w| format!("; waiting for {w}"));
                format!("{running}/{desired} running, {pending} pending{waiting}")
            }
            Verdict::Interrupted { running, desired } => {
                format!("stopped watching: {running}/{desired} tasks running")
            }
            Verdict::WaitFailed { error } => {
                format!("the wait failed: {error}; the rollout goes on in ECS")
            }
        }
    }
}

/// "family:12" from a task definition ARN (or the value as given).
pub fn short_td(task_definition: &str) -> &str {
    task_definition
        .rsplit_once('/')
        .map_or(task_definition, |(_, name)| name)
}

/// The verdict for one observation. Order matters: who replaced our deployment first (a
/// rollback or someone else's deploy), then a finished rollout (it wins over an old stopped
/// task), then the stopped tasks, then the deadline.
pub fn judge(o: &Observation) -> Verdict {
    let primary = o.deployments.iter().find(|d| d.status == "PRIMARY");
    if let Some(restore) = &o.restore {
        let restoring = o
            .deployments
            .iter()
            .find(|d| d.id == restore.deployment_id)
            .or(primary);
        return rolling_back(o, Actor::Wsctl, restore.reason.clone(), restoring);
    }
    let ours = o.deployments.iter().find(|d| d.id == o.deployment_id);
    let other_primary = primary.filter(|p| p.id != o.deployment_id);
    let Some(d) = ours else {
        // ECS lists a deployment until it has been replaced and drained: a rollback (ECS said
        // ours failed) or someone else's deploy.
        return match failure_event(&o.events, &o.deployment_id) {
            Some(reason) => rolling_back(o, Actor::Ecs, reason, other_primary),
            None => superseded(other_primary),
        };
    };
    if d.rollout_state.as_deref() == Some("FAILED") {
        let reason = d
            .rollout_reason
            .clone()
            .unwrap_or_else(|| "the deployment failed".into());
        return rolling_back(o, Actor::Ecs, reason, other_primary);
    }
    if d.status != "PRIMARY" && other_primary.is_some() {
        return match failure_event(&o.events, &o.deployment_id) {
            Some(reason) => rolling_back(o, Actor::Ecs, reason, other_primary),
            None => superseded(other_primary),
        };
    }
    if d.status == "PRIMARY" && d.desired == 0 {
        return Verdict::NothingToRun;
    }

    let failed: Vec<&StoppedTask> = o.stopped_tasks.iter().filter(|t| t.is_failure()).collect();
    let warnings: Vec<String> = failed
        .iter()
        .map(|t| {
            format!(
                "task {} stopped ({}) and ECS replaced it",
                t.task_id,
                t.summary().reason
            )
        })
        .collect();
    let mut waiting_for = None;
    if d.settled(&o.deployments) {
        match &o.targets {
            Targets::NoLoadBalancer => {}
            Targets::NoTasksListed => {
                let mut warnings = warnings;
                warnings.push(format!(
                    "target health not verified: ECS lists no running task of deployment {}",
                    d.id
                ));
                return completed(d, warnings);
            }
            Targets::Read(targets)
                if !targets.is_empty() && targets.iter().all(|t| t.state == "healthy") => {}
            Targets::Read(targets) => {
                waiting_for = Some(format!(
                    "the new tasks' targets to be healthy ({})",
                    count_states(targets.iter().map(|t| t.state.as_str()))
                ));
            }
            Targets::NotRead => waiting_for = Some("target health".into()),
        }
        if waiting_for.is_none() {
            return completed(d, warnings);
        }
    }

    if let Some(rule) = fail_fast_rule(&failed) {
        return Verdict::TasksStopped {
            tasks: failed.iter().map(|t| t.summary()).collect(),
            rule,
        };
    }
    if o.elapsed >= o.timeout {
        return Verdict::TimedOut {
            running: d.running,
            desired: d.desired,
            note: waiting_for.map(|w| format!("still waiting for {w}")),
        };
    }
    Verdict::InProgress {
        running: d.running,
        desired: d.desired,
        pending: d.pending,
        waiting_for,
    }
}

fn completed(d: &DeploymentState, warnings: Vec<String>) -> Verdict {
    Verdict::Completed {
        running: d.running,
        desired: d.desired,
        warnings,
    }
}

/// The rule that fires on these failed tasks, if one does: what will not heal.
fn fail_fast_rule(failed: &[&StoppedTask]) -> Option<String> {
    if let Some((task, why)) = failed
        .iter()
        .find_map(|t| t.will_not_heal().map(|why| (t, why)))
    {
        return Some(format!("{why} (task {})", task.task_id));
    }
    for (i, a) in failed.iter().enumerate() {
        let same = failed[i + 1..]
            .iter()
            .filter(|b| b.failure_key() == a.failure_key())
            .count();
        if same > 0 {
            return Some(format!(
                "the same failure on {} tasks: {}",
                same + 1,
                a.summary().reason
            ));
        }
    }
    None
}

/// A rollback by `by` towards the deployment `restoring`: final once that deployment is done.
fn rolling_back(
    o: &Observation,
    by: Actor,
    reason: String,
    restoring: Option<&DeploymentState>,
) -> Verdict {
    let Some(p) = restoring else {
        // Failed with nothing to go back to (a breaker without rollback, a first release).
        let tasks = o
            .stopped_tasks
            .iter()
            .filter(|t| t.is_failure())
            .map(StoppedTask::summary)
            .collect();
        return Verdict::TasksStopped {
            tasks,
            rule: reason,
        };
    };
    let rollback = Rollback {
        by,
        reason,
        restored: Some(p.task_definition.clone()),
        running: p.running,
        desired: p.desired,
    };
    if p.settled(&o.deployments) {
        return Verdict::RolledBack(rollback);
    }
    if o.elapsed >= o.timeout {
        return Verdict::TimedOut {
            running: p.running,
            desired: p.desired,
            note: Some(format!(
                "{} is still rolling back to {} (deployment {}): {}",
                by.name(),
                short_td(&p.task_definition),
                p.id,
                rollback.reason
            )),
        };
    }
    Verdict::RollingBack(rollback)
}

fn superseded(by: Option<&DeploymentState>) -> Verdict {
    Verdict::Superseded {
        by: by.map_or_else(|| "(none listed)".into(), |p| p.id.clone()),
        task_definition: by.map(|p| p.task_definition.clone()).unwrap_or_default(),
        started_by: None,
    }
}

/// ECS's event saying deployment `id` failed ("(service s) (deployment ecs-svc/1) deployment
/// failed: tasks failed to start."), which outlives the deployment in the list.
fn failure_event(events: &[String], id: &str) -> Option<String> {
    let tag = format!("(deployment {id})");
    events
        .iter()
        .find(|m| m.contains(&tag) && m.contains("failed"))
        .map(|m| m.trim().to_owned())
}

/// "1 healthy, 1 initial".
pub fn count_states<'a>(states: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for state in states {
        match counts.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    counts.sort();
    counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, status: &str, rollout: Option<&str>, running: i32) -> DeploymentState {
        DeploymentState {
            id: id.into(),
            status: status.into(),
            rollout_state: rollout.map(Into::into),
            task_definition: format!("arn:aws:ecs:us-east-1:1:task-definition/ws:{id}"),
            desired: 2,
            running,
            ..Default::default()
        }
    }

    fn observe(deployments: Vec<DeploymentState>) -> Observation {
        Observation {
            deployment_id: "new".into(),
            deployments,
            targets: Targets::NoLoadBalancer,
            elapsed: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            ..Default::default()
        }
    }

    fn stopped(id: &str, code: &str, reason: &str) -> StoppedTask {
        StoppedTask {
            task_id: id.into(),
            stop_code: Some(code.into()),
            stopped_reason: Some(reason.into()),
            ..Default::default()
        }
    }

    #[test]
    fn completed_needs_our_deployment_done_and_all_tasks_running() {
        let v = judge(&observe(vec![deployment(
            "new",
            "PRIMARY",
            Some("COMPLETED"),
            2,
        )]));
        assert_eq!(
            v,
            Verdict::Completed {
                running: 2,
                desired: 2,
                warnings: vec![]
            }
        );
        assert_eq!(v.exit(), Exit::Success);

        let v = judge(&observe(vec![
            deployment("new", "PRIMARY", Some("IN_PROGRESS"), 2),
            deployment("old", "ACTIVE", Some("COMPLETED"), 2),
        ]));
        assert!(matches!(v, Verdict::InProgress { .. }), "{v:?}");

        let v = judge(&observe(vec![deployment(
            "new",
            "PRIMARY",
            Some("COMPLETED"),
            1,
        )]));
        assert!(matches!(v, Verdict::InProgress { running: 1, .. }), "{v:?}");
    }

    #[test]
    fn behind_a_load_balancer_success_needs_our_targets_healthy() {
        let mut o = observe(vec![deployment("new", "PRIMARY", Some("COMPLETED"), 2)]);
        o.targets = Targets::NotRead;
        assert!(!judge(&o).is_final(), "{:?}", judge(&o));
        let target = |task: &str, state: &str| TaskTarget {
            task_id: task.into(),
            state: state.into(),
        };
        o.targets = Targets::Read(vec![target("a", "healthy"), target("b", "initial")]);
        let v = judge(&o);
        match &v {
            Verdict::InProgress { waiting_for, .. } => assert!(
                waiting_for
                    .as_deref()
                    .is_some_and(|w| w.contains("1 healthy, 1 initial")),
                "{v:?}"
            ),
            other => panic!("not done while a target warms up: {other:?}"),
        }
        o.elapsed = o.timeout;
        let v = judge(&o);
        assert_eq!(v.exit(), Exit::TimedOut);
        assert!(v.describe().contains("targets to be healthy"), "{v:?}");

        o.elapsed = Duration::from_secs(10);
        o.targets = Targets::Read(vec![target("a", "healthy"), target("b", "healthy")]);
        assert_eq!(judge(&o).exit(), Exit::Success);

        // An emulator that counts tasks it does not list: done, with the check named as skipped.
        o.targets = Targets::NoTasksListed;
        let v = judge(&o);
        assert_eq!(v.exit(), Exit::Success);
        assert!(v.describe().contains("target health not verified"), "{v:?}");
    }

    #[test]
    fn a_circuit_breaker_rollback_is_final_once_the_old_release_runs_again() {
        let mut ours = deployment("new", "ACTIVE", Some("FAILED"), 0);
        ours.rollout_reason = Some("ECS deployment circuit breaker: tasks failed to start.".into());
        // Rolling back: not final, and not a success.
        let v = judge(&observe(vec![
            deployment("rollback", "PRIMARY", Some("IN_PROGRESS"), 1),
            ours.clone(),
        ]));
        assert!(
            matches!(v, Verdict::RollingBack(Rollback { by: Actor::Ecs, .. })),
            "{v:?}"
        );
        assert!(!v.is_final());

        let v = judge(&observe(vec![
            deployment("rollback", "PRIMARY", Some("COMPLETED"), 2),
            ours.clone(),
        ]));
        match &v {
            Verdict::RolledBack(Rollback {
                by,
                reason,
                restored,
                running,
                ..
            }) => {
                assert_eq!(*by, Actor::Ecs);
                assert!(reason.contains("circuit breaker"), "{reason}");
                assert!(
                    restored
                        .as_deref()
                        .is_some_and(|td| td.ends_with("ws:rollback"))
                );
                assert_eq!(*running, 2);
            }
            other => panic!("expected a rollback, got {other:?}"),
        }
        assert_eq!(v.exit(), Exit::RolledBack);

        // The deadline during the rollback: timed out, saying ECS is still rolling back.
        let mut o = observe(vec![
            deployment("rollback", "PRIMARY", Some("IN_PROGRESS"), 1),
            ours,
        ]);
        o.elapsed = o.timeout;
        let v = judge(&o);
        assert_eq!(v.exit(), Exit::TimedOut);
        assert!(v.describe().contains("still rolling back"), "{v:?}");
    }

    #[test]
    fn once_ecs_drops_our_deployment_its_failure_event_tells_a_rollback_from_a_new_deploy() {
        let mut o = observe(vec![deployment(
            "rollback",
            "PRIMARY",
            Some("COMPLETED"),
            2,
        )]);
        o.events = vec![
            "(service ws) has reached a steady state.".into(),
            "(service ws) (deployment new) deployment failed: tasks failed to start.".into(),
        ];
        let v = judge(&o);
        assert_eq!(v.exit(), Exit::RolledBack, "{v:?}");

        o.events.pop();
        let v = judge(&o);
        match &v {
            Verdict::Superseded {
                by,
                task_definition,
                ..
            } => {
                assert_eq!(by, "rollback");
                assert!(task_definition.ends_with("ws:rollback"));
            }
            other => panic!("expected superseded, got {other:?}"),
        }
        assert_eq!(v.exit(), Exit::Superseded);
    }

    #[test]
    fn another_deploy_during_ours_supersedes_it() {
        let v = judge(&observe(vec![
            deployment("theirs", "PRIMARY", Some("IN_PROGRESS"), 0),
            deployment("new", "ACTIVE", Some("IN_PROGRESS"), 1),
        ]));
        assert!(
            matches!(&v, Verdict::Superseded { by, .. } if by == "theirs"),
            "{v:?}"
        );
        assert!(v.describe().contains("theirs"), "{}", v.describe());
    }

    #[test]
    fn one_flaky_task_is_a_warning_the_same_failure_twice_fails_fast() {
        let mut o = observe(vec![
            deployment("new", "PRIMARY", Some("IN_PROGRESS"), 1),
            deployment("old", "ACTIVE", Some("COMPLETED"), 2),
        ]);
        o.stopped_tasks.push(stopped(
            "t0",
            "ServiceSchedulerInitiated",
            "Scaling activity initiated by (deployment new)",
        ));
        let health = "Task failed ELB health checks in (target-group arn:aws:tg/ws/1)";
        o.stopped_tasks
            .push(stopped("t1", "ServiceSchedulerInitiated", health));
        assert!(matches!(judge(&o), Verdict::InProgress { .. }));

        // ECS replaced it and the rollout completed: success, with the flaky task as a warning.
        let mut done = o.clone();
        done.deployments = vec![deployment("new", "PRIMARY", Some("COMPLETED"), 2)];
        match judge(&done) {
            Verdict::Completed { warnings, .. } => {
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                assert!(warnings[0].contains("t1") && warnings[0].contains("ELB health checks"));
            }
            other => panic!("expected completed, got {other:?}"),
        }

        // A second task with the same failure: it will not heal.
        o.stopped_tasks
            .push(stopped("t2", "ServiceSchedulerInitiated", health));
        match judge(&o) {
            Verdict::TasksStopped { tasks, rule } => {
                assert_eq!(tasks.len(), 2);
                assert!(rule.contains("same failure on 2 tasks"), "{rule}");
            }
            other => panic!("expected a fail-fast, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_image_or_secret_fails_fast_on_the_first_task() {
        let mut o = observe(vec![deployment("new", "PRIMARY", Some("IN_PROGRESS"), 0)]);
        o.stopped_tasks.push(stopped(
            "t1",
            "TaskFailedToStart",
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed \
             to resolve ref 1.dkr.ecr.us-east-1.amazonaws.com/ws:abc: not found",
        ));
        match judge(&o) {
            Verdict::TasksStopped { rule, .. } => {
                assert!(rule.contains("image does not exist"), "{rule}");
            }
            other => panic!("expected a fail-fast, got {other:?}"),
        }
        o.stopped_tasks[0].stopped_reason = Some(
            "ResourceInitializationError: unable to pull secrets or registry auth: unable to \
             retrieve secret from asm: AccessDeniedException: not authorized"
                .into(),
        );
        match judge(&o) {
            Verdict::TasksStopped { rule, .. } => assert!(rule.contains("secret"), "{rule}"),
            other => panic!("expected a fail-fast, got {other:?}"),
        }
    }

    #[test]
    fn wsctl_s_own_rollback_is_followed_to_its_end() {
        let mut o = observe(vec![
            deployment("restore", "PRIMARY", Some("IN_PROGRESS"), 1),
            deployment("new", "ACTIVE", Some("IN_PROGRESS"), 0),
        ]);
        o.restore = Some(Restore {
            deployment_id: "restore".into(),
            reason: "the same failure on 2 tasks".into(),
        });
        assert!(matches!(
            judge(&o),
            Verdict::RollingBack(Rollback {
                by: Actor::Wsctl,
                ..
            })
        ));
        o.deployments = vec![deployment("restore", "PRIMARY", Some("COMPLETED"), 2)];
        let v = judge(&o);
        assert!(
            matches!(
                v,
                Verdict::RolledBack(Rollback {
                    by: Actor::Wsctl,
                    running: 2,
                    ..
                })
            ),
            "{v:?}"
        );
        assert_eq!(v.exit(), Exit::RolledBack);
    }

    #[test]
    fn a_desired_count_of_zero_is_never_a_success() {
        let mut d = deployment("new", "PRIMARY", Some("COMPLETED"), 0);
        d.desired = 0;
        let v = judge(&observe(vec![d]));
        assert_eq!(v, Verdict::NothingToRun);
        assert_eq!(v.exit(), Exit::Failure);
    }

    #[test]
    fn the_deadline_gives_timed_out_unless_something_more_useful_is_known() {
        let mut o = observe(vec![deployment("new", "PRIMARY", Some("IN_PROGRESS"), 1)]);
        o.elapsed = o.timeout;
        let v = judge(&o);
        assert_eq!(
            v,
            Verdict::TimedOut {
                running: 1,
                desired: 2,
                note: None
            }
        );
        assert_eq!(v.exit(), Exit::TimedOut);

        o.deployments[0].running = 2;
        o.deployments[0].rollout_state = Some("COMPLETED".into());
        assert_eq!(judge(&o).exit(), Exit::Success);
    }

    #[test]
    fn without_a_circuit_breaker_the_only_deployment_running_everything_is_done() {
        let v = judge(&observe(vec![deployment("new", "PRIMARY", None, 2)]));
        assert_eq!(v.exit(), Exit::Success);
        let v = judge(&observe(vec![
            deployment("new", "PRIMARY", None, 2),
            deployment("old", "ACTIVE", None, 1),
        ]));
        assert!(!v.is_final());
    }
}
