//! The wait loop on recorded ECS response sequences (aws-smithy-mocks): the rollout states the
//! emulator cannot produce. Time is paused, so backoff and deadlines cost nothing.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{
    Attachment, Container, ContainerDefinition, Deployment, DeploymentRolloutState, DesiredStatus,
    KeyValuePair, LoadBalancer, LogConfiguration, LogDriver, Service, ServiceEvent, Tag, Task,
    TaskDefinition, TaskStopCode,
};
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::{
    DescribeTargetHealthError, DescribeTargetHealthOutput,
};
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
};
use aws_smithy_mocks::{Rule, create_mock_http_client, mock};
use aws_smithy_types::DateTime;
use aws_smithy_types::error::ErrorMetadata;

use super::*;
use crate::exit::Exit;
use crate::rollout::verdict::Rollback;

use crate::rollout::alarms::tests::{OURS, TD_NEW, TD_OLD, deployment_of, interceptor};

fn clients(ecs_rules: &[&Rule], logs_rules: &[&Rule]) -> Clients {
    clients_with_elb(ecs_rules, logs_rules, &[])
}

fn clients_with_elb(ecs_rules: &[&Rule], logs_rules: &[&Rule], elb_rules: &[&Rule]) -> Clients {
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
        .interceptor(interceptor(elb_rules))
        .build();
    Clients {
        ecs: aws_sdk_ecs::Client::from_conf(ecs),
        elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
        logs: aws_sdk_cloudwatchlogs::Client::from_conf(logs),
        cloudwatch: crate::rollout::alarms::tests::cloudwatch(&[]),
        ..Clients::unreachable()
    }
}

fn deployment(
    id: &str,
    status: &str,
    state: DeploymentRolloutState,
    td: &str,
    running: i32,
) -> Deployment {
    deployment_of(2, id, status, state, td, running)
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
        restore_to: None,
    }
}

async fn run(clients: &Clients, timeout: Duration) -> Report {
    run_for(clients, &target(timeout)).await
}

async fn run_for(clients: &Clients, target: &Target) -> Report {
    wait(clients, target, &Progress::plain(), &Interrupt::never())
        .await
        .expect("a report for every outcome once the deployment is known")
}

#[tokio::test(start_paused = true)]
async fn completed_after_a_few_polls() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .output(|| rolling(1))
        .output(completed)
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert_eq!(
        report.verdict,
        Verdict::Completed {
            running: 2,
            desired: 2,
            warnings: vec![]
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
        Verdict::RolledBack(Rollback {
            reason, restored, ..
        }) => {
            assert!(reason.contains("circuit breaker"), "{reason}");
            assert_eq!(restored.as_deref(), Some(TD_OLD));
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::RolledBack);
}

fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:1:task/c/{id}")
}

/// Lists the given tasks as stopped tasks of our deployment from the `from`-th poll on.
fn stopped_from(from: usize, ids: &'static [&'static str]) -> Rule {
    let mut seq = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| {
            r.started_by() == Some(OURS) && r.desired_status() == Some(&DesiredStatus::Stopped)
        })
        .sequence();
    if from > 0 {
        seq = seq
            .output(|| ListTasksOutput::builder().build())
            .times(from);
    }
    seq.output(move || {
        ListTasksOutput::builder()
            .set_task_arns(Some(ids.iter().map(|id| task_arn(id)).collect()))
            .build()
    })
    .repeatedly()
    .build()
}

fn stopped_task(
    id: &str,
    code: TaskStopCode,
    reason: &str,
) -> aws_sdk_ecs::types::builders::TaskBuilder {
    Task::builder()
        .task_arn(task_arn(id))
        .task_definition_arn(TD_NEW)
        .last_status("STOPPED")
        .stop_code(code)
        .stopped_reason(reason)
}

fn crashed(id: &str) -> Task {
    let reason = "Essential container in task exited";
    stopped_task(id, TaskStopCode::EssentialContainerExited, reason)
        .containers(Container::builder().name("websocket").exit_code(1).build())
        .build()
}

fn health_check_failed(id: &str) -> Task {
    let reason = "Task failed ELB health checks in (target-group arn:aws:tg/ws-dev/1)";
    stopped_task(id, TaskStopCode::ServiceSchedulerInitiated, reason).build()
}

