//! Finding an environment's stack and service as they are now. Names come from the stack's
//! outputs when it has them (the stack owns the infrastructure) and from the settings
//! otherwise; a stack or service that does not exist is `Exit::NotFound`, not an AWS error.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aws_sdk_cloudformation::types::Stack;
use aws_sdk_ecs::types::Service;

use crate::clients::Clients;
use crate::exit::{Exit, fail};
use crate::release::Revision;
use crate::settings::Environment;

/// The service an environment runs, described.
#[derive(Debug)]
pub struct LiveService {
    pub cluster: String,
    pub name: String,
    /// The task definition the service runs now.
    pub revision: Option<Revision>,
}

/// DescribeStacks for one stack; `None` when it does not exist.
pub async fn describe_stack(
    cloudformation: &aws_sdk_cloudformation::Client,
    name: &str,
) -> anyhow::Result<Option<Stack>> {
    match cloudformation
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.stacks().first().cloned()),
        Err(err) if crate::deploy::stack::state::is_missing_stack(&err) => Ok(None),
        Err(err) => Err(crate::aws::error(err)).with_context(|| format!("describing stack {name}")),
    }
}

/// A stack's outputs by key.
pub fn outputs(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

/// The cluster and service names: the stack's outputs, else the settings.
pub fn names(env: &Environment, stack: Option<&Stack>) -> (String, String) {
    let outputs = stack.map(outputs).unwrap_or_default();
    (
        outputs
            .get("ECSClusterName")
            .cloned()
            .unwrap_or_else(|| env.cluster.clone()),
        outputs
            .get("WebSocketServiceName")
            .cloned()
            .unwrap_or_else(|| env.service.clone()),
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
        .await;
    let response = match response {
        Ok(response) => response,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_cluster_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(err) => {
            return Err(crate::aws::sdk_error(err))
                .with_context(|| format!("describing service {service} in cluster {cluster}"));
        }
    };
    Ok(response
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .cloned())
}

/// The environment's stack (if any) and its service, which must exist.
pub async fn find(
    clients: &Clients,
    env: &Environment,
) -> anyhow::Result<(Option<Stack>, LiveService)> {
    let (stack, guessed) = tokio::join!(
        describe_stack(&clients.cloudformation, &env.stack_name),
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
        let stack_status = stack
            .as_ref()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str());
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
