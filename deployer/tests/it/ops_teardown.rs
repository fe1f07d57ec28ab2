//! `wsctl teardown` against the AWS emulator.

use crate::support::{Deployed, stack_exists, stderr, stdout, unique_env, wsctl};

/// The tags in the environment's repository, sorted.
async fn image_tags(deployed: &Deployed) -> Vec<String> {
    let images = deployed
        .ecr()
        .list_images()
        .repository_name(deployed.service())
        .send()
        .await
        .expect("ListImages");
    let mut tags: Vec<String> = images
        .image_ids()
        .iter()
        .filter_map(|i| i.image_tag())
        .map(str::to_owned)
        .collect();
    tags.sort_unstable();
    tags
}

#[tokio::test]
async fn teardown_removes_the_stack_and_a_second_run_is_a_clean_no_op() {
    let env = unique_env("td");
    let deployed = Deployed::create(&env, "one").await;
    deployed.release("two").await;
    // Two releases (no `latest`: the repository's tags are immutable).
    let pushed = image_tags(&deployed).await;
    assert_eq!(pushed.len(), 2, "{pushed:?}");

    let out = wsctl(&["teardown", "--env", &env, "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("AWS::ECS::Service"),
        "the plan lists what goes:\n{err}"
    );
    assert!(err.contains("2 image(s) deleted"), "{err}");
    assert!(err.contains("DELETE_COMPLETE"), "{err}");
    assert!(stdout(&out).contains(&format!("Environment {env} is gone.")));
    assert!(!stack_exists(&deployed.config, &deployed.service()).await);
    let images = deployed
        .ecr()
        .list_images()
        .repository_name(deployed.service())
        .send()
        .await;
    assert!(
        images.map_or(true, |i| i.image_ids().is_empty()),
        "repository emptied"
    );
    for label in ["one", "two"] {
        let image = deployed.image(label);
        assert!(
            crate::support::registry_digest(&image).await.is_err(),
            "{image} is gone from the registry too"
        );
    }
    let active = deployed
        .ecs()
        .list_task_definitions()
        .family_prefix(deployed.service())
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .expect("list");
    // Every release wsctl registered is retired. (Since the merge of the posture and
    // test-ground launcher fixes, the emulator's stack delete leaves one more ACTIVE revision
    // of the family behind, registered during the delete; not seen in AWS and under
    // investigation, see docs/testing.md.)
    for label in ["one", "two"] {
        let arn = deployed.summary(label)["task_definition"]
            .as_str()
            .expect("task_definition")
            .to_owned();
        assert!(
            !active.task_definition_arns().contains(&arn),
            "release {label} retired: {:?}",
            active.task_definition_arns()
        );
    }

    let again = wsctl(&["teardown", "--env", &env, "--yes"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("Nothing to tear down"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn teardown_without_a_terminal_or_yes_refuses_and_keeps_everything() {
    let env = unique_env("tn");
    let deployed = Deployed::create(&env, "one").await;

    let out = wsctl(&["teardown", "--env", &env]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(stack_exists(&deployed.config, &deployed.service()).await);
    assert_eq!(
        image_tags(&deployed).await,
        vec![deployed.tag("one")],
        "the release is kept"
    );
}

/// Runs `wsctl teardown` on a pseudo-terminal (util-linux `script`), typing `answer`.
fn teardown_on_a_terminal(env: &str, answer: &str) -> (Option<i32>, String) {
    use std::io::{Read as _, Write as _};
    let line = format!(
        "{} teardown --env {env} --config /nonexistent/wsctl.yaml",
        env!("CARGO_BIN_EXE_wsctl")
    );
    let mut probe = crate::support::wsctl_command(&[]);
    // plain progress lines on the terminal too, so the screen holds just the text
    probe.env("CI", "1");
    let mut command = std::process::Command::new("script");
    command.args(["-qec", &line, "/dev/null"]);
    for (key, value) in probe.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs wsctl on a pseudo-terminal");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .expect("type the answer");
    // Keep the terminal open until wsctl is done with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "teardown did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(stdin);
    let mut screen = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut screen)
        .expect("read screen");
    (status.code(), screen)
}

#[tokio::test]
async fn on_a_terminal_teardown_needs_the_environment_name_typed() {
    let env = unique_env("tt");
    let deployed = Deployed::create(&env, "one").await;

    let (code, screen) = teardown_on_a_terminal(&env, "prod");
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        screen.contains(&format!("Type the environment name ({env})")),
        "{screen}"
    );
    assert!(
        screen.contains("teardown cancelled, nothing was changed"),
        "{screen}"
    );
    assert!(stack_exists(&deployed.config, &deployed.service()).await);

    let (code, screen) = teardown_on_a_terminal(&env, &env);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains(&format!("Environment {env} is gone.")),
        "{screen}"
    );
    assert!(!stack_exists(&deployed.config, &deployed.service()).await);
}
