//! Real processes for the broker tests: `redis-server` (single and 3-node cluster mode),
//! `ws-server` tasks, HAProxy in front (round robin with `/health` checks, as the ALB does), a
//! TCP proxy that can cut a task off its broker, and WebSocket clients that reconnect and
//! resubscribe with `since` the way `docs/protocol.md` tells clients to.
//!
//! Every process listens on a free loopback port, keeps its state in a temporary directory, and
//! is killed when its handle is dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use super::{TOKEN, Ws};

/// A project id no other test (or earlier run against a shared Redis) used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

// ---- redis --------------------------------------------------------------------------------

pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    cluster: bool,
    persistent: bool,
}

impl Redis {
    /// The instance `scripts/services` started (`WS_TEST_REDIS_URL`), else a new one. For
    /// tests that neither restart, freeze nor flush it, and use projects of their own
    /// ([`unique`]).
    pub async fn shared() -> Self {
        let port = std::env::var("WS_TEST_REDIS_URL").ok().and_then(|u| {
            u.rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
        });
        match port {
            Some(port) => Redis {
                port,
                dir: tempfile::tempdir().unwrap(),
                child: None,
                cluster: false,
                persistent: false,
            },
            None => Self::start().await,
        }
    }

    /// A standalone instance without persistence.
    pub async fn start() -> Self {
        Self::spawn(free_port(), tempfile::tempdir().unwrap(), false, false).await
    }

    /// A standalone instance that keeps its data across a restart (append-only file).
    pub async fn start_persistent() -> Self {
        Self::spawn(free_port(), tempfile::tempdir().unwrap(), false, true).await
    }

    async fn spawn(port: u16, dir: tempfile::TempDir, cluster: bool, persistent: bool) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", if persistent { "yes" } else { "no" }])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        if persistent {
            cmd.args(["--appendfsync", "always"]);
        }
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(dir.path().join(format!("nodes-{port}.conf")));
        }
        let child = cmd
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let r = Redis {
            port,
            dir,
            child: Some(child),
            cluster,
            persistent,
        };
        wait_until("redis-server answers", 10, || async {
            r.cli(&["PING"]).await.as_deref() == Some("PONG")
        })
        .await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A standalone instance that speaks only TLS, with a certificate for 127.0.0.1 from a
    /// private CA; returns it and the CA's certificate file (for `SSL_CERT_FILE`).
    pub async fn start_tls() -> (Self, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sh = format!(
            "cd {} && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA' \
             -keyout ca.key -out ca.crt && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
             -keyout server.key -out server.csr && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && \
             openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile ext -out server.crt",
            d.display()
        );
        let ok = Command::new("sh")
            .arg("-c")
            .arg(&sh)
            .output()
            .await
            .unwrap();
        assert!(ok.status.success(), "openssl: {ok:?}");
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(d.join("server.crt"))
            .arg("--tls-key-file")
            .arg(d.join("server.key"))
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server");
        let ca = d.join("ca.crt");
        let r = Redis {
            port,
            dir,
            child: Some(child),
            cluster: false,
            persistent: false,
        };
        let cafile = ca.display().to_string();
        wait_until("redis-server answers over TLS", 10, || async {
            Command::new("redis-cli")
                .args([
                    "--tls",
                    "--cacert",
                    &cafile,
                    "-p",
                    &port.to_string(),
                    "PING",
                ])
                .output()
                .await
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        })
        .await;
        (r, ca)
    }

    /// `redis-cli` against this instance (`-c`: follows cluster redirects); `None` on failure.
    pub async fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-c"])
            .args(args)
            .output()
            .await
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.id()).unwrap()
    }

    /// Makes the broker unreachable without closing its connections (SIGSTOP), and back.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// Starts the same instance again on the same port (and data directory).
    pub async fn restart(&mut self) {
        self.stop().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let again = Self::spawn(self.port, dir, self.cluster, self.persistent).await;
        *self = again;
    }
}

