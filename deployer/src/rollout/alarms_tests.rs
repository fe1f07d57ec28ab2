//! An alarm-triggered rollback on a recorded API sequence (aws-smithy-mocks): the emulator's
//! alarms are never evaluated, so ECS never rolls back on them there.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::types::MetricAlarm;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{
    Deployment, DeploymentAlarms, DeploymentConfiguration, DeploymentRolloutState, Service,
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};

use super::*;
use crate::exit::Exit;
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::rollout::wait;

pub(crate) const OURS: &str = "ecs-svc/new";
pub(crate) const TD_NEW: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ws-dev:8";
pub(crate) const TD_OLD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ws-dev:7";
const TARGET_5XX: &str = "agenticai-websocket-dev-target-5xx";

/// A mock interceptor answering with the first of `rules` that matches (also for the other
/// rollout tests).
pub(crate) fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, r| i.with_rule(r),
    )
}

macro_rules! client {
    ($sdk:ident, $rules:expr) => {{
        use $sdk::config::{BehaviorVersion, Credentials, Region};
        let config = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor($rules))
            .build();
        $sdk::Client::from_conf(config)
    }};
}

/// A CloudWatch client answering only `rules` (also for the other rollout tests).
pub(crate) fn cloudwatch(rules: &[&Rule]) -> aws_sdk_cloudwatch::Client {
    client!(aws_sdk_cloudwatch, rules)
}

/// A deployment of the service, `desired` tasks wanted and `running` of them up (also for the
/// other rollout tests).
pub(crate) fn deployment_of(
    desired: i32,
    id: &str,
    status: &str,
    state: DeploymentRolloutState,
    td: &str,
    running: i32,
) -> Deployment {
    Deployment::builder()
        .id(id)
        .status(status)
        .rollout_state(state)
        .task_definition(td)
        .desired_count(desired)
        .running_count(running)
        .build()
}

fn deployment(
    id: &str,
    status: &str,
    state: DeploymentRolloutState,
    td: &str,
    running: i32,
) -> Deployment {
    deployment_of(1, id, status, state, td, running)
}

/// The service with the stack's deployment alarms, and `deployments`.
fn service(deployments: Vec<Deployment>) -> DescribeServicesOutput {
    let alarms = DeploymentAlarms::builder()
        .alarm_names("agenticai-websocket-dev-unhealthy-hosts")
        .alarm_names(TARGET_5XX)
        .alarm_names("agenticai-websocket-dev-forward-errors")
        .enable(true)
        .rollback(true)
        .build()
        .expect("alarms");
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name("ws-dev")
                .status("ACTIVE")
                .desired_count(1)
                .deployment_configuration(DeploymentConfiguration::builder().alarms(alarms).build())
                .set_deployments(Some(deployments))
                .build(),
        )
        .build()
}

/// ECS's sequence: ours rolling out, then failed on an alarm with the old release back.
fn describe(reason: &'static str) -> Rule {
    mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            service(vec![
                deployment(
                    OURS,
                    "PRIMARY",
                    DeploymentRolloutState::InProgress,
                    TD_NEW,
                    1,
                ),
                deployment(
                    "ecs-svc/old",
                    "ACTIVE",
                    DeploymentRolloutState::Completed,
                    TD_OLD,
                    1,
                ),
            ])
        })
        .output(move || {
            let mut ours = deployment(OURS, "ACTIVE", DeploymentRolloutState::Failed, TD_NEW, 0);
            ours.rollout_state_reason = Some(reason.into());
            service(vec![
                deployment(
                    "ecs-svc/rb",
                    "PRIMARY",
                    DeploymentRolloutState::Completed,
                    TD_OLD,
                    1,
                ),
                ours,
            ])
        })
        .repeatedly()
        .build()
}

async fn wait_with(ecs_rules: &[&Rule], cloudwatch_rules: &[&Rule]) -> wait::Report {
    let clients = Clients {
        ecs: client!(aws_sdk_ecs, ecs_rules),
        elb: client!(aws_sdk_elasticloadbalancingv2, &[]),
        logs: client!(aws_sdk_cloudwatchlogs, &[]),
        cloudwatch: cloudwatch(cloudwatch_rules),
        ..Clients::unreachable()
    };
    let target = Target {
        cluster: "cluster-dev".into(),
        service: "ws-dev".into(),
        deployment_id: Some(OURS.into()),
        timeout: Duration::from_secs(600),
        since: SystemTime::UNIX_EPOCH,
        restore_to: None,
    };
    wait(&clients, &target, &Progress::plain(), &Interrupt::never())
        .await
        .expect("a report")
}

#[tokio::test(start_paused = true)]
async fn an_alarm_rollback_exits_3_naming_the_alarm_from_cloudwatch() {
    let describe = describe("ECS deployment ecs-svc/new failed: deployment alarms detected.");
    let list =
        mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let firing = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| {
            r.state_value() == Some(&StateValue::Alarm)
                && r.alarm_names().contains(&TARGET_5XX.to_owned())
        })
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(
                    MetricAlarm::builder()
                        .alarm_name(TARGET_5XX)
                        .state_value(StateValue::Alarm)
                        .build(),
                )
                .build()
        });
    let report = wait_with(&[&describe, &list], &[&firing]).await;
    assert_eq!(report.exit(), Exit::RolledBack, "{:?}", report.verdict);
    let line = report.verdict.describe();
    assert!(line.contains(TARGET_5XX), "{line}");
    assert!(line.contains("ws-dev:7"), "the old release runs: {line}");
    assert_eq!(firing.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_alarm_ecs_already_names_is_not_looked_up_or_repeated() {
    let describe = describe(
        "ECS deployment ecs-svc/new failed: alarm agenticai-websocket-dev-target-5xx in ALARM.",
    );
    let list =
        mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let firing = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_output(|| DescribeAlarmsOutput::builder().build());
    let report = wait_with(&[&describe, &list], &[&firing]).await;
    assert_eq!(report.exit(), Exit::RolledBack);
    let line = report.verdict.describe();
    assert_eq!(line.matches(TARGET_5XX).count(), 1, "{line}");
    assert_eq!(firing.num_calls(), 0, "ECS's reason already names it");
}

#[test]
fn only_the_service_s_alarms_count_as_mentioned() {
    let names = vec![
        TARGET_5XX.to_owned(),
        "agenticai-websocket-dev-elb-5xx".to_owned(),
    ];
    assert_eq!(
        mentioned("failed: alarm agenticai-websocket-dev-elb-5xx", &names),
        ["agenticai-websocket-dev-elb-5xx"]
    );
    assert!(mentioned("circuit breaker: tasks failed to start", &names).is_empty());
}
