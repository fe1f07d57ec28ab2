//! The AWS clients, one of each service wsctl calls, built once from the one SDK config so
//! every call goes to the same account, region and endpoint. Creating a client is cheap;
//! nothing is sent until a call is made.

use aws_config::SdkConfig;

#[derive(Clone, Debug)]
pub struct Clients {
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// Alarms, metrics, and which deployment alarm fired (`rollout/alarms.rs`).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The deploy lock's table (`crate::lock`).
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    pub sts: aws_sdk_sts::Client,
    /// The region the calls go to, for messages.
    pub region: String,
    /// The endpoint every call goes to when not AWS's own (`--endpoint-url`).
    pub endpoint_url: Option<String>,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            autoscaling: aws_sdk_applicationautoscaling::Client::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            secretsmanager: aws_sdk_secretsmanager::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            region: config
                .region()
                .map_or_else(String::new, |region| region.to_string()),
            endpoint_url: config.endpoint_url().map(str::to_owned),
        }
    }

    /// Clients that must not be called (tests replace the ones they record): every call
    /// fails at once, as there are no credentials and no endpoint that answers.
    #[cfg(test)]
    pub fn unreachable() -> Self {
        let config = SdkConfig::builder()
            .region(aws_config::Region::from_static("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Self::new(&config)
    }
}