/// Three cluster-mode nodes with the slots spread over them.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Redis::spawn(free_port(), tempfile::tempdir().unwrap(), true, false).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "cluster create: {out:?}");
        let c = RedisCluster { nodes };
        wait_until("the cluster is ok", 20, || async {
            let mut ok = true;
            for n in &c.nodes {
                ok &= n
                    .cli(&["CLUSTER", "INFO"])
                    .await
                    .is_some_and(|i| i.contains("cluster_state:ok"));
            }
            ok
        })
        .await;
        c
    }

    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node that serves `key`'s slot.
    pub async fn port_of(&self, key: &str) -> u16 {
        let slot: u16 = self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .await
            .unwrap()
            .parse()
            .unwrap();
        let slots = self.nodes[0].cli(&["CLUSTER", "SLOTS"]).await.unwrap();
        // lines: start, end, ip, port, id, ... repeated
        let lines: Vec<&str> = slots.lines().collect();
        let mut i = 0;
        while i + 3 < lines.len() {
            if let (Ok(a), Ok(b)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>())
                && lines[i + 2] == "127.0.0.1"
            {
                if (a..=b).contains(&slot) {
                    return lines[i + 3].parse().unwrap();
                }
                i += 4;
                continue;
            }
            i += 1;
        }
        panic!("no node for slot {slot}: {slots}");
    }
}

// ---- ws-server tasks ----------------------------------------------------------------------

pub struct Task {
    pub port: u16,
    child: Option<Child>,
}

impl Task {
    /// A `ws-server` process on `port` with the broker at `redis_url` and `env` on top.
    pub async fn start_on(port: u16, redis_url: Option<&str>, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ws-server"));
        cmd.env_clear()
            .env("WEBSOCKET_HOST", "127.0.0.1")
            .env("WEBSOCKET_PORT", port.to_string())
            .env("PUBLISH_TOKEN", TOKEN)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("WS_DRAIN_SECONDS", "2")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(u) = redis_url {
            cmd.env("WS_REDIS_URL", u);
        }
        // As in `common::start`: tests about something else run without authentication.
        if !env
            .iter()
            .any(|(k, _)| k.starts_with("WS_JWT_") || k.starts_with("WS_AUTH"))
        {
            cmd.env("WS_AUTH", "none");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let t = Task {
            port,
            child: Some(cmd.spawn().expect("start ws-server")),
        };
        wait_until("ws-server is healthy", 15, || async {
            t.health().await.is_some_and(|(s, _)| s == 200)
        })
        .await;
        t
    }

    pub async fn start(redis_url: Option<&str>, env: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), redis_url, env).await
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn health(&self) -> Option<(u16, Value)> {
        health_at(&self.addr()).await
    }

    /// Waits until the task's broker link is up.
    pub async fn broker_up(&self) {
        wait_until("the broker link is up", 15, || async {
            self.health()
                .await
                .is_some_and(|(_, h)| h["broker"]["state"] == "up")
        })
        .await;
    }

    pub fn sigterm(&self) {
        signal(self.child.as_ref().and_then(|c| c.id()).unwrap(), "TERM");
    }

    /// Waits for the process to exit and returns whether it exited 0.
    pub async fn wait(&mut self, secs: u64) -> bool {
        let mut c = self.child.take().unwrap();
        tokio::time::timeout(Duration::from_secs(secs), c.wait())
            .await
            .expect("task exited in time")
            .unwrap()
            .success()
    }
}

pub async fn health_at(addr: &str) -> Option<(u16, Value)> {
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let s = r.status().as_u16();
    Some((s, r.json().await.ok()?))
}