/// DescribeTasks answering with `task(id)` for each task asked about.
fn described(task: fn(&str) -> Task) -> Rule {
    mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(move |r| {
        DescribeTasksOutput::builder()
            .set_tasks(Some(
                r.tasks()
                    .iter()
                    .map(|arn| task(arn.rsplit('/').next().unwrap_or_default()))
                    .collect(),
            ))
            .build()
    })
}

fn task_definition_logging_to_cloudwatch() -> Rule {
    mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
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
    })
}

fn last_log_line() -> Rule {
    mock!(aws_sdk_cloudwatchlogs::Client::get_log_events)
        .match_requests(|r| {
            r.log_group_name() == Some("/ecs/ws-dev")
                && r.log_stream_name()
                    .is_some_and(|s| s.starts_with("ws/websocket/t"))
        })
        .then_output(|| {
            aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput::builder()
                .events(
                    aws_sdk_cloudwatchlogs::types::OutputLogEvent::builder()
                        .message("error: DYNAMODB_TABLE_NAME is not set\n")
                        .build(),
                )
                .build()
        })
}

fn completed() -> DescribeServicesOutput {
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
}

/// The deployment wsctl starts to put the previous release back.
const RESTORE: &str = "ecs-svc/restore";

fn restoring(running: i32, state: DeploymentRolloutState) -> DescribeServicesOutput {
    service(
        vec![
            deployment(RESTORE, "PRIMARY", state, TD_OLD, running),
            deployment(
                OURS,
                "ACTIVE",
                DeploymentRolloutState::InProgress,
                TD_NEW,
                0,
            ),
        ],
        &[],
    )
}

