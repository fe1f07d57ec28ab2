//! Shared test harness: the real server on a real socket (127.0.0.1, port 0) and real
//! WebSocket and HTTP clients.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fleet;
pub mod iam;
pub mod jwt;
pub mod template;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use server::AppState;
use server::config::Config;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const TOKEN: &str = "test-publish-token-0123456789";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Starts the drain, as SIGTERM would.
    pub fn signal(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The endpoint of the AWS emulator, or a failure that says how to start it.
pub fn emulator_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: this test needs the AWS emulator. Run `scripts/services up` \
             and `eval \"$(scripts/services env)\"`, then run the tests again."
        )
    })
}

/// An SDK configuration for the emulator.
pub async fn emulator_sdk() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    sdk_for(&endpoint).await
}

/// An SDK configuration with fixed test credentials that sends every call to `endpoint`.
pub async fn sdk_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

pub fn config(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).expect("test configuration is valid")
}

/// The server with `vars` as its environment; SQS calls go to a closed port unless a test
/// passes its own SDK configuration to [`start_with`].
pub async fn start(vars: &[(&str, &str)]) -> TestServer {
    start_with(vars, &sdk_for("http://127.0.0.1:9").await).await
}

pub async fn start_with(vars: &[(&str, &str)], sdk: &aws_config::SdkConfig) -> TestServer {
    let mut all = vec![("WEBSOCKET_HOST", "127.0.0.1"), ("PUBLISH_TOKEN", TOKEN)];
    // Tests about something else run without authentication; the auth tests set a key.
    if !vars
        .iter()
        .any(|(k, _)| k.starts_with("WS_JWT_") || k.starts_with("WS_AUTH"))
    {
        all.push(("WS_AUTH", "none"));
    }
    all.extend_from_slice(vars);
    let state = AppState::new(config(&all), sdk);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        state,
        stop: Some(tx),
        task,
    }
}

/// Connects and returns the client with the welcome frame it got.
pub async fn connect(server: &TestServer, path: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(path))
        .await
        .unwrap();
    let welcome = recv(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
    (ws, welcome)
}

/// Connects with extra request headers: the client and its welcome, or the HTTP refusal's
/// status and JSON body.
pub async fn connect_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Value), (u16, Value)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.ws_url(path).into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let welcome = recv(&mut ws).await;
            assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
            Ok((ws, welcome))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// Connects with `Authorization: Bearer <token>`.
pub async fn connect_bearer(server: &TestServer, path: &str, token: &str) -> (Ws, Value) {
    let auth = format!("Bearer {token}");
    connect_with(server, path, &[("authorization", &auth)])
        .await
        .unwrap_or_else(|(s, b)| panic!("refused with {s}: {b}"))
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame as JSON, failing after [`WAIT`].
pub async fn recv(ws: &mut Ws) -> Value {
    let next = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str::<Value>(&t).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await;
    next.expect("no frame within 10 s")
}

/// Reads the `subscribed` frame that follows a `?project_id=` subscription (after the welcome,
/// or after `authenticated`): the project's position, without `request_id`.
pub async fn expect_position(ws: &mut Ws, project: &str) -> Value {
    let sub = recv(ws).await;
    assert_eq!(
        (&sub["type"], &sub["project_id"]),
        (&json!("subscribed"), &json!(project)),
        "the position after the subscription: {sub}"
    );
    assert!(
        sub["offset"].is_u64() && sub.get("request_id").is_none(),
        "{sub}"
    );
    sub
}

/// Sends a request and returns the reply.
pub async fn request(ws: &mut Ws, v: Value) -> Value {
    send(ws, v).await;
    recv(ws).await
}

/// Asserts that nothing arrives for a short while (used after fan-out to non-subscribers).
pub async fn assert_silent(ws: &mut Ws) {
    let got = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(got.is_err(), "expected no frame, got {got:?}");
}

/// Checks the connection still works: a ping gets its pong.
pub async fn assert_usable(ws: &mut Ws) {
    let r = request(ws, json!({"action": "ping", "request_id": "alive"})).await;
    assert_eq!(r["type"], "pong", "{r}");
    assert_eq!(r["request_id"], "alive");
}

pub async fn publish(server: &TestServer, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(server.url("/publish"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn health(server: &TestServer) -> (u16, Value) {
    let r = reqwest::get(server.url("/health")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Waits until `/health` reports `n` open connections.
pub async fn wait_connections(server: &TestServer, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, h) = health(server).await;
        if h["connections"] == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections stayed at {}",
            h["connections"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the server closes: the text frames received, and the close code and reason
/// (`None` when the connection ended without a close frame).
pub async fn read_until_close(ws: &mut Ws) -> (Vec<Value>, Option<(u16, String)>) {
    let mut frames = Vec::new();
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => {
                    return f.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("connection ended within 30 s");
    (frames, close)
}

/// The built `ws-server` binary as its own process (for what must be measured on it alone,
/// such as its memory), listening on a free loopback port.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    pub async fn spawn(vars: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ws-server"));
        cmd.env("WEBSOCKET_HOST", "127.0.0.1")
            .env("WEBSOCKET_PORT", port.to_string())
            .env("PUBLISH_TOKEN", TOKEN)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start ws-server");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = tokio::time::Instant::now() + WAIT;
        while reqwest::get(format!("http://{addr}/health")).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "ws-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, addr }
    }

    /// The process's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    pub async fn health(&self) -> Value {
        reqwest::get(format!("http://{}/health", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn publish(&self, body: &Value) -> u16 {
        reqwest::Client::new()
            .post(format!("http://{}/publish", self.addr))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}
