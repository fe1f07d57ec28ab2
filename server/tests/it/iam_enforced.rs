//! The task role, enforced: the real `ws-server` binary runs with the keys of a user that holds
//! exactly the task role's policies as CloudFormation made them from `templates/ecs.yaml`, in
//! an emulator that checks every call against IAM. Forwards to each agent queue succeed; no
//! more is granted (receiving or deleting the agents' messages is refused); without the role's statement the forward gets the server's
//! access-denied error naming the queue. The execution role, the same way: it reads the
//! secrets the task definition names and no other.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::iam::{IamEmulator, Keys};
use crate::common::{Ws, recv, request};
use serde_json::{Value, json};

const QUEUES: [(&str, &str, &str); 4] = [
    ("pm", "PMQueueUrl", "SQS_QUEUE_URL_PM"),
    ("dev", "DevQueueUrl", "SQS_QUEUE_URL_DEV"),
    ("qa", "QAQueueUrl", "SQS_QUEUE_URL_QA"),
    ("ops", "OpsQueueUrl", "SQS_QUEUE_URL_OPS"),
];

/// The emulator with the four agent queues and the service stack made from the template.
struct Ground {
    emulator: IamEmulator,
    /// (queue kind, URL)
    queues: Vec<(&'static str, String)>,
    /// The stack's outputs.
    outputs: Value,
    /// The publish token's secret (the stack's PublishTokenSecretArn).
    publish_token_arn: String,
}

async fn ground() -> Ground {
    let emulator = IamEmulator::start();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk(&emulator.admin).await);
    let mut queues = Vec::new();
    for (kind, _, _) in QUEUES {
        let url = sqs
            .create_queue()
            .queue_name(format!("agent-{kind}"))
            .send()
            .await
            .expect("create the queue as the administrator")
            .queue_url
            .unwrap();
        queues.push((kind, url));
    }
    let sm = aws_sdk_secretsmanager::Client::new(&emulator.sdk(&emulator.admin).await);
    let mut secret_arns = Vec::new();
    for name in ["publish-token", "unrelated"] {
        let created = sm
            .create_secret()
            .name(name)
            .secret_string(format!("{name}-0123456789abcdef0123456789abcdef"))
            .send()
            .await
            .expect("create a secret as the administrator");
        secret_arns.push(created.arn.unwrap());
    }
    let publish_token_arn = secret_arns[0].clone();
    let mut parameters = vec![
        ("Environment", "iam"),
        ("DataTableName", "data"),
        ("PublishTokenSecretArn", publish_token_arn.as_str()),
    ];
    for ((_, parameter, _), (_, url)) in QUEUES.iter().zip(&queues) {
        parameters.push((parameter, url));
    }
    let stack = emulator.stack("ws-iam", "templates/ecs.yaml", &parameters);
    assert!(stack["resources"]["TaskRole"].is_string(), "{stack:#}");
    Ground {
        emulator,
        queues,
        outputs: stack["outputs"].clone(),
        publish_token_arn,
    }
}

/// The real server binary acting with `keys`.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn server(ground: &Ground, keys: &Keys) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-server"));
    command
        .envs(keys.env(&ground.emulator.endpoint))
        .env("WEBSOCKET_HOST", "127.0.0.1")
        .env("WEBSOCKET_PORT", port.to_string())
        // authentication is not what this test is about
        .env("WS_AUTH", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for ((_, _, variable), (_, url)) in QUEUES.iter().zip(&ground.queues) {
        command.env(variable, url);
    }
    let server = Server {
        child: command.spawn().expect("start ws-server"),
        port,
    };
    let health = format!("http://127.0.0.1:{port}/health");
    for _ in 0..200 {
        if reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ws-server did not answer {health} within 10 s");
}

async fn client(server: &Server) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.port))
            .await
            .unwrap();
    let welcome = recv(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws
}

async fn forward(ws: &mut Ws, queue: &str) -> Value {
    request(
        ws,
        json!({"action": "forward", "type": queue, "project_id": "p1", "data": {"task": queue}}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_roles_policy_lets_the_server_forward_to_every_queue_and_nothing_more() {
    let ground = ground().await;
    let keys = ground.emulator.role_user("task", "ws-iam", "TaskRole", &[]);
    let server = server(&ground, &keys).await;
    let mut ws = client(&server).await;
    for (kind, _) in &ground.queues {
        let reply = forward(&mut ws, kind).await;
        assert_eq!(reply["type"], "forwarded", "forward to {kind}: {reply}");
    }
    let admin = aws_sdk_sqs::Client::new(&ground.emulator.sdk(&ground.emulator.admin).await);
    for (kind, url) in &ground.queues {
        let got = admin.receive_message().queue_url(url).send().await.unwrap();
        let body = got.messages().first().and_then(|m| m.body()).unwrap_or("");
        assert_eq!(
            serde_json::from_str::<Value>(body).ok(),
            Some(json!({"task": kind}))
        );
    }

    // The task may send to the agents' queues, not receive or delete their work.
    let as_task = aws_sdk_sqs::Client::new(&ground.emulator.sdk(&keys).await);
    let err = as_task
        .receive_message()
        .queue_url(&ground.queues[1].1)
        .send()
        .await
        .expect_err("the task role does not receive");
    let text = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&err));
    assert!(text.contains("AccessDenied"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_roles_statement_a_forward_gets_the_access_denied_error_naming_the_queue() {
    let ground = ground().await;
    let keys = ground
        .emulator
        .role_user("task", "ws-iam", "TaskRole", &["sqs:SendMessage"]);
    let server = server(&ground, &keys).await;
    let mut ws = client(&server).await;
    let reply = forward(&mut ws, "dev").await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "queue_error", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.starts_with("queue \"dev\" did not take the message: AccessDenied"),
        "{message}"
    );
    // The connection carries on.
    let pong = request(&mut ws, json!({"action": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_execution_roles_policy_reads_the_task_definitions_secrets_and_no_other() {
    let ground = ground().await;
    let keys = ground
        .emulator
        .role_user("execution", "ws-iam", "ExecutionRole", &[]);
    let sdk = ground.emulator.sdk(&keys).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let jwt_key = ground.outputs["JwtSecretArn"].as_str().unwrap();
    for arn in [jwt_key, ground.publish_token_arn.as_str()] {
        let value = sm.get_secret_value().secret_id(arn).send().await;
        assert!(value.is_ok(), "{arn}: {:?}", value.err());
    }
    let err = sm
        .get_secret_value()
        .secret_id("unrelated")
        .send()
        .await
        .expect_err("a secret the task definition does not name");
    let text = format!(
        "{}",
        aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
    );
    assert!(text.contains("AccessDenied"), "{text}");
    // It starts tasks; it does not act as the server.
    let err = aws_sdk_sqs::Client::new(&sdk)
        .send_message()
        .queue_url(&ground.queues[0].1)
        .message_body("{}")
        .send()
        .await
        .expect_err("the execution role sends no messages");
    let text = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&err));
    assert!(text.contains("AccessDenied"), "{text}");
}