#[tokio::test(start_paused = true)]
async fn the_same_failure_on_two_tasks_fails_fast_and_wsctl_rolls_back_to_match() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .output(|| restoring(1, DeploymentRolloutState::InProgress))
        .output(|| restoring(2, DeploymentRolloutState::Completed))
        .build();
    let list = stopped_from(0, &["t1", "t2"]);
    let tasks = described(crashed);
    let td = task_definition_logging_to_cloudwatch();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| r.task_definition() == Some(TD_OLD))
        .then_output(|| {
            UpdateServiceOutput::builder()
                .service(
                    Service::builder()
                        .deployments(deployment(
                            RESTORE,
                            "PRIMARY",
                            DeploymentRolloutState::InProgress,
                            TD_OLD,
                            0,
                        ))
                        .build(),
                )
                .build()
        });
    let logs = last_log_line();
    let clients = clients(&[&describe, &list, &tasks, &td, &update], &[&logs]);
    let mut target = target(Duration::from_secs(600));
    target.restore_to = Some(TD_OLD.into());
    let report = run_for(&clients, &target).await;

    assert_eq!(update.num_calls(), 1, "wsctl rolled back, once");
    match &report.verdict {
        Verdict::RolledBack(Rollback {
            by,
            reason,
            restored,
            running,
            desired,
        }) => {
            assert_eq!(*by, crate::rollout::verdict::Actor::Wsctl);
            assert!(reason.contains("same failure on 2 tasks"), "{reason}");
            assert!(reason.contains("Essential container"), "{reason}");
            assert_eq!(restored.as_deref(), Some(TD_OLD));
            assert_eq!((*running, *desired), (2, 2), "the old release runs");
        }
        other => panic!("expected wsctl's rollback, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::RolledBack);
    assert_eq!(
        describe.num_calls(),
        3,
        "waited for the rollback to complete"
    );
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
async fn without_a_release_to_go_back_to_the_fail_fast_says_ecs_goes_on() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| rolling(0));
    let list = stopped_from(1, &["t1", "t2"]);
    let tasks = described(crashed);
    let td = task_definition_logging_to_cloudwatch();
    let logs = last_log_line();
    let clients = clients(&[&describe, &list, &tasks, &td], &[&logs]);
    let report = run(&clients, Duration::from_secs(600)).await;
    match &report.verdict {
        Verdict::TasksStopped { tasks, rule } => {
            assert_eq!(tasks.len(), 2);
            assert!(rule.contains("same failure on 2 tasks"), "{rule}");
        }
        other => panic!("expected the release to fail, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::Failure);
    let hint = resume_hint("dev", &report).expect("ECS goes on: say so");
    assert!(hint.contains("ECS keeps trying"), "{hint}");
    assert!(
        hint.contains(&format!(
            "wsctl status --env dev --wait --deployment {OURS}"
        )),
        "{hint}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_flaky_task_is_a_warning_when_the_rollout_completes() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .output(|| rolling(1))
        .output(|| rolling(1))
        .output(completed)
        .build();
    let list = stopped_from(1, &["t1"]);
    let tasks = described(health_check_failed);
    let td = task_definition_logging_to_cloudwatch();
    let logs = last_log_line();
    let clients = clients(&[&describe, &list, &tasks, &td], &[&logs]);
    let report = run(&clients, Duration::from_secs(600)).await;
    match &report.verdict {
        Verdict::Completed { warnings, .. } => {
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("task t1 stopped"), "{warnings:?}");
            assert!(warnings[0].contains("ELB health checks"), "{warnings:?}");
        }
        other => panic!("expected completion with a warning, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::Success);
    assert!(report.verdict.describe().contains("warning: task t1"));
    assert_eq!(resume_hint("dev", &report), None);
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
            desired: 2,
            note: None
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

/// `status --wait --deployment ID` after Ctrl-C: meanwhile the circuit breaker rolled ours
/// back and the rollback completed, so the service is stable, on the old release. Following
/// the PRIMARY deployment would say "completed"; following ours says rolled back.
#[tokio::test(start_paused = true)]
async fn a_resumed_wait_after_a_breaker_rollback_exits_rolled_back() {
    let rolled_back = || {
        let mut s = Service::builder()
            .service_name("ws-dev")
            .status("ACTIVE")
            .desired_count(2)
            .deployments(deployment(
                "ecs-svc/rb",
                "PRIMARY",
                DeploymentRolloutState::Completed,
                TD_OLD,
                2,
            ));
        // Events from before the resumed wait: history, but ECS's record of the failure.
        for (id, message) in [
            ("e9", "(service ws-dev) has reached a steady state."),
            (
                "e8",
                "(service ws-dev) (deployment ecs-svc/new) deployment failed: tasks failed to \
                 start.",
            ),
        ] {
            s = s.events(
                ServiceEvent::builder()
                    .id(id)
                    .created_at(DateTime::from_secs(1_700_000_000))
                    .message(message)
                    .build(),
            );
        }
        DescribeServicesOutput::builder()
            .services(s.build())
            .build()
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(rolled_back);
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let mut resumed = target(Duration::from_secs(600));
    resumed.since = SystemTime::now();
    let report = run_for(&clients, &resumed).await;
    match &report.verdict {
        Verdict::RolledBack(Rollback {
            reason,
            restored,
            running,
            ..
        }) => {
            assert!(reason.contains("deployment failed"), "{reason}");
            assert_eq!(restored.as_deref(), Some(TD_OLD));
            assert_eq!(*running, 2);
        }
        other => panic!("expected rolled back, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::RolledBack);

    // The old behaviour, following whatever is PRIMARY, would have said success.
    resumed.deployment_id = None;
    assert_eq!(run_for(&clients, &resumed).await.exit(), Exit::Success);
}

/// While the breaker's rollback runs, exit 3 is not said yet: "the previous release runs"
/// must be true when it is.
#[tokio::test(start_paused = true)]
async fn rolled_back_waits_for_the_rollback_deployment_to_complete() {
    let failed = |rb_running: i32, rb_state: DeploymentRolloutState| {
        let mut ours = deployment(OURS, "ACTIVE", DeploymentRolloutState::Failed, TD_NEW, 0);
        ours.rollout_state_reason = Some("ECS deployment circuit breaker: tasks failed.".into());
        service(
            vec![
                deployment("ecs-svc/rb", "PRIMARY", rb_state, TD_OLD, rb_running),
                ours,
            ],
            &[],
        )
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(move || failed(0, DeploymentRolloutState::InProgress))
        .output(move || failed(1, DeploymentRolloutState::InProgress))
        .output(move || failed(2, DeploymentRolloutState::Completed))
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert!(
        matches!(
            report.verdict,
            Verdict::RolledBack(Rollback { running: 2, .. })
        ),
        "{:?}",
        report.verdict
    );
    assert_eq!(describe.num_calls(), 3);

    // Bounded by the deadline: then it is a timeout that says ECS is still rolling back.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(move || failed(1, DeploymentRolloutState::InProgress));
    let list = no_stopped_tasks();
    let clients = self::clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(30)).await;
    assert_eq!(report.exit(), Exit::TimedOut);
    assert!(
        report
            .verdict
            .describe()
            .contains("ECS is still rolling back to ws-dev:7"),
        "{}",
        report.verdict.describe()
    );
}

fn throttled() -> DescribeServicesError {
    DescribeServicesError::generic(
        ErrorMetadata::builder()
            .code("ThrottlingException")
            .message("Rate exceeded")
            .build(),
    )
}

/// The SDK retries each call a few times itself; a poll fails when all of them did.
const SDK_ATTEMPTS: usize = 3;

#[tokio::test(start_paused = true)]
async fn throttled_and_5xx_polls_are_retried_until_the_rollout_completes() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .error(throttled)
        .times(SDK_ATTEMPTS)
        .http_status(503, Some("Service Unavailable".into()))
        .times(SDK_ATTEMPTS)
        .output(completed)
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert_eq!(report.exit(), Exit::Success, "{:?}", report.verdict);
    assert_eq!(report.deployment_id, OURS);
    assert_eq!(
        describe.num_calls(),
        2 + 2 * SDK_ATTEMPTS,
        "two polls failed"
    );
}

#[tokio::test(start_paused = true)]
async fn polls_throttled_until_the_deadline_time_out_with_the_cause() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(1))
        .error(throttled)
        .repeatedly()
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(120)).await;
    assert_eq!(report.exit(), Exit::TimedOut);
    let line = report.verdict.describe();
    assert!(line.contains("1/2 tasks running"), "{line}");
    assert!(line.contains("ThrottlingException"), "{line}");
    // Backed off: not a hammering of a throttled API.
    assert!(describe.num_calls() < 60, "{} calls", describe.num_calls());
    assert!(resume_hint("dev", &report).is_some_and(|h| h.contains(OURS)));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_ends_the_wait_with_a_report_and_the_way_to_resume() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(0))
        .error(|| {
            DescribeServicesError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform ecs:DescribeServices")
                    .build(),
            )
        })
        .build();
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    match &report.verdict {
        Verdict::WaitFailed { error } => assert!(error.contains("AccessDenied"), "{error}"),
        other => panic!("expected the wait to fail, got {other:?}"),
    }
    assert_eq!(report.exit(), Exit::Failure);
    assert_eq!(describe.num_calls(), 2, "a permanent error is not retried");
    assert_eq!(
        resume_command("dev", &report).as_deref(),
        Some("wsctl status --env dev --wait --deployment ecs-svc/new")
    );
}

#[tokio::test(start_paused = true)]
async fn someone_else_s_deploy_supersedes_ours_and_is_named() {
    const THEIRS: &str = "ecs-svc/theirs";
    const TD_THEIRS: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ws-dev:9";
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| rolling(1))
        .output(|| {
            service(
                vec![
                    deployment(
                        THEIRS,
                        "PRIMARY",
                        DeploymentRolloutState::InProgress,
                        TD_THEIRS,
                        0,
                    ),
                    deployment(
                        OURS,
                        "ACTIVE",
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
                ],
                &[],
            )
        })
        .build();
    let list = no_stopped_tasks();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(TD_THEIRS))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .tags(
                    Tag::builder()
                        .key("wsctl:git-commit")
                        .value("0badc0ffee12")
                        .build(),
                )
                .build()
        });
    let clients = clients(&[&describe, &list, &td], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert_eq!(
        report.verdict,
        Verdict::Superseded {
            by: THEIRS.into(),
            task_definition: TD_THEIRS.into(),
            started_by: Some("a wsctl deploy of commit 0badc0ffee12".into()),
        }
    );
    assert_eq!(report.exit(), Exit::Superseded);
    let line = report.verdict.describe();
    assert!(line.contains(THEIRS) && line.contains("ws-dev:9"), "{line}");
    assert_eq!(resume_hint("dev", &report), None, "nothing of ours goes on");
}

