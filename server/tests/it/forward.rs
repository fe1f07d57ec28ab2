//! Forwarding to SQS against the AWS emulator: the message arrives with its attributes and the
//! reply carries its MessageId; failures come back as errors naming the queue and the
//! connection carries on.

use crate::common::*;
use serde_json::{Value, json};

async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    sqs.create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("create queue in the emulator")
        .queue_url
        .expect("queue url")
}

fn attr(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

/// A fresh queue in the emulator, and the server configured with it as `variable`, with one
/// client connected as `alice` (every project and queue granted): (SQS client, queue URL,
/// server, client, welcome).
async fn with_queue(
    prefix: &str,
    variable: &str,
) -> (aws_sdk_sqs::Client, String, TestServer, Ws, Value) {
    let sdk = emulator_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&sqs, prefix).await;
    let server = start_with(&[(variable, &url), ("WS_JWT_SECRET", jwt::SECRET)], &sdk).await;
    let everything = json!({"projects": ["*"], "queues": ["*"]});
    let token = jwt::hs256(&jwt::with(jwt::claims("alice"), everything));
    let (ws, welcome) = connect_bearer(&server, "/ws", &token).await;
    (sqs, url, server, ws, welcome)
}

#[tokio::test]
async fn forward_arrives_in_the_queue_with_attributes_and_the_reply_has_its_message_id() {
    let (sqs, dev, _server, mut ws, welcome) = with_queue("dev", "SQS_QUEUE_URL_DEV").await;

    let data = json!({"task": "build", "files": ["a.rs", "b.rs"], "n": 1.5});
    let reply = request(
        &mut ws,
        json!({"action": "forward", "type": "dev", "project_id": "proj_1", "request_id": "f-1", "data": data}),
    )
    .await;
    assert_eq!(reply["type"], "forwarded", "{reply}");
    assert_eq!(reply["queue"], "dev");
    assert_eq!(reply["request_id"], "f-1");
    let message_id = reply["message_id"].as_str().expect("message_id").to_owned();

    let got = sqs
        .receive_message()
        .queue_url(&dev)
        .message_attribute_names("All")
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let messages = got.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.message_id(), Some(message_id.as_str()));
    let body: Value = serde_json::from_str(m.body().expect("body")).expect("body is JSON");
    assert_eq!(body, data);
    assert_eq!(
        attr(m, "connection_id").as_deref(),
        welcome["connection_id"].as_str()
    );
    assert_eq!(attr(m, "type").as_deref(), Some("dev"));
    assert_eq!(attr(m, "project_id").as_deref(), Some("proj_1"));
    assert_eq!(attr(m, "request_id").as_deref(), Some("f-1"));
    // Who asked: the token's sub.
    assert_eq!(attr(m, "user_id").as_deref(), Some("alice"));
}

#[tokio::test]
async fn project_id_inside_data_labels_the_message() {
    let (sqs, qa, _server, mut ws, _) = with_queue("qa", "SQS_QUEUE_URL_QA").await;
    let reply = request(
        &mut ws,
        json!({"action": "forward", "type": "qa", "data": {"project_id": "p7"}}),
    )
    .await;
    assert_eq!(reply["type"], "forwarded", "{reply}");
    let got = sqs
        .receive_message()
        .queue_url(&qa)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let m = &got.messages()[0];
    assert_eq!(attr(m, "project_id").as_deref(), Some("p7"));
    assert_eq!(attr(m, "request_id"), None);
}

#[tokio::test]
async fn a_missing_queue_is_an_error_naming_it_and_the_connection_carries_on() {
    let sdk = emulator_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let pm = create_queue(&sqs, "pm").await;
    let gone = format!(
        "{}/123456789012/deleted-{}",
        emulator_endpoint(),
        uuid::Uuid::new_v4().simple()
    );
    let server = start_with(
        &[("SQS_QUEUE_URL_PM", &pm), ("SQS_QUEUE_URL_OPS", &gone)],
        &sdk,
    )
    .await;
    let (mut ws, _) = connect(&server, "/ws").await;

    let reply = request(
        &mut ws,
        json!({"action": "forward", "type": "ops", "request_id": 9, "data": {}}),
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "queue_error");
    assert_eq!(reply["request_id"], 9);
    assert!(
        reply["message"]
            .as_str()
            .expect("message")
            .contains("\"ops\""),
        "{reply}"
    );

    assert_usable(&mut ws).await;
    let ok = request(
        &mut ws,
        json!({"action": "forward", "type": "pm", "data": {"after": "failure"}}),
    )
    .await;
    assert_eq!(ok["type"], "forwarded", "{ok}");
}

#[tokio::test]
async fn unreachable_sqs_is_an_error_naming_the_queue() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let sdk = sdk_for(&format!("http://127.0.0.1:{port}")).await;
    let server = start_with(
        &[
            (
                "SQS_QUEUE_URL_DEV",
                "https://sqs.us-east-1.amazonaws.com/123456789012/dev",
            ),
            ("WS_SQS_TIMEOUT_SECONDS", "5"),
        ],
        &sdk,
    )
    .await;
    let (mut ws, _) = connect(&server, "/ws").await;
    let reply = request(
        &mut ws,
        json!({"action": "forward", "type": "dev", "data": {"x": 1}}),
    )
    .await;
    assert_eq!(reply["code"], "queue_error", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .expect("message")
            .contains("\"dev\""),
        "{reply}"
    );
    assert_usable(&mut ws).await;
    let (status, _) = health(&server).await;
    assert_eq!(status, 200);
}
