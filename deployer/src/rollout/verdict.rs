//! One verdict from every signal ECS gives about a deployment.
//!
//! What deploy tools get wrong, and the rules here that avoid it:
//! - "the service is stable" is not "our release runs": a circuit-breaker rollback also ends
//!   stable, on the old task definition. So we follow *our* deployment, by its id.
//! - a rolled-back deployment is a failure even though nothing is "in progress" any more.
//! - tasks of our deployment that stop (crash, failed health check, image pull error) fail the
//!   deploy at once with their reason, instead of waiting the circuit breaker's many minutes.
//! - the wait has a deadline; running out of it is its own outcome (the rollout may still end
//!   well on its own).

use std::time::Duration;

use serde::Serialize;

use crate::exit::Exit;

/// One deployment of the service as ECS describes it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeploymentState {
    pub id: String,
    /// PRIMARY (the newest), ACTIVE (being replaced) or INACTIVE.
    pub status: String,
    /// IN_PROGRESS, COMPLETED or FAILED; absent when the service has no circuit breaker.
    pub rollout_state: Option<String>,
    pub rollout_reason: Option<String>,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
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
    /// Whether this stop means the release is broken (and not a scale-in, a user's stop or a
    /// Spot interruption, which say nothing about the image).
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
    pub elapsed: Duration,
    pub timeout: Duration,
}

