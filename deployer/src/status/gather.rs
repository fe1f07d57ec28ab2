//! Reading an environment's state in two concurrent waves, so `status` costs about two round
//! trips however much it shows:
//! 1. stack, service, task list, alarms and metrics (names known from the settings);
//! 2. what the first wave names: tasks, the running release, the family's newest revision and
//!    the target group's health.

use aws_sdk_ecs::types::Service;
use chrono::Utc;

use super::metrics;
use super::model::{
    AlarmState, EventState, Metrics, ServiceState, StackState, Status, TargetState, TaskState,
};
use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::live_service;
use crate::release::{self, Revision};
use crate::settings::Environment;
use crate::stack::{self, Stack};
use crate::when;

/// How many service events are shown.
const EVENTS: usize = 8;

/// Everything `status` shows. `Ok` even when the stack or service is missing (the fields are
/// then empty); AWS errors other than "does not exist" are errors.
pub async fn gather(clients: &Clients, env: &Environment) -> anyhow::Result<Status> {
    let (stack, service, task_arns, alarms, metrics) = tokio::join!(
        stack::describe(&clients.cloudformation, &env.stack_name),
        live_service::describe_service(&clients.ecs, &env.cluster, &env.service),
        list_tasks(clients, &env.cluster, &env.service),
        alarms(clients, &env.service),
        metrics::last_hour(&clients.cloudwatch, &env.cluster, &env.service),
    );
    let stack = stack?;
    let (cluster, name) = live_service::names(env, stack.as_ref());
    let (service, task_arns) =
        if (cluster.as_str(), name.as_str()) == (env.cluster.as_str(), env.service.as_str()) {
            (service?, task_arns?)
        } else {
            // The stack names a service the settings did not guess: read that one.
            let (service, tasks) = tokio::join!(
                live_service::describe_service(&clients.ecs, &cluster, &name),
                list_tasks(clients, &cluster, &name),
            );
            (service?, tasks?)
        };
    let outputs = stack
        .as_ref()
        .map(|s| s.outputs.clone())
        .unwrap_or_default();
    let running = service
        .as_ref()
        .and_then(|s| s.task_definition())
        .and_then(Revision::parse);
    let family = live_service::family(running.as_ref(), env);
    let target_group = service
        .as_ref()
        .and_then(|s| {
            s.load_balancers()
                .iter()
                .find_map(|lb| lb.target_group_arn())
        })
        .map(str::to_owned)
        .or_else(|| outputs.get("TargetGroupArn").cloned());

    let (tasks, release, revisions, targets) = tokio::join!(
        describe_tasks(clients, &cluster, &task_arns),
        async {
            match (&running, service.as_ref().and_then(|s| s.task_definition())) {
                (Some(rev), Some(arn)) => {
                    release::list::describe(&clients.ecs, rev.clone(), arn.to_owned())
                        .await
                        .map(Some)
                }
                _ => Ok(None),
            }
        },
        async {
            if service.is_some() {
                release::revisions(&clients.ecs, &family).await
            } else {
                Ok(Vec::new())
            }
        },
        target_health(clients, target_group.as_deref()),
    );

    let mut release = release?;
    if let Some(release) = &mut release {
        release.running = true;
    }
    let now = Utc::now();
    // Alarms and metrics must not hide the rest of the screen: if CloudWatch cannot be read,
    // say so and show everything else.
    let mut unavailable = Vec::new();
    let (cpu, memory) = metrics.unwrap_or_else(|err| {
        unavailable.push(format!("{err:#}"));
        (None, None)
    });
    let alarms = alarms.unwrap_or_else(|err| {
        unavailable.push(format!("{err:#}"));
        Vec::new()
    });
    let mut status = Status {
        environment: env.name.clone(),
        region: clients.region.clone(),
        stack: stack.as_ref().map(stack_state),
        endpoint: outputs.get("WebSocketEndpoint").cloned(),
        dashboard: outputs.get("DashboardUrl").cloned(),
        broker: outputs
            .get("BrokerMode")
            .map(|mode| super::model::BrokerState {
                mode: mode.clone(),
                endpoint: outputs.get("BrokerEndpoint").cloned(),
            }),
        service: service.as_ref().map(|s| service_state(s, &cluster, &name)),
        deployments: service
            .as_ref()
            .map(live_service::deployments)
            .unwrap_or_default(),
        release,
        latest_revision: revisions?.first().map(|(rev, _)| rev.number),
        stack_revision: outputs
            .get("TaskDefinitionArn")
            .and_then(|arn| Revision::parse(arn))
            .map(|r| r.number),
        tasks: tasks?.iter().map(|t| task_state(t, &now)).collect(),
        target_group,
        targets: targets?,
        alarms,
        metrics: Metrics { cpu, memory },
        events: service.as_ref().map(events).unwrap_or_default(),
        findings: Vec::new(),
        notes: Vec::new(),
        unavailable,
        healthy: false,
        rollout: None,
    };
    status.findings = super::findings::assess(&status);
    status.notes = super::findings::notes(&status);
    status.healthy = status.findings.is_empty();
    Ok(status)
}

