//! The built binary as a process: SIGTERM drains it. `/health` turns 503, new connections are
//! refused, a forward in flight completes and its reply is delivered, every client gets 1001,
//! and the process exits 0. SQS is the emulator behind a small proxy that holds each request,
//! so the forward is still in flight when the signal arrives.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;

const HOLD: Duration = Duration::from_millis(2000);

struct Proxy {
    upstream: String,
    seen: Notify,
}

/// Holds each request for [`HOLD`], then passes it to the emulator and relays the answer.
async fn delaying_proxy(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .expect("request body");
    p.seen.notify_one();
    tokio::time::sleep(HOLD).await;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream =
        reqwest::Client::new().request(parts.method, format!("{}{path}", p.upstream));
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            upstream = upstream.header(k, v);
        }
    }
    let answer = upstream.body(body).send().await.expect("emulator answers");
    let mut response = Response::builder().status(answer.status());
    for (k, v) in answer.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            response = response.header(k, v);
        }
    }
    response
        .body(Body::from(answer.bytes().await.expect("emulator body")))
        .expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_clients_with_1001_completes_forwards_and_exits_0() {
    let sdk = emulator_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("drain-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");

    let proxy = Arc::new(Proxy {
        upstream: emulator_endpoint(),
        seen: Notify::new(),
    });
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy_listener.local_addr().expect("addr");
    let router = axum::Router::new()
        .fallback(delaying_proxy)
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(proxy_listener, router).await });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ws-server"))
        .env("WEBSOCKET_HOST", "127.0.0.1")
        .env("WEBSOCKET_PORT", port.to_string())
        .env("SQS_QUEUE_URL_DEV", &queue)
        .env("AWS_ENDPOINT_URL", format!("http://{proxy_addr}"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("ENVIRONMENT", "test")
        .env("WS_AUTH", "none")
        .env("WS_DRAIN_SECONDS", "1")
        .env(
            "RUST_LOG",
            "debug,aws=info,aws_smithy_runtime=info,hyper=info,h2=info,rustls=info",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start ws-server");
    let stdout = child.stdout.take().expect("stdout");
    let lines = tokio::spawn(async move {
        let mut lines = Vec::new();
        let mut reader = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(l)) = reader.next_line().await {
            lines.push(l);
        }
        lines
    });

    let base = format!("127.0.0.1:{port}");
    let health = |base: String| async move {
        reqwest::get(format!("http://{base}/health"))
            .await
            .ok()
            .map(|r| r.status().as_u16())
    };
    let up = Instant::now();
    while health(base.clone()).await != Some(200) {
        assert!(up.elapsed() < WAIT, "ws-server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let connect = |path: &'static str| {
        let url = format!("ws://{base}{path}");
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            let welcome = recv(&mut ws).await;
            (ws, welcome)
        }
    };
    let (mut forwarding, welcome) = connect("/ws").await;
    let (mut follower, _) = connect("/ws?project_id=p1").await;
    let (mut idle, _) = connect("/ws").await;

    send(
        &mut forwarding,
        json!({"action": "forward", "type": "dev", "request_id": "in-flight", "data": {"job": 1}}),
    )
    .await;
    tokio::time::timeout(WAIT, proxy.seen.notified())
        .await
        .expect("forward reached SQS");

    let pid = child.id().expect("pid").to_string();
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());

    // While the forward is held, the server is draining.
    let mut saw_503 = false;
    while signalled.elapsed() < HOLD {
        if health(base.clone()).await == Some(503) {
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_503, "/health did not turn 503 during the drain");
    match tokio_tungstenite::connect_async(format!("ws://{base}/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("a new connection during the drain should get 503, got {other:?}"),
    }

    for ws in [&mut follower, &mut idle] {
        let (frames, close) = read_until_close(ws).await;
        assert_eq!(close.map(|c| c.0), Some(1001));
        assert_eq!(
            frames.last().map(|f| &f["type"]),
            Some(&json!("reconnect")),
            "{frames:?}"
        );
    }
    let (frames, close) = read_until_close(&mut forwarding).await;
    assert_eq!(close.map(|c| c.0), Some(1001));
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0]["type"], "forwarded", "{frames:?}");
    assert_eq!(frames[1]["type"], "reconnect", "{frames:?}");
    assert_eq!(frames[0]["request_id"], "in-flight");
    let message_id = frames[0]["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();

    let status = tokio::time::timeout(Duration::from_secs(25), child.wait())
        .await
        .expect("exited within the ECS stop timeout")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "drain took {:?}",
        signalled.elapsed()
    );

    // The forwarded message really is in the queue.
    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .expect("receive");
    assert_eq!(got.messages()[0].message_id(), Some(message_id.as_str()));

    // Every stdout line is one JSON object: logs with the connection id, and EMF metrics.
    let lines = lines.await.expect("stdout");
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(objects.iter().all(Value::is_object));
    let id = welcome["connection_id"].as_str().expect("id");
    assert!(
        objects
            .iter()
            .any(|o| o["connection_id"] == id && o["level"] == "DEBUG"),
        "no log line carries connection_id {id}"
    );
    assert!(
        objects.iter().any(|o| o["timestamp"].is_string()
            && o["fields"].is_null()
            && o["message"].is_string())
    );
    let emf = objects
        .iter()
        .find(|o| o.get("_aws").is_some())
        .expect("an EMF line");
    assert_eq!(emf["Environment"], "test");
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "AgenticAI/WebSocket"
    );
}
