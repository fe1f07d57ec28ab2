//! `status` on recorded API responses, for the states the emulator cannot produce: a rollout
//! stopped by the circuit breaker, an unhealthy task and target, an alarm firing; and the same
//! calls for a healthy service, so the rules are seen not to fire without cause.

use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::types::{Output, Stack, StackStatus};
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{MetricAlarm, MetricDataResult, StateValue};
use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::list_tasks::{ListTasksError, ListTasksOutput};
use aws_sdk_ecs::types::{ContainerDefinition, HealthStatus, Task, TaskDefinition};
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthReasonEnum,
    TargetHealthStateEnum,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::gather::gather;
use crate::clients::Clients;
use crate::settings;

const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-prod";
const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/agenticai-ws-prod/6d0ecf831eec9f09";

/// DescribeServices as ECS returned it after the circuit breaker stopped revision 15:
/// the failed deployment is still PRIMARY while revision 14 keeps one task running.
const FAILED_ROLLOUT: &str = r#"{"services":[{
  "serviceArn":"arn:aws:ecs:us-east-1:123456789012:service/agenticai-cluster-prod/agenticai-websocket-prod",
  "serviceName":"agenticai-websocket-prod","status":"ACTIVE",
  "desiredCount":2,"runningCount":1,"pendingCount":0,"launchType":"FARGATE",
  "taskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-prod:14",
  "loadBalancers":[{"targetGroupArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/agenticai-ws-prod/6d0ecf831eec9f09","containerName":"websocket","containerPort":8080}],
  "deployments":[
    {"id":"ecs-svc/9","status":"PRIMARY","taskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-prod:15",
     "desiredCount":2,"pendingCount":0,"runningCount":0,"failedTasks":3,"createdAt":1714564800.123,"updatedAt":1714565100.5,
     "rolloutState":"FAILED","rolloutStateReason":"ECS deployment circuit breaker: tasks failed to start."},
    {"id":"ecs-svc/8","status":"ACTIVE","taskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-prod:14",
     "desiredCount":2,"pendingCount":0,"runningCount":1,"failedTasks":0,"createdAt":1714478400.0,"updatedAt":1714478700.0,
     "rolloutState":"COMPLETED","rolloutStateReason":"ECS deployment ecs-svc/8 completed."}],
  "events":[
    {"id":"e2","createdAt":1714565100.5,"message":"(service agenticai-websocket-prod) (deployment ecs-svc/9) deployment failed: tasks failed to start."},
    {"id":"e1","createdAt":1714564900.0,"message":"(service agenticai-websocket-prod) has started 2 tasks: (task 1a2b) (task 3c4d)."}]
}],"failures":[]}"#;

/// The same service settled on revision 14 with both tasks running.
const STEADY: &str = r#"{"services":[{
  "serviceName":"agenticai-websocket-prod","status":"ACTIVE",
  "desiredCount":2,"runningCount":2,"pendingCount":0,
  "taskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-prod:14",
  "loadBalancers":[{"targetGroupArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/agenticai-ws-prod/6d0ecf831eec9f09"}],
  "deployments":[{"id":"ecs-svc/8","status":"PRIMARY","taskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/agenticai-websocket-prod:14",
    "desiredCount":2,"pendingCount":0,"runningCount":2,"failedTasks":0,"rolloutState":"COMPLETED"}],
  "events":[{"id":"e3","createdAt":1714566000.0,"message":"(service agenticai-websocket-prod) has reached a steady state."}]
}],"failures":[]}"#;

struct Recorded {
    services: &'static str,
    task_health: HealthStatus,
    target_state: TargetHealthStateEnum,
    alarm_state: StateValue,
    newest_revision: i32,
}