/// The outcome of a rollout, or where it stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Our deployment finished and runs the desired number of tasks.
    Completed { running: i32, desired: i32 },
    /// ECS (the circuit breaker) rolled our deployment back; the previous release runs.
    RolledBack {
        reason: String,
        /// The task definition the service went back to, if known.
        restored: Option<String>,
    },
    /// Tasks of our deployment stopped; the release does not run.
    TasksStopped { tasks: Vec<StoppedTaskSummary> },
    /// The deadline passed first.
    TimedOut { running: i32, desired: i32 },
    /// Still rolling out.
    InProgress {
        running: i32,
        desired: i32,
        pending: i32,
    },
    /// The operator pressed Ctrl-C (set by the wait loop, never by [`judge`]).
    Interrupted { running: i32, desired: i32 },
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
        !matches!(self, Verdict::InProgress { .. })
    }

    /// The process exit code for this outcome (see `exit.rs`).
    pub fn exit(&self) -> Exit {
        match self {
            Verdict::Completed { .. } => Exit::Success,
            Verdict::RolledBack { .. } => Exit::RolledBack,
            Verdict::TasksStopped { .. } | Verdict::InProgress { .. } => Exit::Failure,
            Verdict::TimedOut { .. } => Exit::TimedOut,
            Verdict::Interrupted { .. } => Exit::Interrupted,
        }
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Completed { running, desired } => {
                format!("rollout completed: {running}/{desired} tasks running")
            }
            Verdict::RolledBack { reason, restored } => match restored {
                Some(td) => format!("rolled back to {}: {reason}", short_td(td)),
                None => format!("rolled back: {reason}"),
            },
            Verdict::TasksStopped { tasks } => {
                let first = tasks.first().map_or(String::new(), |t| {
                    format!(": task {} stopped: {}", t.task_id, t.reason)
                });
                format!("{} task(s) of the new release stopped{first}", tasks.len())
            }
            Verdict::TimedOut { running, desired } => {
                format!("timed out waiting: {running}/{desired} tasks running")
            }
            Verdict::InProgress {
                running,
                desired,
                pending,
            } => format!("{running}/{desired} running, {pending} pending"),
            Verdict::Interrupted { running, desired } => {
                format!("stopped watching: {running}/{desired} tasks running")
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

/// The verdict for one observation. Order matters: a finished rollout wins over an old stopped
/// task; a rollback or crash wins over the deadline, since it is the more useful answer.
pub fn judge(o: &Observation) -> Verdict {
    let ours = o.deployments.iter().find(|d| d.id == o.deployment_id);
    let primary = o.deployments.iter().find(|d| d.status == "PRIMARY");

    if let Some(d) = ours {
        let rollout_done = match d.rollout_state.as_deref() {
            Some(state) => state == "COMPLETED",
            // Without a circuit breaker ECS reports no rollout state: done when ours is the
            // only deployment left and runs everything.
            None => d.status == "PRIMARY" && o.deployments.len() == 1,
        };
        if d.status == "PRIMARY" && rollout_done && d.running == d.desired {
            return Verdict::Completed {
                running: d.running,
                desired: d.desired,
            };
        }
        if d.rollout_state.as_deref() == Some("FAILED") {
            return Verdict::RolledBack {
                reason: d
                    .rollout_reason
                    .clone()
                    .unwrap_or_else(|| "the deployment failed".into()),
                restored: primary
                    .filter(|p| p.id != d.id)
                    .map(|p| p.task_definition.clone()),
            };
        }
    } else {
        // Ours is gone: another deployment replaced it (a rollback, or a deploy started by
        // someone else). Either way our release is not what runs.
        return Verdict::RolledBack {
            reason: format!(
                "deployment {} is no longer listed; the service moved on to {}",
                o.deployment_id,
                primary.map_or("another deployment", |p| p.id.as_str())
            ),
            restored: primary.map(|p| p.task_definition.clone()),
        };
    }

    let failed: Vec<StoppedTaskSummary> = o
        .stopped_tasks
        .iter()
        .filter(|t| t.is_failure())
        .map(|t| StoppedTaskSummary {
            task_id: t.task_id.clone(),
            reason: t
                .stopped_reason
                .clone()
                .unwrap_or_else(|| t.stop_code.clone().unwrap_or_else(|| "stopped".into())),
        })
        .collect();
    if !failed.is_empty() {
        return Verdict::TasksStopped { tasks: failed };
    }

    let (running, desired, pending) = ours.map_or((0, 0, 0), |d| (d.running, d.desired, d.pending));
    if o.elapsed >= o.timeout {
        return Verdict::TimedOut { running, desired };
    }
    Verdict::InProgress {
        running,
        desired,
        pending,
    }
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
            stopped_tasks: vec![],
            elapsed: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
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
                desired: 2
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
    fn a_circuit_breaker_rollback_is_not_success_although_the_service_is_stable() {
        let mut ours = deployment("new", "ACTIVE", Some("FAILED"), 0);
        ours.rollout_reason = Some("ECS deployment circuit breaker: tasks failed to start.".into());
        let v = judge(&observe(vec![
            deployment("rollback", "PRIMARY", Some("COMPLETED"), 2),
            ours,
        ]));
        match &v {
            Verdict::RolledBack { reason, restored } => {
                assert!(reason.contains("circuit breaker"), "{reason}");
                assert!(
                    restored
                        .as_deref()
                        .is_some_and(|td| td.ends_with("ws:rollback"))
                );
            }
            other => panic!("expected a rollback, got {other:?}"),
        }
        assert_eq!(v.exit(), Exit::RolledBack);

        // Once ECS drops our deployment from the list, it is still a rollback.
        let v = judge(&observe(vec![deployment(
            "rollback",
            "PRIMARY",
            Some("COMPLETED"),
            2,
        )]));
        assert_eq!(v.exit(), Exit::RolledBack, "{v:?}");
    }

    #[test]
    fn a_crashing_task_fails_fast_but_a_scale_in_does_not() {
        let mut o = observe(vec![
            deployment("new", "PRIMARY", Some("IN_PROGRESS"), 0),
            deployment("old", "ACTIVE", Some("COMPLETED"), 2),
        ]);
        o.stopped_tasks.push(StoppedTask {
            task_id: "t1".into(),
            stop_code: Some("ServiceSchedulerInitiated".into()),
            stopped_reason: Some("Scaling activity initiated by (deployment new)".into()),
            ..Default::default()
        });
        assert!(matches!(judge(&o), Verdict::InProgress { .. }));

        o.stopped_tasks.push(StoppedTask {
            task_id: "t2".into(),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            ..Default::default()
        });
        match judge(&o) {
            Verdict::TasksStopped { tasks } => {
                assert_eq!(tasks.len(), 1);
                assert_eq!(tasks[0].task_id, "t2");
                assert!(tasks[0].reason.contains("Essential container"));
            }
            other => panic!("expected tasks stopped, got {other:?}"),
        }

        o.stopped_tasks[1].stop_code = Some("ServiceSchedulerInitiated".into());
        o.stopped_tasks[1].stopped_reason =
            Some("Task failed ELB health checks in (target-group arn:...)".into());
        assert!(matches!(judge(&o), Verdict::TasksStopped { .. }));
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
                desired: 2
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
