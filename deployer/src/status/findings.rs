//! What needs an operator's attention, judged from a status snapshot: the rules are pure so
//! they are tested on recorded states the emulator cannot produce (failed rollouts, unhealthy
//! targets, alarms firing).

use super::model::Status;

/// Facts worth knowing that are not problems: a newer release exists but does not run
/// (after a rollback, on purpose or by the circuit breaker).
pub fn notes(status: &Status) -> Vec<String> {
    let (Some(release), Some(latest)) = (&status.release, status.latest_revision) else {
        return Vec::new();
    };
    if latest <= release.revision {
        return Vec::new();
    }
    vec![format!(
        "running revision {} but revision {latest} is newer: the service was rolled back \
         (see `wsctl releases --env {}`)",
        release.revision, status.environment
    )]
}

/// One line per problem, most important first; empty when all is well.
pub fn assess(status: &Status) -> Vec<String> {
    let mut findings = Vec::new();
    if let Some(stack) = &status.stack {
        let s = stack.status.as_str();
        if s.ends_with("_FAILED") || s.contains("ROLLBACK") {
            let reason = stack
                .reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {r}"));
            findings.push(format!("stack {} is {s}{reason}", stack.name));
        } else if s.ends_with("_IN_PROGRESS") {
            findings.push(format!("stack {} is {s}", stack.name));
        }
    }
    let Some(service) = &status.service else {
        return findings;
    };
    for d in &status.deployments {
        let revision = d
            .revision
            .map_or_else(|| d.task_definition.clone(), |r| format!("revision {r}"));
        match d.rollout_state.as_deref() {
            Some("FAILED") => findings.push(format!(
                "deployment {} ({revision}) failed: {}",
                d.id,
                d.rollout_reason.as_deref().unwrap_or("no reason given")
            )),
            Some("IN_PROGRESS") if d.status == "PRIMARY" => findings.push(format!(
                "deployment {} ({revision}) is rolling out: {}/{} running; watch it with \
                 `wsctl status --env {} --wait --deployment {}`",
                d.id, d.running, d.desired, status.environment, d.id
            )),
            _ => {}
        }
        if d.failed_tasks > 0 {
            findings.push(format!(
                "deployment {} ({revision}) had {} failed task(s)",
                d.id, d.failed_tasks
            ));
        }
    }
    if service.running < service.desired {
        findings.push(format!(
            "{} of {} desired tasks running",
            service.running, service.desired
        ));
    }
    for task in status.tasks.iter().filter(|t| t.health == "UNHEALTHY") {
        findings.push(format!("task {} is UNHEALTHY", task.id));
    }
    for target in status
        .targets
        .iter()
        .filter(|t| !matches!(t.state.as_str(), "healthy" | "initial" | "draining"))
    {
        let why = target
            .description
            .as_deref()
            .or(target.reason.as_deref())
            .map_or(String::new(), |d| format!(": {d}"));
        findings.push(format!("target {} is {}{why}", target.id, target.state));
    }
    for alarm in status.alarms.iter().filter(|a| a.state == "ALARM") {
        let why = alarm
            .reason
            .as_deref()
            .map_or(String::new(), |r| format!(": {r}"));
        findings.push(format!("alarm {} is firing{why}", alarm.name));
    }
    findings
}