/// `POST /publish` to `addr`: status and body.
pub async fn publish_at(addr: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/publish"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(5))
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    match req.send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Publishes `{"n": n}` to `project` until it is accepted, retrying (same Idempotency-Key)
/// on 503s and errors as a backend should; returns the accepted offset and how many tries.
pub async fn publish_until_accepted(addr: &str, project: &str, n: u64) -> (u64, u32) {
    let key = format!("{project}-{n}-{}", uuid::Uuid::new_v4().simple());
    let mut tries = 0;
    loop {
        tries += 1;
        let (s, b) = publish_at(
            addr,
            json!({"project_id": project, "data": {"n": n}}),
            Some(&key),
        )
        .await;
        if s == 202 {
            return (b["offset"].as_u64().unwrap(), tries);
        }
        assert!(
            s == 503 || s == 0,
            "publish answered {s} {b} (only 503 is expected while the broker is down)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- HAProxy ------------------------------------------------------------------------------

pub struct Haproxy {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Haproxy {
    /// Round robin over `backends` (ports; a port nobody listens on yet is a task to come),
    /// health-checked on `/health` every 200 ms like an ALB target group (faster).
    pub async fn start(backends: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server t{i} 127.0.0.1:{p} check\n"))
            .collect();
        let cfg = format!(
            "global\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  \
             timeout server 60s\n  timeout tunnel 3600s\nfrontend fe\n  bind 127.0.0.1:{port}\n  \
             default_backend be\nbackend be\n  balance roundrobin\n  option httpchk GET /health\n  \
             default-server inter 200ms fall 1 rise 1\n{servers}"
        );
        let path: PathBuf = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy (apt-get install haproxy)");
        let h = Haproxy {
            port,
            _dir: dir,
            _child: child,
        };
        wait_until("haproxy routes /health", 10, || async {
            health_at(&h.addr()).await.is_some_and(|(s, _)| s == 200)
        })
        .await;
        h
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

// ---- a TCP proxy that can cut a task off its broker -------------------------------------------

pub struct Cut {
    pub port: u16,
    open: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Cut {
    /// Forwards 127.0.0.1:`port` to `upstream` until [`Cut::sever`].
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let (o, g) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let mut severed = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = severed.changed() => {}
                    }
                });
            }
        });
        Cut {
            port,
            open,
            generation,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn sever(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

// ---- clients ------------------------------------------------------------------------------

/// What one client saw of one project.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Offsets of the updates received, in arrival order.
    pub offsets: Vec<u64>,
    pub epoch: Option<String>,
    /// `subscribed` replies (and unsolicited ones) with their `recovered`.
    pub recovered: Vec<Option<bool>>,
    pub reconnects: u32,
    /// Times the server told the client to reload (recovered:false).
    pub reloads: u32,
    /// The client's position: the last update's offset, or the last `subscribed` offset.
    pub position: Option<u64>,
}

impl Seen {
    pub fn last(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }
}

pub async fn ws_connect(addr: &str, path: &str) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .map_err(|e| e.to_string())?;
    let w = next_json(&mut ws).await.ok_or("no welcome")?;
    if w["type"] != "welcome" {
        return Err(format!("first frame {w}"));
    }
    Ok(ws)
}

/// [`ws_connect`] authenticated by `Authorization: Bearer <token>`; returns the welcome too.
pub async fn ws_connect_bearer(addr: &str, path: &str, token: &str) -> Result<(Ws, Value), String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .map_err(|_| "token is not a header value")?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| e.to_string())?;
    let w = next_json(&mut ws).await.ok_or("no welcome")?;
    if w["type"] != "welcome" {
        return Err(format!("first frame {w}"));
    }
    Ok((ws, w))
}

/// The next text frame as JSON; `None` when the connection ended (or 10 s of silence).
pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                return None;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A client that follows `project` through `addr` (the balancer) for as long as `run` is set
/// and until it has seen `until` (when set), reconnecting as `docs/protocol.md` says: after a
/// close, a random delay within the `reconnect` frame's `jitter_ms` (or backoff after a refused
/// connect), then subscribe with `since`.
pub struct Follower {
    pub seen: Arc<Mutex<Seen>>,
    handle: tokio::task::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Follower {
    pub async fn start(addr: String, project: String) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut attempt = 0u32;
            while !st.load(Ordering::SeqCst) {
                let mut ws = match ws_connect(&addr, "/ws").await {
                    Ok(ws) => ws,
                    Err(_) => {
                        attempt += 1;
                        let cap = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
                        tokio::time::sleep(Duration::from_millis(rand_below(cap))).await;
                        continue;
                    }
                };
                attempt = 0;
                let since = {
                    let g = s.lock().unwrap();
                    g.epoch
                        .as_ref()
                        .map(|e| json!({"offset": g.last_position(), "epoch": e}))
                };
                let mut req =
                    json!({"action": "subscribe", "project_id": project, "request_id": "s"});
                if let Some(since) = since {
                    req["since"] = since;
                }
                if ws.send(Message::text(req.to_string())).await.is_err() {
                    continue;
                }
                let mut jitter = 2000;
                loop {
                    tokio::select! {
                        f = next_json(&mut ws) => {
                            let Some(f) = f else { break };
                            let mut g = s.lock().unwrap();
                            match f["type"].as_str() {
                                Some("subscribed") => {
                                    let rec = f["recovered"].as_bool();
                                    g.recovered.push(rec);
                                    if rec == Some(false) {
                                        g.reloads += 1;
                                    }
                                    g.epoch = f["epoch"].as_str().map(str::to_owned);
                                    g.position = f["offset"].as_u64();
                                    if let Some(r) = ready.take() {
                                        let _ = r.send(());
                                    }
                                }
                                Some("update") => {
                                    let o = f["offset"].as_u64().unwrap();
                                    g.offsets.push(o);
                                    g.position = Some(o);
                                }
                                Some("reconnect") => jitter = f["jitter_ms"].as_u64().unwrap_or(2000),
                                _ => {}
                            }
                        }
                        () = wait_flag(&st) => break,
                    }
                }
                if st.load(Ordering::SeqCst) {
                    break;
                }
                s.lock().unwrap().reconnects += 1;
                tokio::time::sleep(Duration::from_millis(rand_below(jitter))).await;
            }
        });
        tokio::time::timeout(Duration::from_secs(15), ready_rx)
            .await
            .expect("follower subscribed in time")
            .unwrap();
        Follower { seen, handle, stop }
    }

    pub fn snapshot(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until the follower has seen `offset` (or 20 s pass), then stops it.
    pub async fn finish(self, offset: u64) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen.lock().unwrap().position.unwrap_or(0) < offset && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(12), self.handle).await;
        self.seen.lock().unwrap().clone()
    }
}

impl Seen {
    fn last_position(&self) -> u64 {
        self.position.unwrap_or(0)
    }
}

async fn wait_flag(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn rand_below(n: u64) -> u64 {
    // uuid v4 is random enough for test jitter and saves a dependency
    (uuid::Uuid::new_v4().as_u128() as u64) % n.max(1)
}

/// Asserts that `seen` got exactly `1..=top` once each, in order.
pub fn assert_exactly_once(who: &str, seen: &Seen, top: u64) {
    let expected: Vec<u64> = (1..=top).collect();
    if seen.offsets != expected {
        let mut count: HashMap<u64, u32> = HashMap::new();
        for o in &seen.offsets {
            *count.entry(*o).or_default() += 1;
        }
        let missing: Vec<u64> = expected
            .iter()
            .filter(|o| !count.contains_key(o))
            .copied()
            .collect();
        let dups: Vec<u64> = count
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|(o, _)| *o)
            .collect();
        panic!(
            "{who}: {} updates, missing {missing:?}, duplicated {dups:?}, reloads {}, first out of order at {:?}",
            seen.offsets.len(),
            seen.reloads,
            seen.offsets.windows(2).position(|w| w[1] != w[0] + 1)
        );
    }
}