async fn list_tasks(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Vec<String>> {
    let out = clients
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .send()
        .await
        // A missing cluster or service is reported by describe_service.
        .or_missing(
            |e| e.is_cluster_not_found_exception() || e.is_service_not_found_exception(),
            || format!("listing tasks of {service}"),
        )?;
    Ok(out.map(|out| out.task_arns().to_vec()).unwrap_or_default())
}

async fn describe_tasks(
    clients: &Clients,
    cluster: &str,
    arns: &[String],
) -> anyhow::Result<Vec<aws_sdk_ecs::types::Task>> {
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    // DescribeTasks takes 100 tasks a call; a service rarely has more.
    let calls = arns.chunks(100).map(|chunk| {
        clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
    });
    let mut tasks = Vec::new();
    for out in futures_util::future::try_join_all(calls)
        .await
        .aws_context(|| "describing tasks")?
    {
        tasks.extend(out.tasks().iter().cloned());
    }
    tasks.sort_by_key(|t| t.started_at().or(t.created_at()).map(|d| d.secs()));
    Ok(tasks)
}

async fn alarms(clients: &Clients, service: &str) -> anyhow::Result<Vec<AlarmState>> {
    // The stack names its alarms `<service>-cpu-high` and `<service>-memory-high`.
    let out = clients
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{service}-"))
        .send()
        .await
        .aws_context(|| "describing alarms")?;
    Ok(out
        .metric_alarms()
        .iter()
        .map(|a| AlarmState {
            name: a.alarm_name().unwrap_or_default().to_owned(),
            state: a.state_value().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
            reason: a.state_reason().map(str::to_owned),
            updated_at: a
                .state_updated_timestamp()
                .and_then(when::utc)
                .map(|t| when::rfc3339(&t)),
        })
        .collect())
}

async fn target_health(
    clients: &Clients,
    target_group: Option<&str>,
) -> anyhow::Result<Vec<TargetState>> {
    let Some(arn) = target_group else {
        return Ok(Vec::new());
    };
    let out = clients
        .elb
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .or_missing(
            |e| e.is_target_group_not_found_exception(),
            || format!("describing target health of {arn}"),
        )?;
    let Some(out) = out else {
        return Ok(Vec::new());
    };
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let health = d.target_health();
            TargetState {
                id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_owned(),
                port: d.target().and_then(|t| t.port()),
                state: health
                    .and_then(|h| h.state())
                    .map_or("unknown", |s| s.as_str())
                    .to_owned(),
                reason: health
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_owned()),
                description: health.and_then(|h| h.description()).map(str::to_owned),
            }
        })
        .collect())
}

fn stack_state(stack: &Stack) -> StackState {
    StackState {
        name: stack.name.clone(),
        status: stack.status.clone(),
        reason: stack.reason.clone(),
        updated_at: stack.updated_at.as_ref().map(when::rfc3339),
    }
}

fn service_state(service: &Service, cluster: &str, name: &str) -> ServiceState {
    ServiceState {
        cluster: cluster.to_owned(),
        name: service.service_name().unwrap_or(name).to_owned(),
        status: service.status().unwrap_or("UNKNOWN").to_owned(),
        desired: service.desired_count(),
        running: service.running_count(),
        pending: service.pending_count(),
        task_definition: service.task_definition().unwrap_or_default().to_owned(),
    }
}

fn task_state(task: &aws_sdk_ecs::types::Task, now: &chrono::DateTime<Utc>) -> TaskState {
    let started = task.started_at().or(task.created_at()).and_then(when::utc);
    TaskState {
        id: live_service::task_id(task.task_arn().unwrap_or_default()).to_owned(),
        revision: task
            .task_definition_arn()
            .and_then(Revision::parse)
            .map(|r| r.number),
        last_status: task.last_status().unwrap_or("UNKNOWN").to_owned(),
        desired_status: task.desired_status().unwrap_or("UNKNOWN").to_owned(),
        health: task
            .health_status()
            .map_or("UNKNOWN", |h| h.as_str())
            .to_owned(),
        availability_zone: task.availability_zone().map(str::to_owned),
        started_at: started.map(|t| when::rfc3339(&t)),
        age: started.map(|t| when::age(&t, now)),
        stopped_reason: task.stopped_reason().map(str::to_owned),
    }
}

fn events(service: &Service) -> Vec<EventState> {
    service
        .events()
        .iter()
        .take(EVENTS)
        .map(|e| EventState {
            at: e
                .created_at()
                .and_then(when::utc)
                .map(|t| when::rfc3339(&t)),
            message: e.message().unwrap_or_default().to_owned(),
        })
        .collect()
}
