//! The flow users run most after a deploy, end to end on the local services: deploy, deploy a
//! change, list the releases, roll back to the first, and refuse a rollback to a release whose
//! image was deleted through ECR's API. Every step through the real `wsctl` and the real image
//! push; after each, `status` shows the running release with its task and healthy target, the
//! registry and the emulator's ECR agree on every digest.

use crate::support::{Deployed, registry_digest, stderr, stdout, unique_env, wsctl};
use aws_sdk_ecr::types::ImageIdentifier;
use serde_json::Value;

fn json_of(args: &[&str]) -> Value {
    let out = wsctl(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} prints one JSON document ({e}): {}", stdout(&out)))
}

fn revision_of(task_definition: &Value) -> i64 {
    task_definition
        .as_str()
        .and_then(|td| td.rsplit(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a task definition ARN: {task_definition}"))
}

/// `status` shows `revision` running, with one task of it and that task's healthy target.
fn assert_runs(env: &str, revision: i64) -> Value {
    let status = json_of(&["status", "--env", env, "-o", "json"]);
    assert_eq!(status["release"]["revision"], revision, "{status:#}");
    assert_eq!(status["service"]["running"], 1, "{status:#}");
    let tasks = status["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1, "one task for running 1: {status:#}");
    assert_eq!(tasks[0]["revision"], revision, "{status:#}");
    assert_eq!(tasks[0]["last_status"], "RUNNING", "{status:#}");
    let targets = status["targets"].as_array().expect("targets");
    assert_eq!(
        targets.len(),
        1,
        "the old task's target is gone: {status:#}"
    );
    assert_eq!(targets[0]["state"], "healthy", "{status:#}");
    assert_eq!(status["healthy"], true, "{status:#}");
    let text = stdout(&wsctl(&["status", "--env", env]));
    assert!(
        text.contains(&format!("Release      revision {revision}  ")),
        "{text}"
    );
    assert!(
        !text.contains("(none running)") && !text.contains("(none registered)"),
        "{text}"
    );
    status
}

/// The digest ECR reports for `tag`, or None when ECR says the image is not there.
async fn ecr_digest(deployed: &Deployed, tag: &str) -> Option<String> {
    let out = deployed
        .ecr()
        .batch_get_image()
        .repository_name(deployed.service())
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
        .expect("BatchGetImage");
    out.images()
        .first()
        .and_then(|i| i.image_id())
        .and_then(|id| id.image_digest())
        .map(str::to_owned)
}

/// The service's deployments as ECS describes them (to compare before and after).
async fn deployments(deployed: &Deployed) -> String {
    format!("{:?}", deployed.described_service().await.deployments())
}

#[tokio::test]
async fn deploy_twice_roll_back_to_the_first_and_refuse_a_deleted_image() {
    let env = unique_env("gr");

    // 1. The first release.
    let deployed = Deployed::create(&env, "one").await;
    let first = deployed.summary("one");
    let r1 = revision_of(&first["task_definition"]);
    assert_runs(&env, r1);

    // 2. A change, deployed: a new revision runs, the first one's task is stopped.
    deployed.release("two").await;
    let second = deployed.summary("two");
    let r2 = revision_of(&second["task_definition"]);
    assert!(r2 > r1, "{r2} after {r1}");
    assert_runs(&env, r2);
    let ecs = deployed.ecs();
    let stopped = ecs
        .list_tasks()
        .cluster(deployed.cluster())
        .started_by(first["deployment_id"].as_str().expect("deployment id"))
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .expect("ListTasks");
    assert_eq!(stopped.task_arns().len(), 1, "the first deployment's task");
    let described = ecs
        .describe_tasks()
        .cluster(deployed.cluster())
        .set_tasks(Some(stopped.task_arns().to_vec()))
        .send()
        .await
        .expect("DescribeTasks");
    let task = &described.tasks()[0];
    assert_eq!(task.last_status(), Some("STOPPED"));
    assert_eq!(
        task.task_definition_arn(),
        first["task_definition"].as_str()
    );

    // 3. Both releases listed, each with the digest its push printed, which the registry
    //    and ECR both report.
    let releases = json_of(&["releases", "--env", &env, "-o", "json"]);
    assert_eq!(releases["running_revision"], r2, "{releases:#}");
    for (summary, revision) in [(&first, r1), (&second, r2)] {
        let listed = releases["releases"]
            .as_array()
            .expect("releases")
            .iter()
            .find(|r| r["revision"] == revision)
            .unwrap_or_else(|| panic!("revision {revision} listed: {releases:#}"));
        let digest = summary["image_digest"].as_str().expect("digest");
        assert_eq!(listed["image_in_repository"]["state"], "present");
        assert_eq!(listed["image_in_repository"]["digest"], digest);
        let image = summary["image"].as_str().expect("image");
        assert_eq!(registry_digest(image).await.as_deref(), Ok(digest));
        let tag = summary["image_tag"].as_str().expect("tag");
        assert_eq!(ecr_digest(&deployed, tag).await.as_deref(), Some(digest));
    }

    // 4. Back to the first release: its image runs again, and the ledger says so.
    let out = json_of(&[
        "rollback",
        "--env",
        &env,
        "--revision",
        &r1.to_string(),
        "-o",
        "json",
    ]);
    assert_eq!(out["verdict"]["verdict"], "completed", "{out:#}");
    assert_eq!(out["from_revision"], r2);
    assert_eq!(deployed.running_image().await, deployed.image("one"));
    let status = assert_runs(&env, r1);
    assert_eq!(status["latest_revision"], r2);
    assert!(
        status["notes"]
            .to_string()
            .contains(&format!("running revision {r1} but revision {r2} is newer")),
        "{status:#}"
    );
    let releases = json_of(&["releases", "--env", &env, "-o", "json"]);
    assert_eq!(releases["running_revision"], r1, "{releases:#}");

    // 5. The second release's image deleted through ECR's API (what the lifecycle policy
    //    does): gone from the registry too, and a rollback to it is refused, changing nothing.
    let tag2 = deployed.tag("two");
    let deleted = deployed
        .ecr()
        .batch_delete_image()
        .repository_name(deployed.service())
        .image_ids(ImageIdentifier::builder().image_tag(&tag2).build())
        .send()
        .await
        .expect("BatchDeleteImage");
    assert!(deleted.failures().is_empty(), "{deleted:?}");
    assert_eq!(ecr_digest(&deployed, &tag2).await, None);
    let image2 = deployed.image("two");
    assert!(
        registry_digest(&image2).await.is_err(),
        "{image2} can no longer be pulled"
    );
    let deployments_before = deployments(&deployed).await;

    let out = wsctl(&["rollback", "--env", &env, "--revision", &r2.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("refusing to roll back to revision {r2}"))
            && err.contains("no longer in the repository"),
        "{err}"
    );
    assert_eq!(
        deployments(&deployed).await,
        deployments_before,
        "no new deployment"
    );
    assert_runs(&env, r1);
    let listed = stdout(&wsctl(&["releases", "--env", &env]));
    let line = listed
        .lines()
        .find(|l| l.contains(&tag2))
        .unwrap_or_else(|| panic!("release two listed:\n{listed}"));
    assert!(
        line.contains("image no longer in the repository"),
        "{listed}"
    );
}
