//! `wsctl deploy` failure paths: each exits non-zero with the message an operator needs, and
//! changes nothing it should not. Against the emulator and the real Docker engine.

use crate::support::*;

/// A `--yes` deploy: (exit code, stderr).
fn deploy_code(project: &Project, env: &str, extra: &[(&str, &str)]) -> (i32, String) {
    let out = deploy(project, env, &["--yes"], extra);
    (out.status.code().unwrap_or(-1), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn no_docker_engine_is_named_before_anything_changes() {
    let config = sdk_config().await;
    let env = unique_env("nd");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    let socket = project.dir.path().join("no-such-docker.sock");
    let host = format!("unix://{}", socket.display());
    let (code, stderr) = deploy_code(&project, &env, &[("DOCKER_HOST", &host)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("preflight failed; nothing was changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("the Docker engine does not answer at {host}")),
        "{stderr}"
    );
    assert!(!stack_exists(&config, &format!("agenticai-websocket-{env}")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_main_stack_output_is_named() {
    let config = sdk_config().await;
    let env = unique_env("mo");
    let main_stack = format!("main-{env}");
    let template =
        std::fs::read_to_string(workspace().join("templates/main-stack.yaml")).expect("template");
    let without_qa = template.replace("  QAQueueUrl:\n    Value: !Ref QAQueue\n", "");
    assert_ne!(
        without_qa, template,
        "the stand-in declares output QAQueueUrl"
    );
    create_stack(&config, &main_stack, &without_qa, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    let (code, stderr) = deploy_code(&project, &env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "main stack {main_stack} lacks output(s) QAQueueUrl"
        )),
        "{stderr}"
    );
    assert!(!stack_exists(&config, &format!("agenticai-websocket-{env}")).await);

    project.write(
        "wsctl.yaml",
        &format!(
            "build:\n  pre_build: ''\nenvironments:\n  {env}:\n    main_stack: no-such-{env}\n"
        ),
    );
    let (code, stderr) = deploy_code(&project, &env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("does not exist: deploy the AgenticAI main stack first"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_dockerfile_step_shows_the_step_and_its_error() {
    let config = sdk_config().await;
    let env = unique_env("df");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let dockerfile = "FROM scratch\nCOPY payload.txt /payload.txt\nCOPY missing.txt /missing.txt\n";
    let project = Project::new(&env, &main_stack, dockerfile);
    let (code, stderr) = deploy_code(&project, &env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("image build failed at Step 3/3 : COPY missing.txt /missing.txt"),
        "{stderr}"
    );
    assert!(stderr.contains("missing.txt"), "{stderr}");
    assert!(
        stderr.contains("deploy stopped before the push"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_stack_is_reported_and_the_next_deploy_recovers() {
    let config = sdk_config().await;
    let env = unique_env("fs");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    // A repository of the same name, made outside the stack: the stack cannot create its own.
    let ecr = aws_sdk_ecr::Client::new(&config);
    let repository = format!("agenticai-websocket-{env}");
    ecr.create_repository()
        .repository_name(&repository)
        .send()
        .await
        .expect("repository");
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    let (code, stderr) = deploy_code(&project, &env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("stack agenticai-websocket-{env}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("RepositoryAlreadyExistsException"),
        "{stderr}"
    );

    // The way out: remove the conflict and deploy again; the half-made stack is picked up.
    ecr.delete_repository()
        .repository_name(&repository)
        .force(true)
        .send()
        .await
        .expect("delete");
    let summary = deploy_json(&project, &env);
    assert_eq!(summary["rollout"]["verdict"], "completed", "{summary:#}");
}

/// A deploy that must be refused as bad usage (exit 2) with `needle` in its message.
fn refused_as_usage(project: &Project, env: &str, args: &[&str], needle: &str) {
    let out = deploy(project, env, args, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr}");
}

#[test]
fn prod_without_a_terminal_needs_yes() {
    let project = Project::new("prod", "main-prod", TINY_DOCKERFILE);
    refused_as_usage(&project, "prod", &[], "pass --yes");
}

#[test]
fn bad_settings_are_usage_errors() {
    let project = Project::new("dev", "main-dev", TINY_DOCKERFILE);
    project.write("wsctl.yaml", "environments:\n  dev:\n    cpu: 300\n");
    refused_as_usage(&project, "dev", &["--yes"], "cpu 300 is not a Fargate size");
}
