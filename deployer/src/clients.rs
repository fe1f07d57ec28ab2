//! The AWS clients the operating commands (status, logs, releases, rollback, teardown) use,
//! built once from the one SDK config so every call goes to the same account, region and
//! endpoint. Creating a client is cheap; nothing is sent until a call is made.

use aws_config::SdkConfig;

use crate::cli::Global;
use crate::settings::{self, Environment};

pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// The region the calls go to, for messages.
    pub region: String,
    /// The endpoint every call goes to when not AWS's own (`--endpoint-url`).
    pub endpoint_url: Option<String>,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            region: config
                .region()
                .map_or_else(String::new, |region| region.to_string()),
            endpoint_url: config.endpoint_url().map(str::to_owned),
        }
    }
}

impl Clients {
    /// The clients the shared rollout wait needs.
    pub fn for_rollout(&self) -> crate::rollout::Clients {
        crate::rollout::Clients {
            ecs: self.ecs.clone(),
            elb: self.elb.clone(),
            logs: self.logs.clone(),
            cloudwatch: self.cloudwatch.clone(),
        }
    }
}

/// Resolves the environment from the settings and builds its clients: the common first step
/// of every operating command.
pub async fn for_env(global: &Global) -> anyhow::Result<(Environment, Clients)> {
    let env = settings::load(&global.config, &global.env)?;
    let config = crate::aws::sdk_config(global, env.region.as_deref()).await;
    Ok((env, Clients::new(&config)))
}
