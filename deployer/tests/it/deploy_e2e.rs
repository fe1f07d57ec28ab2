//! `wsctl deploy` end to end against the AWS emulator, the real Docker engine and the registry
//! that stands in for ECR (all from `scripts/services up`): a first deploy into an empty
//! environment, a deploy after a source change, and a deploy with nothing changed.

use crate::support::*;
use serde_json::Value;

/// The digest the registry holds for `image`.
async fn pushed_digest(image: &str) -> String {
    registry_digest(image)
        .await
        .unwrap_or_else(|e| panic!("{image} is not in the registry: {e}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_creates_then_releases_only_what_changed() {
    let config = sdk_config().await;
    let env = unique_env("e");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);

    // 1. First deploy into an empty environment.
    let first = deploy_json(&project, &env);
    assert_eq!(first["rollout"]["verdict"], "completed", "{first:#}");
    let stack_name = format!("agenticai-websocket-{env}");
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let stack = cfn
        .describe_stacks()
        .stack_name(&stack_name)
        .send()
        .await
        .expect("stack");
    let outputs: std::collections::BTreeMap<_, _> = stack.stacks()[0]
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap_or_default(),
                o.output_value().unwrap_or_default(),
            )
        })
        .collect();
    for key in [
        "WebSocketEndpoint",
        "ECSClusterName",
        "WebSocketServiceName",
        "WebSocketRepositoryUri",
    ] {
        assert!(
            outputs.get(key).is_some_and(|v| !v.is_empty()),
            "output {key}: {outputs:?}"
        );
    }
    assert!(
        outputs["WebSocketEndpoint"].starts_with("ws://")
            && outputs["WebSocketEndpoint"].ends_with("/ws")
    );
    let repository = outputs["WebSocketRepositoryUri"];
    let image = str_of(&first, "image");
    let tag = str_of(&first, "image_tag");
    assert_eq!(image, format!("{repository}:{tag}"));
    assert_ne!(tag, "latest");
    assert_eq!(pushed_digest(image).await, str_of(&first, "image_digest"));
    let cluster = str_of(&first, "cluster");
    let service = str_of(&first, "service");
    let (td1, running1) = running(&config, cluster, service).await;
    assert_eq!(running1, image, "the service runs the immutable image");
    assert_eq!(td1, str_of(&first, "task_definition"));

    // 2. A source change: a new image in a new revision.
    project.write("payload.txt", "release two\n");
    let second = deploy_json(&project, &env);
    assert_eq!(second["revision_registered"], true, "{second:#}");
    assert_eq!(
        first["change_sets"], 2,
        "create, then the service: {first:#}"
    );
    assert_eq!(second["rollout"]["verdict"], "completed");
    let image2 = str_of(&second, "image");
    assert_ne!(
        str_of(&second, "image_digest"),
        str_of(&first, "image_digest")
    );
    assert_eq!(pushed_digest(image2).await, str_of(&second, "image_digest"));
    let (td2, running2) = running(&config, cluster, service).await;
    assert_ne!(td2, td1, "a new task definition revision");
    assert_eq!(running2, image2);
    let revision = |td: &str| {
        td.rsplit(':')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .expect("revision")
    };
    assert!(revision(&td2) > revision(&td1));

    // 3. Nothing changed (a file the .dockerignore keeps out does not count): no new revision.
    project.write("not-sent/notes.txt", "scratch notes\n");
    let third = deploy_json(&project, &env);
    assert_eq!(third["revision_registered"], false, "{third:#}");
    assert_eq!(
        third["change_sets"], 0,
        "the stack already has this template and these parameters: no change set"
    );
    assert_eq!(
        third["layers_pushed"], 0,
        "every layer already in the registry"
    );
    assert_eq!(
        str_of(&third, "image_digest"),
        str_of(&second, "image_digest")
    );
    let (td3, _) = running(&config, cluster, service).await;
    assert_eq!(td3, td2, "no new revision, no service update");
    eprintln!(
        "timings: first {}s, second {}s, unchanged {}s",
        first["total_seconds"], second["total_seconds"], third["total_seconds"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn text_output_names_endpoint_image_and_revision() {
    let config = sdk_config().await;
    let env = unique_env("t");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    let config_path = project.config();
    let out = wsctl_with(
        &[
            "deploy",
            "--env",
            &env,
            "--config",
            config_path.to_str().expect("utf-8"),
            "--yes",
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for needle in [
        "endpoint  ws://",
        "/ws\n",
        "image     ",
        "digest    sha256:",
        "revision  agenticai-websocket-",
        " (new, with the service)\n",
        "rollout   rollout completed",
        "phases    preflight",
    ] {
        assert!(stdout.contains(needle), "{needle:?} in:\n{stdout}");
    }
    // Progress goes to stderr, step by step.
    for step in [
        "✓ preflight",
        "✓ build image",
        "✓ push image",
        "✓ release",
        "✓ rollout",
    ] {
        assert!(stderr.contains(step), "{step:?} in:\n{stderr}");
    }
}