#[tokio::test(start_paused = true)]
async fn a_service_at_zero_tasks_is_not_a_successful_rollout() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        let mut d = deployment(
            OURS,
            "PRIMARY",
            DeploymentRolloutState::Completed,
            TD_NEW,
            0,
        );
        d.desired_count = 0;
        service(vec![d], &[])
    });
    let list = no_stopped_tasks();
    let clients = clients(&[&describe, &list], &[]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert_eq!(report.verdict, Verdict::NothingToRun);
    assert_eq!(report.exit(), Exit::Failure);
}

const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/ws-dev/1";

fn behind_a_load_balancer(mut out: DescribeServicesOutput) -> DescribeServicesOutput {
    for s in out.services.iter_mut().flatten() {
        s.load_balancers = Some(vec![
            LoadBalancer::builder()
                .target_group_arn(TG)
                .container_name("websocket")
                .container_port(8080)
                .build(),
        ]);
    }
    out
}

fn running_task(id: &str, ip: &str) -> Task {
    Task::builder()
        .task_arn(task_arn(id))
        .task_definition_arn(TD_NEW)
        .last_status("RUNNING")
        .attachments(
            Attachment::builder()
                .r#type("ElasticNetworkInterface")
                .details(
                    KeyValuePair::builder()
                        .name("privateIPv4Address")
                        .value(ip)
                        .build(),
                )
                .build(),
        )
        .build()
}

