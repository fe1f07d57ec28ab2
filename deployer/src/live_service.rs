//! An environment's service as it is now: the one service lookup every command uses, the
//! names it goes by, its deployments, its task definition family and its tasks' ids. Names
//! come from the stack's outputs when it has them (the stack owns the infrastructure) and from
//! the settings otherwise; a stack or service that does not exist is `Exit::NotFound`, not an
//! AWS error.

use aws_sdk_ecs::types::{Deployment, Service};
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::exit::{Exit, fail};
use crate::release::Revision;
use crate::settings::Environment;
use crate::stack::{self, Stack};
use crate::when;

/// The service an environment runs, described.
#[derive(Debug)]
pub struct LiveService {
    pub cluster: String,
    pub name: String,
    /// The task definition the service runs now.
    pub revision: Option<Revision>,
    /// The service as ECS described it.
    pub service: Service,
}

impl LiveService {
    /// The task definition family its releases belong to.
    pub fn family(&self, env: &Environment) -> String {
        family(self.revision.as_ref(), env)
    }
}

/// The family of the running revision; the service's name when none is known (a service's
/// family is named after it).
pub fn family(running: Option<&Revision>, env: &Environment) -> String {
    running.map_or_else(|| env.service.clone(), |rev| rev.family.clone())
}

/// The cluster and service names: the stack's outputs, else the settings.
pub fn names(env: &Environment, stack: Option<&Stack>) -> (String, String) {
    let output = |key: &str| stack.and_then(|s| s.outputs.get(key)).cloned();
    (
        output("ECSClusterName").unwrap_or_else(|| env.cluster.clone()),
        output("WebSocketServiceName").unwrap_or_else(|| env.service.clone()),
    )
}

/// DescribeServices for one service; `None` when the cluster or the service does not exist
/// or the service was deleted (INACTIVE).
pub async fn describe_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Option<Service>> {
    let response = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .or_missing(
            |e| e.is_cluster_not_found_exception(),
            || format!("describing service {service} in cluster {cluster}"),
        )?;
    Ok(response.and_then(|response| {
        response
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .cloned()
    }))
}

/// [`describe_service`] for a service that must exist: a missing one is `Exit::NotFound`.
pub async fn require_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Service> {
    describe_service(ecs, cluster, service)
        .await?
        .ok_or_else(|| {
            fail(
                Exit::NotFound,
                format!("ECS service {service} does not exist in cluster {cluster}"),
            )
        })
}

/// The environment's stack (if any) and its service, which must exist.
pub async fn find(
    clients: &Clients,
    env: &Environment,
) -> anyhow::Result<(Option<Stack>, LiveService)> {
    let (stack, guessed) = tokio::join!(
        stack::describe(&clients.cloudformation, &env.stack_name),
        describe_service(&clients.ecs, &env.cluster, &env.service),
    );
    let stack = stack?;
    let (cluster, name) = names(env, stack.as_ref());
    let service =
        if (cluster.as_str(), name.as_str()) == (env.cluster.as_str(), env.service.as_str()) {
            guessed?
        } else {
            describe_service(&clients.ecs, &cluster, &name).await?
        };
    let Some(service) = service else {
        let stack_status = stack.as_ref().map(|s| s.status.as_str());
        return Err(not_found(
            env,
            &clients.region,
            stack_status,
            &cluster,
            &name,
        ));
    };
    let revision = service.task_definition().and_then(Revision::parse);
    Ok((
        stack,
        LiveService {
            cluster,
            name,
            revision,
            service,
        },
    ))
}

/// The message for an environment that is not (fully) there, with the way forward.
pub fn not_found(
    env: &Environment,
    region: &str,
    stack_status: Option<&str>,
    cluster: &str,
    service: &str,
) -> anyhow::Error {
    let what = match stack_status {
        None => format!("stack {} does not exist in {region}", env.stack_name),
        Some(status) => format!(
            "stack {} is {status} but service {service} does not exist in cluster {cluster}",
            env.stack_name,
        ),
    };
    fail(
        Exit::NotFound,
        format!(
            "environment '{}' not found: {what}; deploy it with `wsctl deploy --env {}`",
            env.name, env.name
        ),
    )
}

/// A task's id: the last part of its ARN (or of an awslogs stream name); an id stays as it is.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// One deployment of the service as ECS describes it: what the rollout verdict judges and
/// what `status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeploymentState {
    pub id: String,
    /// PRIMARY (the newest), ACTIVE (being replaced) or INACTIVE.
    pub status: String,
    /// IN_PROGRESS, COMPLETED or FAILED; absent when the service has no circuit breaker.
    pub rollout_state: Option<String>,
    pub rollout_reason: Option<String>,
    pub revision: Option<i32>,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
    pub created_at: Option<String>,
}

impl From<&Deployment> for DeploymentState {
    fn from(d: &Deployment) -> Self {
        Self {
            id: d.id().unwrap_or_default().to_owned(),
            status: d.status().unwrap_or_default().to_owned(),
            rollout_state: d.rollout_state().map(|s| s.as_str().to_owned()),
            rollout_reason: d.rollout_state_reason().map(str::to_owned),
            revision: d
                .task_definition()
                .and_then(Revision::parse)
                .map(|r| r.number),
            task_definition: d.task_definition().unwrap_or_default().to_owned(),
            desired: d.desired_count(),
            running: d.running_count(),
            pending: d.pending_count(),
            failed_tasks: d.failed_tasks(),
            created_at: d
                .created_at()
                .and_then(when::utc)
                .map(|t| when::rfc3339(&t)),
        }
    }
}

/// The service's deployments, newest first as ECS lists them.
pub fn deployments(service: &Service) -> Vec<DeploymentState> {
    service
        .deployments()
        .iter()
        .map(DeploymentState::from)
        .collect()
}

/// The id of a service's PRIMARY deployment (the one an UpdateService just started).
pub fn primary_deployment(service: Option<&Service>) -> Option<String> {
    service?
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.id())
        .map(str::to_owned)
}
