//! Ctrl-C during a wait, end to end: `wsctl rollback` goes through a proxy that keeps the
//! rollout in progress, is interrupted while it waits, and must exit 130 having made its one
//! change (the service runs the chosen revision), saying what still runs and how to resume.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Deployed, services_env, unique_env, wsctl_command};

#[tokio::test]
async fn ctrl_c_during_a_rollback_wait_exits_130_with_the_service_updated() {
    let env = unique_env("ri");
    let deployed = Deployed::create(&env, "one").await;
    deployed.release("two").await;
    let moto = services_env()
        .get("AWS_ENDPOINT_URL")
        .cloned()
        .expect("the emulator's endpoint");
    let proxy = crate::support::proxy::holding_rollouts(&moto).await;

    let mut child = wsctl_command(&["rollback", "--env", &env, "--endpoint-url", &proxy])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsctl rollback");
    // Wait until the service was updated: from then on wsctl only watches.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rolled = deployed.image("one");
    while deployed.running_image().await != rolled {
        assert!(
            Instant::now() < deadline,
            "rollback never updated the service"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "wsctl ended before the wait"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the proxy holds the rollout"
    );

    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wsctl output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains(&format!("wsctl status --env {env} --wait")),
        "names the command that resumes watching: {err}"
    );
    assert!(
        err.contains("still rolling out in ECS"),
        "says what still runs: {err}"
    );
    assert_eq!(
        deployed.running_image().await,
        rolled,
        "the one change was made and stays"
    );
    // The rollback's deploy lock was released on the way out.
    let unlock = crate::support::wsctl(&["unlock", "--env", &env]);
    assert!(
        String::from_utf8_lossy(&unlock.stdout).contains("is not locked"),
        "{}",
        String::from_utf8_lossy(&unlock.stderr)
    );
}