fn clients(r: Recorded) -> Clients {
    let stack = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
        DescribeStacksOutput::builder()
            .stacks(
                Stack::builder()
                    .stack_name("agenticai-websocket-prod")
                    .stack_status(StackStatus::UpdateComplete)
                    .outputs(
                        Output::builder()
                            .output_key("WebSocketEndpoint")
                            .output_value("ws://agenticai-ws-prod-1.us-east-1.elb.amazonaws.com/ws")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let services = r.services;
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(200, Some(services.to_owned()))
        .repeatedly()
        .build();
    let list_tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .task_arns("arn:aws:ecs:us-east-1:123456789012:task/agenticai-cluster-prod/1a2b3c4d")
            .build()
    });
    let health = r.task_health.clone();
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(move || {
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn(
                        "arn:aws:ecs:us-east-1:123456789012:task/agenticai-cluster-prod/1a2b3c4d",
                    )
                    .task_definition_arn(format!("{TD}:14"))
                    .last_status("RUNNING")
                    .desired_status("RUNNING")
                    .health_status(health.clone())
                    .availability_zone("us-east-1a")
                    .build(),
            )
            .build()
    });
    let describe_td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .task_definition_arn(format!("{TD}:14"))
                    .container_definitions(
                        ContainerDefinition::builder()
                            .name("websocket")
                            .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-prod:3f2a9c1")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let newest = r.newest_revision;
    let list_tds = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(move || {
        ListTaskDefinitionsOutput::builder()
            .set_task_definition_arns(Some(
                (13..=newest).rev().map(|n| format!("{TD}:{n}")).collect(),
            ))
            .build()
    });
    let target_state = r.target_state.clone();
    let targets = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .then_output(move || {
            let healthy = target_state == TargetHealthStateEnum::Healthy;
            let mut health = TargetHealth::builder().state(target_state.clone());
            if !healthy {
                health = health
                    .reason(TargetHealthReasonEnum::ResponseCodeMismatch)
                    .description("Health checks failed with these codes: [502]");
            }
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(
                    TargetHealthDescription::builder()
                        .target(
                            TargetDescription::builder()
                                .id("10.0.1.5")
                                .port(8080)
                                .build(),
                        )
                        .target_health(health.build())
                        .build(),
                )
                .build()
        });
    let alarm_state = r.alarm_state.clone();
    let alarms = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(move || {
        DescribeAlarmsOutput::builder()
            .metric_alarms(
                MetricAlarm::builder()
                    .alarm_name("agenticai-websocket-prod-cpu-high")
                    .state_value(alarm_state.clone())
                    .state_reason("Threshold Crossed: 2 datapoints [91.2 (01/05/24 12:05:00), 88.0 (01/05/24 12:00:00)] were greater than the threshold (80.0).")
                    .build(),
            )
            .build()
    });
    let metrics = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| {
        GetMetricDataOutput::builder()
            .metric_data_results(
                MetricDataResult::builder()
                    .id("cpu")
                    .set_values(Some(vec![12.0, 48.0, 95.0]))
                    .build(),
            )
            .metric_data_results(
                MetricDataResult::builder()
                    .id("memory")
                    .set_values(Some(vec![40.0, 42.0]))
                    .build(),
            )
            .build()
    });
    Clients {
        cloudformation: mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&stack]),
        ecs: mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [
                &describe_services,
                &list_tasks,
                &describe_tasks,
                &describe_td,
                &list_tds
            ]
        ),
        ecr: mock_client!(aws_sdk_ecr, RuleMode::MatchAny, Vec::<&Rule>::new()),
        elb: mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            [&targets]
        ),
        cloudwatch: mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&alarms, &metrics]),
        logs: mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            Vec::<&Rule>::new()
        ),
        region: "us-east-1".into(),
        endpoint_url: None,
        ..Clients::unreachable()
    }
}

fn prod() -> settings::Environment {
    settings::load(std::path::Path::new("/nonexistent/wsctl.yaml"), "prod").expect("defaults")
}

