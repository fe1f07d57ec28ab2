//! The rollout verdict against the AWS emulator, through the fault-injecting proxy where moto
//! alone cannot produce the state: throttled polls that the wait rides out, a deployment
//! superseded by someone else's while the wait follows it, and a deploy of zero tasks refused.
//! (A breaker rollback, stopped tasks and target health are not in moto: the recorded API
//! sequences of `src/rollout/wait_tests.rs` carry those.)

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::{Deployed, services_env, stderr, stdout, unique_env, wsctl_command};

fn moto() -> String {
    services_env()
        .get("AWS_ENDPOINT_URL")
        .cloned()
        .expect("the emulator's endpoint")
}

/// The deployment the service runs now (moto keeps one per service).
async fn primary_deployment(deployed: &Deployed) -> String {
    deployed
        .described_service()
        .await
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.id())
        .expect("a PRIMARY deployment")
        .to_owned()
}

#[tokio::test]
async fn throttled_polls_are_ridden_out_and_the_summary_is_printed() {
    let env = unique_env("vt");
    let deployed = Deployed::create(&env, "1111111").await;
    deployed.release("2222222").await;
    let deployment = primary_deployment(&deployed).await;
    // The first DescribeServices (finding the service) passes; the next six, two polls of
    // the SDK's three attempts each, are throttled.
    let (proxy, seen) = crate::support::proxy::throttling(&moto(), 1, 6).await;

    let mut command = wsctl_command(&[
        "status",
        "--env",
        &env,
        "--wait",
        "--deployment",
        &deployment,
        "--output",
        "json",
        "--endpoint-url",
        &proxy,
    ]);
    // Blocking on wsctl here would starve the proxy, which runs on this test's runtime.
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run wsctl");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        seen.load(Ordering::SeqCst) > 7,
        "the proxy throttled, then answered"
    );
    assert!(
        err.matches("poll failed, retrying in").count() >= 1,
        "says it retries: {err}"
    );
    assert!(err.contains("ThrottlingException"), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["rollout"]["verdict"], "completed", "{json:#}");
    assert_eq!(json["rollout"]["deployment_id"], deployment.as_str());
    assert_eq!(
        json["environment"],
        env.as_str(),
        "the whole status follows"
    );
    assert_eq!(
        json["release"]["image_tag"],
        deployed.tag("2222222").as_str()
    );
}

#[tokio::test]
async fn a_deploy_by_someone_else_during_the_wait_supersedes_ours() {
    let env = unique_env("vs");
    let deployed = Deployed::create(&env, "1111111").await;
    deployed.release("2222222").await;
    let ours = primary_deployment(&deployed).await;
    let proxy = crate::support::proxy::holding_rollouts(&moto()).await;

    let child = wsctl_command(&[
        "status",
        "--env",
        &env,
        "--wait",
        "--deployment",
        &ours,
        "--output",
        "json",
        "--endpoint-url",
        &proxy,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start wsctl status --wait");
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Someone else deploys: the service pointed at another revision (the first release's),
    // as a new deployment of the service.
    let theirs_td = deployed.summary("1111111")["task_definition"]
        .as_str()
        .expect("the first release's task definition")
        .to_owned();
    let updated = deployed
        .ecs()
        .update_service()
        .cluster(deployed.cluster())
        .service(deployed.service())
        .task_definition(&theirs_td)
        .force_new_deployment(true)
        .send()
        .await
        .expect("their deploy");
    let theirs = updated
        .service()
        .and_then(|s| s.deployments().first())
        .and_then(|d| d.id())
        .expect("their deployment")
        .to_owned();
    assert_ne!(theirs, ours);

    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wsctl output");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(6),
        "superseded has its own code: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "not a timeout");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["rollout"]["verdict"], "superseded", "{json:#}");
    assert_eq!(
        json["rollout"]["by"],
        theirs.as_str(),
        "names the deployment"
    );
    assert_eq!(json["rollout"]["deployment_id"], ours.as_str());
    assert!(err.contains(&theirs), "{err}");
}

#[tokio::test]
async fn a_deploy_of_zero_tasks_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = unique_env("vz");
    let config = dir.path().join("wsctl.yaml");
    std::fs::write(
        &config,
        format!("environments:\n  {env}:\n    desired_count: 0\n    min_tasks: 0\n"),
    )
    .expect("settings");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsctl"))
        .args(["deploy", "--env", &env, "--yes", "--config"])
        .arg(&config)
        .envs(services_env())
        .stdin(Stdio::null())
        .output()
        .expect("run wsctl deploy");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("desired_count 0"), "{err}");
    assert!(err.contains("min_tasks 0"), "{err}");
    assert!(stdout(&out).is_empty());
    let config = crate::support::sdk_config().await;
    let stack = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name(format!("agenticai-websocket-{env}"))
        .send()
        .await;
    assert!(stack.is_err(), "no stack was created: {stack:?}");
}
