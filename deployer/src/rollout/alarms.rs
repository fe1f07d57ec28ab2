//! Which deployment alarm made ECS roll a deployment back. The service's deployment alarms
//! (templates/ecs.yaml: unhealthy hosts, 5xx, latency, forward errors) fail a release whose
//! tasks pass their health checks but serve errors; the verdict is then "rolled back" (exit 3),
//! and it should say which alarm, not just that one fired. ECS's rollout reason may or may not
//! name it, so the names come from the service's own alarm list: those the reason mentions,
//! else those CloudWatch reports in ALARM.

use aws_sdk_cloudwatch::types::StateValue;

use super::verdict::{Actor, Verdict};
use super::wait::Target;
use crate::clients::Clients;

/// `verdict`, with the firing deployment alarm(s) named in its reason when ECS rolled back on
/// alarms (its reason says "alarm"). Best effort: when the names cannot be read, the verdict
/// stays as it was.
pub async fn name_the_alarm(clients: &Clients, target: &Target, verdict: Verdict) -> Verdict {
    let Verdict::RolledBack(mut rollback) = verdict else {
        return verdict;
    };
    // The circuit breaker's rollbacks (and wsctl's own) say nothing of alarms.
    if rollback.by != Actor::Ecs || !rollback.reason.to_ascii_lowercase().contains("alarm") {
        return Verdict::RolledBack(rollback);
    }
    let names = deployment_alarms(clients, target).await;
    let firing = match mentioned(&rollback.reason, &names) {
        found if !found.is_empty() => found,
        _ => in_alarm(clients, &names).await,
    };
    if !firing.iter().all(|n| rollback.reason.contains(n.as_str())) {
        rollback.reason = format!(
            "{} (deployment alarm in ALARM: {})",
            rollback.reason,
            firing.join(", ")
        );
    }
    Verdict::RolledBack(rollback)
}

/// The service's deployment alarms, when they are enabled.
async fn deployment_alarms(clients: &Clients, target: &Target) -> Vec<String> {
    let Ok(Some(service)) =
        crate::live_service::describe_service(&clients.ecs, &target.cluster, &target.service).await
    else {
        return Vec::new();
    };
    service
        .deployment_configuration()
        .and_then(|c| c.alarms())
        .filter(|a| a.enable())
        .map(|a| a.alarm_names().to_vec())
        .unwrap_or_default()
}

/// The alarm names ECS's reason mentions.
pub fn mentioned(reason: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| reason.contains(n.as_str()))
        .cloned()
        .collect()
}

/// Those of `names` CloudWatch reports in ALARM.
async fn in_alarm(clients: &Clients, names: &[String]) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    let Ok(out) = clients
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .state_value(StateValue::Alarm)
        .send()
        .await
    else {
        return Vec::new();
    };
    out.metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name().map(str::to_owned))
        .collect()
}

#[cfg(test)]
#[path = "alarms_tests.rs"]
pub(crate) mod tests;
