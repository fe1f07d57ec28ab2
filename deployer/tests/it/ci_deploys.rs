//! Deploys as CI runs them, against the emulator with real `wsctl` processes: the deploy lock
//! (two deploys at once take turns; a killed holder's lock expires or is unlocked), the smoke
//! test against the real `ws-server` started locally (it passes; an endpoint that does not
//! answer makes the deploy roll back and exit 3), and `--output ndjson`.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::deployed::git;
use crate::support::{self, Deployed, Project, TINY_DOCKERFILE, stderr, stdout, unique_env, wsctl};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// Every line of `out` as JSON; fails naming the line that is not.
fn ndjson(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object a line ({e}): {line:?}"))
        })
        .collect()
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

/// Another checkout deploying to `d`'s environment, at a commit of its own (`label`).
fn checkout(d: &Deployed, label: &str) -> Project {
    let project = Project::new(&d.env, &format!("main-{}", d.env), TINY_DOCKERFILE);
    git(&project, &["init", "--quiet"]);
    commit(&project, label);
    project
}

fn commit(project: &Project, label: &str) {
    project.write("payload.txt", &format!("{label}\n"));
    git(project, &["add", "--all"]);
    git(project, &["commit", "--quiet", "--message", label]);
}

fn spawn(project: &Project, env: &str, args: &[&str], extra: &[(&str, &str)]) -> Child {
    support::deploy_command(project, env, args, extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsctl deploy")
}

/// Waits until `env`'s lock item exists; returns its holder's pid.
async fn wait_for_lock(d: &Deployed) -> u32 {
    let dynamodb = aws_sdk_dynamodb::Client::new(&d.config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let item = dynamodb
            .get_item()
            .table_name("wsctl-locks")
            .key(
                "lock_id",
                AttributeValue::S(format!("agenticai-websocket-{}", d.env)),
            )
            .consistent_read(true)
            .send()
            .await;
        if let Some(pid) = item
            .ok()
            .and_then(|out| out.item().cloned())
            .and_then(|item| item.get("pid")?.as_n().ok()?.parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no lock of {} within 60s", d.env);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[tokio::test]
async fn two_deploys_at_once_take_turns_and_stream_ndjson() {
    let env = unique_env("lk");
    let d = Deployed::create(&env, "one").await;
    let first = checkout(&d, "two");
    let second = checkout(&d, "three");

    let a = spawn(&first, &env, &["--yes", "--output", "ndjson"], &[]);
    let a_pid = a.id();
    assert_eq!(
        wait_for_lock(&d).await,
        a_pid,
        "the first deploy holds the lock"
    );
    let b = spawn(
        &second,
        &env,
        &["--yes", "--output", "ndjson", "--lock-wait", "2m"],
        &[],
    );
    let (a, b) = (
        a.wait_with_output().expect("first"),
        b.wait_with_output().expect("second"),
    );
    assert!(a.status.success(), "first: {}", stderr(&a));
    assert!(b.status.success(), "second: {}", stderr(&b));
    let (a_lines, b_lines) = (ndjson(&a.stdout), ndjson(&b.stdout));

    // The second one waited, naming the first as the holder, and shows it on stderr too.
    let waits = events(&b_lines, "lock_wait");
    assert_eq!(waits.len(), 1, "{b_lines:#?}");
    assert_eq!(waits[0]["holder"]["pid"], a_pid);
    assert_eq!(waits[0]["holder"]["operation"], "deploy");
    assert!(
        stderr(&b).contains(&format!("(pid {a_pid})")),
        "{}",
        stderr(&b)
    );
    // No interleaving: the second took the lock after the first released it, and changed
    // nothing before (its first stack step starts after the first deploy's last event).
    let time = |line: &Value| line["time"].as_str().expect("time").to_owned();
    let released = time(events(&a_lines, "lock_released")[0]);
    let acquired = time(events(&b_lines, "lock_acquired")[0]);
    assert!(
        released <= acquired,
        "released {released}, acquired {acquired}"
    );
    let a_last = a_lines
        .iter()
        .filter(|l| l["event"].is_string())
        .map(time)
        .max();
    let b_stack = events(&b_lines, "step")
        .into_iter()
        .find(|l| l["step"].as_str().is_some_and(|s| s.starts_with("stack ")))
        .map(time)
        .expect("a stack step");
    assert!(
        a_last.as_ref().is_some_and(|t| *t <= b_stack),
        "{a_last:?} vs {b_stack}"
    );

    // The ndjson stream: step events (started and done) for each phase, AWS events, and the
    // result document as the last line.
    for lines in [&a_lines, &b_lines] {
        let steps = events(lines, "step");
        for phase in [
            "lock ",
            "preflight",
            "stack ",
            "push image",
            "release",
            "rollout ",
        ] {
            for state in ["started", "done"] {
                assert!(
                    steps.iter().any(|s| s["state"] == state
                        && s["step"].as_str().is_some_and(|n| n.starts_with(phase))),
                    "no {state} event of step {phase}: {lines:#?}"
                );
            }
        }
        assert!(!events(lines, "deployment_state").is_empty(), "{lines:#?}");
        let result = lines.last().expect("lines");
        assert!(result.get("event").is_none(), "{result:#}");
        assert_eq!(result["environment"], env.as_str());
        assert_eq!(result["rollout"]["verdict"], "completed", "{result:#}");
        assert_eq!(result["smoke"]["status"], "skipped", "{result:#}");
    }

    // The ledger: both releases, in the order they ran, after the first one.
    let out = wsctl(&["releases", "--env", &env, "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let releases: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let commits: Vec<&str> = releases["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["git_commit"].as_str())
        .collect();
    let commit = |result: &Value| result["git_commit"].as_str().expect("commit").to_owned();
    assert_eq!(
        commits,
        [
            commit(b_lines.last().expect("result")),
            commit(a_lines.last().expect("result")),
            commit(&d.summary("one")),
        ],
        "newest first: {releases:#}"
    );
}

#[tokio::test]
async fn a_killed_holders_lock_expires_or_is_unlocked() {
    let env = unique_env("lk");
    let d = Deployed::create(&env, "one").await;
    let project = checkout(&d, "two");

    // A holder killed outright cannot release its lock (lease: 4 s).
    let mut holder = spawn(
        &project,
        &env,
        &["--yes"],
        &[("WSCTL_LOCK_LEASE_SECONDS", "4")],
    );
    let pid = wait_for_lock(&d).await;
    holder.kill().expect("kill");
    let _ = holder.wait();

    // Held: a deploy that does not wait fails at once with 6, naming the holder.
    let out = support::deploy(&project, &env, &["--yes"], &[]);
    assert_eq!(code(&out), Some(6), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains(&format!("(pid {pid})")), "{text}");
    assert!(
        text.contains(&format!("wsctl unlock --env {env}")),
        "{text}"
    );

    // Expired: a deploy that waits takes it over once the lease ran out.
    let out = support::deploy(&project, &env, &["--yes", "--lock-wait", "1m"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("took over an expired lock"),
        "{}",
        stderr(&out)
    );

    // Unlocked: a killed holder with a long lease; `wsctl unlock` shows it and removes it.
    commit(&project, "three");
    let mut holder = spawn(&project, &env, &["--yes"], &[]);
    let pid = wait_for_lock(&d).await;
    holder.kill().expect("kill");
    let _ = holder.wait();
    let out = wsctl(&["unlock", "--env", &env]);
    assert_eq!(
        code(&out),
        Some(2),
        "no terminal, no --yes: {}",
        stderr(&out)
    );
    assert_eq!(wait_for_lock(&d).await, pid, "still locked");
    let out = wsctl(&["unlock", "--env", &env, "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("(pid {pid})")),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Removed the deploy lock"),
        "{}",
        stdout(&out)
    );
    let out = support::deploy(&project, &env, &["--yes"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = wsctl(&["unlock", "--env", &env, "--yes"]);
    assert!(
        stdout(&out).contains("is not locked"),
        "released after the deploy: {}",
        stdout(&out)
    );
}

/// The release the service runs, started locally: the real `ws-server` with its task
/// definition's environment and secrets (as `scripts/run-deployed` does), on 127.0.0.1.
/// Local differences: no broker (the emulator's ElastiCache address leads nowhere), and a
/// publish token of the test's own.
struct LocalServer {
    child: Child,
    url: String,
}

const PUBLISH_TOKEN: &str = "smoke-test-publish-token-0123456789";

impl LocalServer {
    async fn start(d: &Deployed) -> Self {
        let td = d
            .described_service()
            .await
            .task_definition()
            .expect("task definition")
            .to_owned();
        let td = d
            .ecs()
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .expect("DescribeTaskDefinition");
        let container = td.task_definition().expect("td").container_definitions()[0].clone();
        let secrets = aws_sdk_secretsmanager::Client::new(&d.config);
        let mut command = Command::new(server_binary());
        for kv in container.environment() {
            command.env(
                kv.name().unwrap_or_default(),
                kv.value().unwrap_or_default(),
            );
        }
        for secret in container.secrets() {
            let value = secrets
                .get_secret_value()
                .secret_id(secret.value_from())
                .send()
                .await
                .expect("the task's secret");
            command.env(secret.name(), value.secret_string().unwrap_or_default());
        }
        let port = free_port();
        command
            .envs(support::services_env())
            .env_remove("WS_REDIS_URL")
            .env("WEBSOCKET_HOST", "127.0.0.1")
            .env("WEBSOCKET_PORT", port.to_string())
            .env("PUBLISH_TOKEN", PUBLISH_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("start ws-server");
        let server = Self {
            child,
            url: format!("ws://127.0.0.1:{port}/ws"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health = reqwest::get(format!("http://127.0.0.1:{port}/health")).await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "ws-server did not answer /health in 20s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> std::path::PathBuf {
    let path = std::env::var_os("WS_SERVER_BIN").map_or_else(
        || support::workspace().join("target/x86_64-unknown-linux-gnu/debug/ws-server"),
        Into::into,
    );
    assert!(
        path.exists(),
        "no ws-server at {}: build it (cargo build -p server) or set WS_SERVER_BIN",
        path.display()
    );
    path
}

/// A port nothing listens on.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn checks(smoke: &Value) -> Vec<(String, String)> {
    smoke["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn the_smoke_test_passes_against_the_real_server_and_a_failure_rolls_back() {
    let env = unique_env("sm");
    let d = Deployed::create(&env, "one").await;
    // Against the emulator without --endpoint: skipped at once, saying why.
    let first = d.summary("one");
    assert_eq!(first["smoke"]["status"], "skipped", "{first:#}");
    assert!(
        first["smoke"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("emulator") && r.contains("--endpoint")),
        "{first:#}"
    );
    let server = LocalServer::start(&d).await;
    let publish = [("WSCTL_PUBLISH_TOKEN", PUBLISH_TOKEN)];

    // Alone: every check passes against the real server, the update included.
    let out = support::wsctl_command(&[
        "smoke",
        "--env",
        &env,
        "--endpoint",
        &server.url,
        "--output",
        "json",
    ])
    .envs(publish)
    .output()
    .expect("wsctl smoke");
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        checks(&result["smoke"]),
        pairs(&[
            ("connect", "passed"),
            ("welcome", "passed"),
            ("ping", "passed"),
            ("publish", "passed"),
            ("receive", "passed"),
        ]),
        "{result:#}"
    );
    // Without the agents' token, publishing is skipped with the reason, not passed.
    let out = wsctl(&[
        "smoke",
        "--env",
        &env,
        "--endpoint",
        &server.url,
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        checks(&result["smoke"])[3],
        ("publish".to_owned(), "skipped".to_owned())
    );
    // An endpoint that answers, but not as the server does (the emulator's HTTP port).
    let emulator = support::services_env()["AWS_ENDPOINT_URL"].clone();
    let out = wsctl(&["smoke", "--env", &env, "--endpoint", &emulator]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed at connect"),
        "{}",
        stderr(&out)
    );

    // A deploy whose smoke test passes.
    let project = d.project();
    commit(project, "two");
    let out = support::deploy(
        project,
        &env,
        &["--yes", "--output", "json", "--endpoint", &server.url],
        &publish,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let two: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(two["smoke"]["report"]["passed"], true, "{two:#}");
    assert!(two["smoke_rollback"].is_null(), "{two:#}");

    // A deploy whose endpoint does not answer: exit 3, back on release two.
    commit(project, "three");
    let dead = format!("ws://127.0.0.1:{}/ws", free_port());
    let out = support::deploy(
        project,
        &env,
        &["--yes", "--output", "json", "--endpoint", &dead],
        &publish,
    );
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the smoke test failed at connect"),
        "{}",
        stderr(&out)
    );
    let three: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(three["smoke"]["report"]["passed"], false, "{three:#}");
    assert_ne!(
        three["task_definition"], two["task_definition"],
        "a new release"
    );
    assert_eq!(
        three["smoke_rollback"]["task_definition"], two["task_definition"],
        "{three:#}"
    );
    assert_eq!(three["smoke_rollback"]["verdict"]["verdict"], "completed");
    let running = d
        .described_service()
        .await
        .task_definition()
        .map(str::to_owned);
    assert_eq!(running.as_deref(), two["task_definition"].as_str());
}

#[tokio::test]
async fn of_two_takers_of_an_expired_lock_one_wins() {
    let env = unique_env("lk");
    let d = Deployed::create(&env, "one").await;
    // A lock whose holder stopped renewing a minute ago.
    let expired = (chrono::Utc::now() - chrono::TimeDelta::seconds(60)).timestamp_millis();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    aws_sdk_dynamodb::Client::new(&d.config)
        .put_item()
        .table_name("wsctl-locks")
        .item("lock_id", s(&format!("agenticai-websocket-{env}")))
        .item("environment", s(&env))
        .item("holder_id", s("gone"))
        .item("operation", s("deploy"))
        .item(
            "who",
            s("arn:aws:sts::123456789012:assumed-role/ci/lost-runner"),
        )
        .item("host", s("lost-runner"))
        .item("pid", AttributeValue::N("4242".into()))
        .item("since", s("2026-01-01T00:00:00Z"))
        .item("expires_at", AttributeValue::N(expired.to_string()))
        .send()
        .await
        .expect("an expired lock");
    let (first, second) = (checkout(&d, "two"), checkout(&d, "three"));
    let wait = ["--yes", "--lock-wait", "2m"];
    let a = spawn(&first, &env, &wait, &[]);
    let b = spawn(&second, &env, &wait, &[]);
    let (a, b) = (
        a.wait_with_output().expect("first"),
        b.wait_with_output().expect("second"),
    );
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let took = [&a, &b]
        .iter()
        .filter(|out| stderr(out).contains("took over an expired lock"))
        .count();
    // The loser saw the winner's fresh lock, not the expired one: it waited, or came after.
    assert_eq!(took, 1, "{}\n----\n{}", stderr(&a), stderr(&b));
}
