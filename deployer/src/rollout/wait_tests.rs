//! The wait loop on recorded ECS response sequences (aws-smithy-mocks): the rollout states the
//! emulator cannot produce. Time is paused, so backoff and deadlines cost nothing.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{
    Container, ContainerDefinition, Deployment, DeploymentRolloutState, LogConfiguration,
    LogDriver, Service, ServiceEvent, Task, TaskDefinition, TaskStopCode,
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::DateTime;

use super::*;
use crate::exit::Exit;

const OURS: &str = "ecs-svc/new";
const TD_NEW: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ws-dev:8";
const TD_OLD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ws-dev:7";

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, r| i.with_rule(r),
    )
}

fn clients(ecs_rules: &[&Rule], logs_rules: &[&Rule]) -> Clients {
    use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
    let creds = Credentials::new("test", "test", None, None, "test");
    let ecs = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds.clone())
        .http_client(create_mock_http_client())
        .interceptor(interceptor(ecs_rules))
        .build();
    let logs = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds.clone())
        .http_client(create_mock_http_client())
        .interceptor(interceptor(logs_rules))
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .http_client(create_mock_http_client())
        .interceptor(interceptor(&[]))
        .build();
    Clients {
        ecs: aws_sdk_ecs::Client::from_conf(ecs),
        elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
        logs: aws_sdk_cloudwatchlogs::Client::from_conf(logs),
    }
}

fn deployment(
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
        .desired_count(2)
        .running_count(running)
        .build()
}

fn service(deployments: Vec<Deployment>, events: &[(&str, &str)]) -> DescribeServicesOutput {
    let mut s = Service::builder()
        .service_name("ws-dev")
        .status("ACTIVE")
        .desired_count(2)
        .set_deployments(Some(deployments));
    for (id, message) in events {
        s = s.events(
            ServiceEvent::builder()
                .id(*id)
                .created_at(DateTime::from_secs(1_700_000_000))
                .message(*message)
                .build(),
        );
    }
    DescribeServicesOutput::builder()
        .services(s.build())
        .build()
}

fn rolling(running: i32) -> DescribeServicesOutput {
    service(
        vec![
            deployment(
                OURS,
                "PRIMARY",
                DeploymentRolloutState::InProgress,
                TD_NEW,
                running,
            ),
            deployment(
                "ecs-svc/old",
                "ACTIVE",
                DeploymentRolloutState::Completed,
                TD_OLD,
                2,
            ),
        ],
        &[(
            "e1",
            "(service ws-dev) has started 2 tasks: (task a) (task b).",
        )],
    )
}

fn no_stopped_tasks() -> Rule {
    mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build())
}

fn target(timeout: Duration) -> Target {
    Target {
        cluster: "cluster-dev".into(),
        service: "ws-dev".into(),
        deployment_id: Some(OURS.into()),
        timeout,
        since: SystemTime::UNIX_EPOCH,
    }
}

async fn run(clients: &Clients, timeout: Duration) -> Report {
    wait(
        clients,
        &target(timeout),
        &Progress::plain(),
        &Interrupt::never(),
    )
    .await
    .expect("the wait itself works")
}

