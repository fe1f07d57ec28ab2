//! Build once, promote, end to end (emulator, engine and registry of `scripts/services up`):
//! `wsctl deploy --image-from SOURCE` deploys the digest SOURCE runs, copied registry to
//! registry into the target's own repository and recorded in its release with the origin;
//! a digest the source repository does not have is refused and nothing changes.

#![allow(clippy::unwrap_used)]

use crate::support::*;

/// What `env`'s service runs now (its task definition ARN).
async fn running(config: &aws_config::SdkConfig, env: &str) -> String {
    aws_sdk_ecs::Client::new(config)
        .describe_services()
        .cluster(format!("agenticai-cluster-{env}"))
        .services(format!("agenticai-websocket-{env}"))
        .send()
        .await
        .expect("describe the service")
        .services()[0]
        .task_definition()
        .expect("a task definition")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn promotion_copies_the_running_digest_and_refuses_one_the_source_lacks() {
    let config = sdk_config().await;
    let source = unique_env("ps");
    let target = unique_env("pt");
    for env in [&source, &target] {
        create_main_stack(&config, &format!("main-{env}"), env).await;
    }
    let source_project = Project::new(&source, &format!("main-{source}"), TINY_DOCKERFILE);
    source_project.write("payload.txt", format!("built once for {source}\n").as_str());
    let built = deploy_json(&source_project, &source);
    let digest = built["image_digest"].as_str().expect("digest").to_owned();

    // The target's project has no Dockerfile: nothing could be built there.
    let target_project = Project::new(&target, &format!("main-{target}"), TINY_DOCKERFILE);
    std::fs::remove_file(target_project.dir.path().join("Dockerfile")).expect("rm Dockerfile");
    let promoted = succeeded(
        "the promotion",
        &deploy(
            &target_project,
            &target,
            &["--yes", "--output", "json", "--image-from", &source],
            &[],
        ),
    );
    assert_eq!(promoted["rollout"]["verdict"], "completed", "{promoted:#}");
    assert_eq!(promoted["image_digest"], digest.as_str(), "{promoted:#}");
    assert_eq!(
        promoted["promoted_from"],
        format!("{source}@{digest}").as_str(),
        "{promoted:#}"
    );
    assert!(
        !promoted["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "build"),
        "nothing was built: {promoted:#}"
    );
    // The target's own repository serves the same digest, and its service runs it.
    let image = promoted["image"].as_str().expect("image");
    assert!(
        image.contains(&format!("/agenticai-websocket-{target}:")),
        "{image}"
    );
    assert_eq!(registry_digest(image).await.as_deref(), Ok(digest.as_str()));
    let released = running(&config, &target).await;
    assert_eq!(promoted["task_definition"], released.as_str());

    // The release ledger records the origin.
    let config_path = target_project.config();
    let config_arg = config_path.to_str().unwrap();
    let releases = succeeded(
        "releases",
        &wsctl_with(
            &[
                "releases", "--env", &target, "--config", config_arg, "--output", "json",
            ],
            &[],
        ),
    );
    let current = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["running"] == true)
        .unwrap_or_else(|| panic!("a running release: {releases:#}"));
    assert_eq!(
        current["promoted_from"],
        format!("{source}@{digest}").as_str()
    );
    let table = wsctl_with(&["releases", "--env", &target, "--config", config_arg], &[]);
    assert!(
        text(&table.stdout).contains(&format!("promoted from {source}@sha256:{}", &digest[7..19])),
        "{}",
        text(&table.stdout)
    );

    // A digest the source does not have: refused, nothing changed.
    let missing = format!("sha256:{}", "0".repeat(64));
    let registry = image.split('/').next().unwrap();
    let out = deploy(
        &target_project,
        &target,
        &[
            "--yes",
            "--image",
            &format!("{registry}/agenticai-websocket-{source}@{missing}"),
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a missing digest was deployed:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("refusing to promote {missing}"))
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(
        running(&config, &target).await,
        released,
        "the service was not touched"
    );
    assert_eq!(
        registry_digest(&format!(
            "{registry}/agenticai-websocket-{target}@{missing}"
        ))
        .await
        .ok(),
        None,
        "nothing was copied"
    );

    // And an image not named by digest is bad usage.
    let by_tag = deploy(
        &target_project,
        &target,
        &[
            "--yes",
            "--image",
            &format!("{registry}/agenticai-websocket-{source}:latest"),
        ],
        &[],
    );
    assert_eq!(by_tag.status.code(), Some(2), "{}", text(&by_tag.stderr));
}