fn targets(states: &[(&str, TargetHealthStateEnum)]) -> DescribeTargetHealthOutput {
    DescribeTargetHealthOutput::builder()
        .set_target_health_descriptions(Some(
            states
                .iter()
                .map(|(ip, state)| {
                    TargetHealthDescription::builder()
                        .target(TargetDescription::builder().id(*ip).port(8080).build())
                        .target_health(TargetHealth::builder().state(state.clone()).build())
                        .build()
                })
                .collect(),
        ))
        .build()
}

#[tokio::test(start_paused = true)]
async fn success_waits_for_the_new_tasks_targets_to_be_healthy() {
    use TargetHealthStateEnum::{Healthy, Initial};
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| behind_a_load_balancer(completed()));
    let stopped = no_stopped_tasks_of_ours();
    let running = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.desired_status() == Some(&DesiredStatus::Running))
        .then_output(|| {
            ListTasksOutput::builder()
                .task_arns(task_arn("a"))
                .task_arns(task_arn("b"))
                .build()
        });
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(running_task("a", "10.0.1.5"))
            .tasks(running_task("b", "10.0.2.6"))
            .build()
    });
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .match_requests(|r| r.target_group_arn() == Some(TG))
        .sequence()
        // The old release's target draining does not count; ours warm up, then pass.
        .output(|| {
            targets(&[
                ("10.0.1.5", Healthy),
                ("10.0.2.6", Initial),
                ("10.0.9.9", TargetHealthStateEnum::Draining),
            ])
        })
        .times(2)
        .output(|| targets(&[("10.0.1.5", Healthy), ("10.0.2.6", Healthy)]))
        .build();
    let clients = clients_with_elb(&[&describe, &stopped, &running, &tasks], &[], &[&health]);
    let report = run(&clients, Duration::from_secs(600)).await;
    assert_eq!(report.exit(), Exit::Success, "{:?}", report.verdict);
    assert_eq!(
        health.num_calls(),
        3,
        "not done while a new target was initial"
    );
}

#[tokio::test(start_paused = true)]
async fn a_target_health_read_error_is_shown_not_swallowed() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| behind_a_load_balancer(completed()));
    let stopped = no_stopped_tasks_of_ours();
    let health =
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_error(|| {
            DescribeTargetHealthError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform DescribeTargetHealth")
                    .build(),
            )
        });
    let clients = clients_with_elb(&[&describe, &stopped], &[], &[&health]);
    let report = run(&clients, Duration::from_secs(600)).await;
    match &report.verdict {
        Verdict::WaitFailed { error } => {
            assert!(error.contains("target health of"), "{error}");
            assert!(error.contains("AccessDenied"), "{error}");
        }
        other => panic!("no success without target health, got {other:?}"),
    }
}

fn no_stopped_tasks_of_ours() -> Rule {
    mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.desired_status() == Some(&DesiredStatus::Stopped))
        .then_output(|| ListTasksOutput::builder().build())
}