#[tokio::test(start_paused = true)]
async fn completed_after_a_few_polls() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .output(|| rolling(1))
        .output(|| {
            service(
                vec![deployment(
                    OURS,
                    "PRIMARY",
                    DeploymentRolloutState::Completed,
                    TD_NEW,
                    2,
                )],
                &[("e2", "(service ws-dev) has reached a steady state.")],
            )
        })
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert_eq!(
        report.verdict,
        Verdict::Completed {
            running: 2,
            desired: 2
        }
    );
    assert_eq!(report.exit(), Exit::Success);
    assert_eq!(report.task_definition, TD_NEW);
    assert_eq!(describe.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_circuit_breaker_rollback_exits_rolled_back() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .output(|| {
            let mut failed = deployment(OURS, "ACTIVE", DeploymentRolloutState::Failed, TD_NEW, 0);
            failed.rollout_state_reason =
                Some("ECS deployment circuit breaker: tasks failed to start.".into());
            // The service is "stable" again, on the old release.
            service(
                vec![
                    deployment(
                        "ecs-svc/rb",
                        "PRIMARY",
                        DeploymentRolloutState::Completed,
                        TD_OLD,
                        2,
                    ),
                    failed,
                ],
                &[("e3", "(service ws-dev) has reached a steady state.")],
            )
        })
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    match &report.verdict {
        Verdict::RolledBack { reason, restored } => {
            assert!(reason.contains("circuit breaker"), "{reason}");
            assert_eq!(restored.as_deref(), Some(TD_OLD));
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::RolledBack);
}

#[tokio::test(start_paused = true)]
async fn a_crashing_task_fails_fast_with_its_reason_and_logs() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| rolling(0));
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.started_by() == Some(OURS))
        .sequence()
        .output(|| ListTasksOutput::builder().build())
        .output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:us-east-1:1:task/c/t1")
                .build()
        })
        .repeatedly()
        .build();
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:1:task/c/t1")
                    .task_definition_arn(TD_NEW)
                    .last_status("STOPPED")
                    .stop_code(TaskStopCode::EssentialContainerExited)
                    .stopped_reason("Essential container in task exited")
                    .containers(Container::builder().name("websocket").exit_code(1).build())
                    .build(),
            )
            .build()
    });
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .task_definition_arn(TD_NEW)
                    .container_definitions(
                        ContainerDefinition::builder()
                            .name("websocket")
                            .log_configuration(
                                LogConfiguration::builder()
                                    .log_driver(LogDriver::Awslogs)
                                    .options("awslogs-group", "/ecs/ws-dev")
                                    .options("awslogs-stream-prefix", "ws")
                                    .build()
                                    .expect("log driver set"),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let logs = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events)
        .match_requests(|r| {
            r.log_group_name() == Some("/ecs/ws-dev")
                && r.log_stream_name() == Some("ws/websocket/t1")
        })
        .then_output(|| {
            aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput::builder()
                .events(
                    aws_sdk_cloudwatchlogs::types::OutputLogEvent::builder()
                        .message("error: DYNAMODB_TABLE_NAME is not set\n")
                        .build(),
                )
                .build()
        });
    let clients = clients(&[&describe, &list, &tasks, &td], &[&logs]);
    let report = run(&clients, Duration::from_secs(600)).await;
    match &report.verdict {
        Verdict::TasksStopped { tasks } => {
            assert_eq!(tasks[0].task_id, "t1");
            assert!(tasks[0].reason.contains("Essential container"));
        }
        other => panic!("expected stopped tasks, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::Failure);
    assert_eq!(
        report.stopped_tasks[0].last_log_lines,
        ["error: DYNAMODB_TABLE_NAME is not set"]
    );
    assert_eq!(report.stopped_tasks[0].containers, ["websocket: exit 1"]);
    assert!(
        report.elapsed < Duration::from_secs(5),
        "failed fast: {:?}",
        report.elapsed
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_never_finishes_times_out() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| rolling(1));
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(30)).await;
    assert_eq!(
        report.verdict,
        Verdict::TimedOut {
            running: 1,
            desired: 2
        }
    );
    assert_eq!(report.exit(), Exit::TimedOut);
    assert!(report.elapsed >= Duration::from_secs(30));
    // Backoff: far fewer polls than one per 200 ms.
    assert!(describe.num_calls() < 20, "{} polls", describe.num_calls());
}

#[tokio::test]
async fn a_missing_service_is_not_found() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| DescribeServicesOutput::builder().build());
    let clients = clients(&[&describe], &[]);
    let err = wait(
        &clients,
        &target(Duration::from_secs(5)),
        &Progress::plain(),
        &Interrupt::never(),
    )
    .await
    .expect_err("no service");
    assert_eq!(crate::exit::classify(&err), Exit::NotFound);
}