#[tokio::test]
async fn a_circuit_breaker_stop_an_unhealthy_target_and_a_firing_alarm_all_need_attention() {
    let clients = clients(Recorded {
        services: FAILED_ROLLOUT,
        task_health: HealthStatus::Unhealthy,
        target_state: TargetHealthStateEnum::Unhealthy,
        alarm_state: StateValue::Alarm,
        newest_revision: 15,
    });
    let status = gather(&clients, &prod()).await.expect("status");
    assert!(!status.healthy);
    let findings = status.findings.join("\n");
    for expected in [
        "deployment ecs-svc/9 (revision 15) failed: ECS deployment circuit breaker: tasks failed to start.",
        "deployment ecs-svc/9 (revision 15) had 3 failed task(s)",
        "1 of 2 desired tasks running",
        "task 1a2b3c4d is UNHEALTHY",
        "target 10.0.1.5 is unhealthy: Health checks failed with these codes: [502]",
        "alarm agenticai-websocket-prod-cpu-high is firing: Threshold Crossed",
    ] {
        assert!(
            findings.contains(expected),
            "missing {expected:?} in:\n{findings}"
        );
    }
    assert_eq!(
        status.notes,
        [
            "running revision 14 but revision 15 is newer: the service was rolled back (see \
          `wsctl releases --env prod`)"
        ]
    );
    assert_eq!(
        status.target_group.as_deref(),
        Some(TG),
        "from the service's load balancer"
    );
    let release = status.release.as_ref().expect("running release");
    assert_eq!(
        (release.revision, release.image_tag.as_deref()),
        (14, Some("3f2a9c1"))
    );
    let cpu = status.metrics.cpu.as_ref().expect("cpu series");
    assert_eq!((cpu.min, cpu.max), (12.0, 95.0));

    let text = super::render::render(&status);
    assert!(text.contains("Needs attention:"), "{text}");
    assert!(text.contains("ecs-svc/9  PRIMARY  FAILED"), "{text}");
    assert!(
        text.contains("revision 15 is newer (rolled back)"),
        "{text}"
    );
    assert!(text.contains("min 12.0%  avg 51.7%  max 95.0%"), "{text}");
    let json = serde_json::to_value(&status).expect("json");
    assert_eq!(json["deployments"][0]["rollout_state"], "FAILED");
    assert_eq!(json["targets"][0]["state"], "unhealthy");
    assert_eq!(json["alarms"][0]["state"], "ALARM");
    assert_eq!(json["healthy"], false);
}

#[tokio::test]
async fn a_steady_service_needs_nothing() {
    let clients = clients(Recorded {
        services: STEADY,
        task_health: HealthStatus::Healthy,
        target_state: TargetHealthStateEnum::Healthy,
        alarm_state: StateValue::Ok,
        newest_revision: 14,
    });
    let status = gather(&clients, &prod()).await.expect("status");
    assert_eq!(status.findings, Vec::<String>::new());
    assert_eq!(status.notes, Vec::<String>::new());
    assert!(status.healthy);
    assert_eq!(
        status.endpoint.as_deref(),
        Some("ws://agenticai-ws-prod-1.us-east-1.elb.amazonaws.com/ws")
    );
    let text = super::render::render(&status);
    assert!(
        text.contains("All good: nothing needs attention."),
        "{text}"
    );
    assert!(text.contains("has reached a steady state."), "{text}");
}

#[tokio::test]
async fn a_missing_stack_and_cluster_are_absent_not_errors() {
    let stack = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_error(|| {
        DescribeStacksError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("ValidationError")
                .message("Stack with id agenticai-websocket-prod does not exist")
                .build(),
        )
    });
    let no_cluster = || {
        aws_sdk_ecs::types::error::ClusterNotFoundException::builder()
            .message("Cluster not found.")
            .build()
    };
    let services = mock!(aws_sdk_ecs::Client::describe_services)
        .then_error(move || DescribeServicesError::ClusterNotFoundException(no_cluster()));
    let tasks = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_error(move || ListTasksError::ClusterNotFoundException(no_cluster()));
    let alarms = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_output(|| DescribeAlarmsOutput::builder().build());
    let metrics = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .then_output(|| GetMetricDataOutput::builder().build());
    let clients = Clients {
        cloudformation: mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&stack]),
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&services, &tasks]),
        ecr: mock_client!(aws_sdk_ecr, RuleMode::MatchAny, Vec::<&Rule>::new()),
        elb: mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            Vec::<&Rule>::new()
        ),
        cloudwatch: mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&alarms, &metrics]),
        logs: mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            Vec::<&Rule>::new()
        ),
        region: "us-east-1".into(),
        endpoint_url: None,
        ..Clients::unreachable()
    };
    let status = gather(&clients, &prod())
        .await
        .expect("absent is not an error");
    assert!(status.stack.is_none() && status.service.is_none());
    assert!(status.metrics.cpu.is_none());
}
