//! `wsctl releases` and `wsctl rollback` against the local services, on releases made by the
//! real `wsctl deploy` (their images pushed to the registry that is the emulator's ECR).

use crate::support::{Deployed, stderr, stdout, unique_env, wsctl};

#[tokio::test]
async fn releases_lists_every_release_newest_first() {
    let env = unique_env("rl");
    let deployed = Deployed::create(&env, "one").await;
    deployed.release("two").await;
    deployed.release("three").await;

    let out = wsctl(&["releases", "--env", &env, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let releases = json["releases"].as_array().expect("releases");
    let summary: Vec<(String, bool)> = releases
        .iter()
        .map(|r| {
            (
                r["image_tag"].as_str().expect("tag").to_owned(),
                r["running"].as_bool().expect("running"),
            )
        })
        .collect();
    let release = |label: &str, running: bool| (deployed.tag(label), running);
    assert_eq!(
        summary,
        [
            release("three", true),
            release("two", false),
            release("one", false)
        ]
    );
    for (r, label) in releases.iter().zip(["three", "two", "one"]) {
        let deploy = deployed.summary(label);
        assert_eq!(r["image_in_repository"]["state"], "present", "{json}");
        assert_eq!(
            r["image_in_repository"]["digest"], deploy["image_digest"],
            "ECR has the digest the push printed: {json}"
        );
        assert!(
            r["git_commit"]
                .as_str()
                .is_some_and(|c| c.starts_with(&deployed.tag(label))),
            "{json}"
        );
    }
    let revisions: Vec<i64> = releases
        .iter()
        .map(|r| r["revision"].as_i64().expect("revision"))
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] > w[1]), "{revisions:?}");
    assert_eq!(json["running_revision"], revisions[0]);

    let text = stdout(&wsctl(&["releases", "--env", &env]));
    let running: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('*'))
        .collect();
    assert_eq!(running.len(), 1, "{text}");
    assert!(running[0].contains(&deployed.tag("three")), "{text}");
    for label in ["one", "two", "three"] {
        let digest = deployed.summary(label)["image_digest"]
            .as_str()
            .expect("digest")[..19]
            .to_owned();
        let tag = deployed.tag(label);
        assert!(
            text.lines()
                .any(|l| l.contains(&tag) && l.contains(&digest)),
            "release {label} shows its digest {digest}:\n{text}"
        );
    }
}

#[tokio::test]
async fn rollback_runs_the_previous_release_then_a_chosen_one() {
    let env = unique_env("rb");
    let deployed = Deployed::create(&env, "one").await;
    let first = deployed.summary("one");
    deployed.release("two").await;
    deployed.release("three").await;

    let out = wsctl(&["rollback", "--env", &env]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("{} runs.", deployed.image("two"))),
        "{}",
        stdout(&out)
    );
    assert_eq!(deployed.running_image().await, deployed.image("two"));

    let first_revision = first["task_definition"]
        .as_str()
        .and_then(|td| td.rsplit(':').next())
        .expect("revision")
        .to_owned();
    let out = wsctl(&[
        "rollback",
        "--env",
        &env,
        "--revision",
        &first_revision,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["release"]["revision"].to_string(), first_revision);
    assert_eq!(json["verdict"]["verdict"], "completed");
    assert_eq!(json["release"]["image_in_repository"]["state"], "present");
    assert_eq!(deployed.running_image().await, deployed.image("one"));
}

#[tokio::test]
async fn rollback_to_a_release_whose_image_is_gone_is_refused_and_changes_nothing() {
    let env = unique_env("rx");
    let deployed = Deployed::create(&env, "one").await;
    deployed.release("two").await;
    deployed.release("three").await;
    deployed
        .ecr()
        .batch_delete_image()
        .repository_name(deployed.service())
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(deployed.tag("two"))
                .build(),
        )
        .send()
        .await
        .expect("delete image");

    let out = wsctl(&["rollback", "--env", &env]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to roll back to revision")
            && err.contains("no longer in the repository"),
        "{err}"
    );
    assert_eq!(deployed.running_image().await, deployed.image("three"));

    let listed = stdout(&wsctl(&["releases", "--env", &env]));
    let line = listed
        .lines()
        .find(|l| l.contains(&deployed.tag("two")))
        .expect("release two listed");
    assert!(
        line.contains("image no longer in the repository"),
        "{listed}"
    );

    let out = wsctl(&["rollback", "--env", &env, "--revision", "99"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("revision 99"), "{}", stderr(&out));
    assert_eq!(deployed.running_image().await, deployed.image("three"));
}

#[tokio::test]
async fn rollback_of_a_missing_environment_is_not_found() {
    let out = wsctl(&["rollback", "--env", &unique_env("rm")]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}
