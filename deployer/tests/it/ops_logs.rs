//! `wsctl logs` against the AWS emulator: events written with PutLogEvents come back in time
//! order, prefixed by task, selected by --since, --filter and --task; --follow picks up new
//! events exactly once and stops on SIGINT with exit 0.

use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{sdk_config, stderr, stdout, unique_env, wsctl, wsctl_command};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

const TASK_A: &str = "aaaa1111bbbb2222cccc3333dddd4444";
const TASK_B: &str = "bbbb2222cccc3333dddd4444eeee5555";

struct LogGroup {
    client: aws_sdk_cloudwatchlogs::Client,
    name: String,
}

impl LogGroup {
    async fn create(env: &str) -> Self {
        let client = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
        let name = format!("/ecs/agenticai-websocket-{env}");
        client
            .create_log_group()
            .log_group_name(&name)
            .send()
            .await
            .expect("log group");
        for task in [TASK_A, TASK_B] {
            client
                .create_log_stream()
                .log_group_name(&name)
                .log_stream_name(format!("ws/websocket/{task}"))
                .send()
                .await
                .expect("stream");
        }
        Self { client, name }
    }

    async fn put(&self, task: &str, events: &[(i64, &str)]) {
        let events: Vec<InputLogEvent> = events
            .iter()
            .map(|(ts, msg)| {
                InputLogEvent::builder()
                    .timestamp(*ts)
                    .message(*msg)
                    .build()
                    .expect("event")
            })
            .collect();
        self.client
            .put_log_events()
            .log_group_name(&self.name)
            .log_stream_name(format!("ws/websocket/{task}"))
            .set_log_events(Some(events))
            .send()
            .await
            .expect("put events");
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

#[tokio::test]
async fn logs_are_ordered_prefixed_by_task_and_selected_by_since_filter_and_task() {
    let env = unique_env("lg");
    let group = LogGroup::create(&env).await;
    let now = now_ms();
    let minute = 60_000;
    let same_ms = now - 3 * minute;
    group
        .put(TASK_A, &[
            (now - 50 * minute, "old plain line"),
            (
                now - 5 * minute,
                r#"{"timestamp":"2024-05-01T12:00:00.250Z","level":"INFO","message":"client connected","target":"ws_server::hub","connection_id":"c-1"}"#,
            ),
            (same_ms, r#"{"level":"ERROR","message":"queue send failed","queue":"ops"}"#),
        ])
        .await;
    group
        .put(
            TASK_B,
            &[
                (
                    now - 4 * minute,
                    r#"{"level":"WARN","message":"slow client"}"#,
                ),
                (same_ms, "ERROR plain line from b"),
                (now - minute, "listening on 0.0.0.0:8080"),
            ],
        )
        .await;

    let out = wsctl(&["logs", "--env", &env, "--since", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 6, "{text}");
    let order = [
        "old plain line",
        "client connected",
        "slow client",
        "listening on 0.0.0.0:8080",
    ]
    .map(|needle| position(&text, needle));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "time order:\n{text}");
    for same in ["queue send failed", "ERROR plain line from b"] {
        let at = position(&text, same);
        assert!(
            order[2] < at && at < order[3],
            "{same} in time order:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "{TASK_A}  2024-05-01T12:00:00.250Z  INFO   client connected  connection_id=c-1"
        )),
        "server JSON made readable:\n{text}"
    );
    assert!(
        text.lines()
            .all(|l| l.starts_with(TASK_A) || l.starts_with(TASK_B)),
        "{text}"
    );

    let recent = stdout(&wsctl(&["logs", "--env", &env, "--since", "10m"]));
    assert_eq!(recent.lines().count(), 5, "{recent}");
    assert!(!recent.contains("old plain line"), "{recent}");

    let errors = stdout(&wsctl(&[
        "logs", "--env", &env, "--since", "1h", "--filter", "ERROR",
    ]));
    assert_eq!(errors.lines().count(), 2, "{errors}");
    assert!(
        errors.contains("queue send failed") && errors.contains("plain line from b"),
        "{errors}"
    );

    let task_b = stdout(&wsctl(&[
        "logs", "--env", &env, "--since", "1h", "--task", "bbbb2222",
    ]));
    assert_eq!(task_b.lines().count(), 3, "{task_b}");
    assert!(task_b.lines().all(|l| l.starts_with(TASK_B)), "{task_b}");

    let json = stdout(&wsctl(&[
        "logs", "--env", &env, "--since", "1h", "-o", "json",
    ]));
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 6);
    let warn = lines
        .iter()
        .find(|l| l["fields"]["message"] == "slow client")
        .expect("parsed");
    assert_eq!(
        (warn["task"].as_str(), warn["fields"]["level"].as_str()),
        (Some(TASK_B), Some("WARN"))
    );

    let raw = stdout(&wsctl(&["logs", "--env", &env, "--since", "1h", "--raw"]));
    assert!(
        raw.contains(r#"{"level":"WARN","message":"slow client"}"#),
        "{raw}"
    );
}

#[tokio::test]
async fn logs_of_a_missing_environment_or_bad_since_are_clear_errors() {
    let env = unique_env("lm");
    let out = wsctl(&["logs", "--env", &env]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = wsctl(&["logs", "--env", &env, "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--since 'yesterday'"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn follow_prints_new_events_once_and_stops_on_sigint() {
    let env = unique_env("lf");
    let group = LogGroup::create(&env).await;
    group
        .put(TASK_A, &[(now_ms() - 1000, "before-start")])
        .await;

    let mut child = wsctl_command(&[
        "logs",
        "--env",
        &env,
        "--follow",
        "--since",
        "5m",
        "--poll-interval",
        "1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn wsctl logs --follow");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let wait_for = |seen: &mut Vec<String>, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("{needle:?} never printed; got {seen:#?}"),
            }
        }
    };
    wait_for(&mut seen, "before-start");

    // Three events in one millisecond, in two streams, then a later one.
    let ts = now_ms();
    group.put(TASK_A, &[(ts, "burst-1"), (ts, "burst-2")]).await;
    group
        .put(TASK_B, &[(ts, "burst-3"), (ts + 5, "after-burst")])
        .await;
    for needle in ["burst-1", "burst-2", "burst-3", "after-burst"] {
        wait_for(&mut seen, needle);
    }
    // A few more polls over the same window must not print anything again.
    std::thread::sleep(Duration::from_millis(2500));
    seen.extend(rx.try_iter());

    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "wsctl logs --follow did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    seen.extend(rx.try_iter());
    assert_eq!(exit.code(), Some(0), "Ctrl-C ends a follow normally");
    for needle in [
        "before-start",
        "burst-1",
        "burst-2",
        "burst-3",
        "after-burst",
    ] {
        let count = seen.iter().filter(|l| l.ends_with(needle)).count();
        assert_eq!(count, 1, "{needle} printed {count} times: {seen:#?}");
    }
    assert_eq!(seen.len(), 5, "{seen:#?}");
}
