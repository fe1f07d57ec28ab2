//! The real server image, built by `wsctl deploy` from the repo's Dockerfile (pre-build
//! `scripts/stage-image`, the same build and push code as every deploy), really runs: started
//! with Docker on the host network, `/health` answers 200 and a WebSocket client gets the
//! welcome and a pong.

use std::time::Duration;

use crate::support::*;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

/// Removes the container however the test ends.
struct Running {
    docker: Docker,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let id = self.id.clone();
        // A fresh runtime: the test's own may already be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(docker.remove_container(
                &id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            ))
            .ok()
        })
        .join();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn next_json<S>(ws: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection stays open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployed_server_image_runs_and_answers() {
    let config = sdk_config().await;
    let env = unique_env("img");
    let main_stack = format!("main-{env}");
    create_main_stack(&config, &main_stack, &env).await;
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    let root = workspace().canonicalize().expect("workspace");
    project.write(
        "wsctl.yaml",
        &format!(
            "build:\n  context: {}\n  dockerfile: Dockerfile\n  pre_build: scripts/stage-image\n\
             environments:\n  {env}:\n    main_stack: {main_stack}\n    timeout_seconds: 60\n",
            root.display()
        ),
    );
    let summary = deploy_json(&project, &env);
    assert_eq!(summary["rollout"]["verdict"], "completed", "{summary:#}");
    assert!(
        summary["compile_seconds"].is_number(),
        "the pre-build is timed: {summary:#}"
    );
    let image = summary["image"].as_str().expect("image").to_owned();

    let docker = Docker::connect_with_defaults().expect("docker");
    let inspected = docker
        .inspect_image(&image)
        .await
        .expect("the image is local");
    let user = inspected.config.and_then(|c| c.user).unwrap_or_default();
    assert!(
        !user.is_empty() && !user.starts_with("0") && user != "root",
        "runs as non-root: {user:?}"
    );

    let port = free_port();
    let created = docker
        .create_container(
            None,
            ContainerCreateBody {
                image: Some(image.clone()),
                env: Some(vec![
                    format!("WEBSOCKET_PORT={port}"),
                    "WEBSOCKET_HOST=127.0.0.1".into(),
                    "AWS_REGION=us-east-1".into(),
                    // The server refuses to start without a token key; this test is about the image.
                    "WS_AUTH=none".into(),
                ]),
                host_config: Some(HostConfig {
                    network_mode: Some("host".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .expect("create the container");
    let _running = Running {
        docker: docker.clone(),
        id: created.id.clone(),
    };
    docker
        .start_container(&created.id, None)
        .await
        .expect("start the container");

    let health = format!("http://127.0.0.1:{port}/health");
    let client = reqwest::Client::new();
    let mut status = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(&health).send().await {
            status = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(200), "GET {health}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("WebSocket upgrade");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws.send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .expect("send ping");
    let pong = next_json(&mut ws).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}
