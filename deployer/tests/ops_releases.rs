//! `wsctl releases` and `wsctl rollback` against the AWS emulator.

mod ops_support;

use ops_support::{Deployed, repository_uri, stderr, stdout, unique_env, wsctl};

#[tokio::test]
async fn releases_lists_every_release_newest_first() {
    let env = unique_env("rl");
    let deployed = Deployed::create(&env, "1111111").await;
    deployed.release("2222222").await;
    deployed.release("3333333").await;

    let out = wsctl(&["releases", "--env", &env, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let releases = json["releases"].as_array().expect("releases");
    let summary: Vec<(i64, &str, &str, bool)> = releases
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().expect("revision"),
                r["image_tag"].as_str().expect("tag"),
                r["git_commit"].as_str().expect("commit"),
                r["running"].as_bool().expect("running"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, "3333333", "3333333", true),
            (2, "2222222", "2222222", false),
            (1, "1111111", "1111111", false)
        ]
    );
    assert!(
        releases
            .iter()
            .all(|r| r["image_in_repository"]["state"] == "present"),
        "{json}"
    );
    assert_eq!(json["running_revision"], 3);

    let text = stdout(&wsctl(&["releases", "--env", &env]));
    let running: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('*'))
        .collect();
    assert_eq!(running.len(), 1, "{text}");
    assert!(running[0].contains("3333333"), "{text}");
}

#[tokio::test]
async fn rollback_runs_the_previous_release_then_a_chosen_one() {
    let env = unique_env("rb");
    let deployed = Deployed::create(&env, "1111111").await;
    deployed.release("2222222").await;
    deployed.release("3333333").await;

    let out = wsctl(&["rollback", "--env", &env]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Rolled back to revision 2"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        deployed.running_image().await,
        format!("{}:2222222", repository_uri(&env))
    );

    let out = wsctl(&["rollback", "--env", &env, "--revision", "1", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["from_revision"], 2);
    assert_eq!(json["release"]["revision"], 1);
    assert_eq!(json["verdict"]["verdict"], "completed");
    assert_eq!(json["release"]["image_in_repository"]["state"], "present");
    assert_eq!(
        deployed.running_image().await,
        format!("{}:1111111", repository_uri(&env))
    );
}

#[tokio::test]
async fn rollback_to_a_release_whose_image_is_gone_is_refused_and_changes_nothing() {
    let env = unique_env("rx");
    let deployed = Deployed::create(&env, "1111111").await;
    deployed.release("2222222").await;
    deployed.release("3333333").await;
    deployed
        .ecr()
        .batch_delete_image()
        .repository_name(deployed.service())
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("2222222")
                .build(),
        )
        .send()
        .await
        .expect("delete image");

    let out = wsctl(&["rollback", "--env", &env]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to roll back to revision 2")
            && err.contains("no longer in the repository"),
        "{err}"
    );
    assert_eq!(
        deployed.running_image().await,
        format!("{}:3333333", repository_uri(&env))
    );

    let listed = stdout(&wsctl(&["releases", "--env", &env]));
    let line = listed
        .lines()
        .find(|l| l.contains("2222222"))
        .expect("release 2 listed");
    assert!(
        line.contains("image no longer in the repository"),
        "{listed}"
    );

    let out = wsctl(&["rollback", "--env", &env, "--revision", "99"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("revision 99"), "{}", stderr(&out));
    assert_eq!(
        deployed.running_image().await,
        format!("{}:3333333", repository_uri(&env))
    );
}

#[tokio::test]
async fn rollback_of_a_missing_environment_is_not_found() {
    let out = wsctl(&["rollback", "--env", &unique_env("rm")]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}
