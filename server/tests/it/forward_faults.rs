//! SQS failures the emulator cannot produce (access denied, throttling), from a small fake SQS
//! endpoint on loopback that answers every call with that error in the SQS JSON protocol. The
//! server answers the client with `queue_error` naming the queue and the cause, and carries on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

/// Starts a fake SQS endpoint answering every call with `code`; returns its URL and call count.
async fn failing_sqs(
    status: StatusCode,
    code: &'static str,
    message: &'static str,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut headers = HeaderMap::new();
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            headers.insert(
                "x-amzn-query-error",
                HeaderValue::from_str(&format!("{code};Sender")).expect("header"),
            );
            let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message});
            (status, headers, body.to_string())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), calls)
}

async fn forward_error(endpoint: &str) -> serde_json::Value {
    let sdk = sdk_for(endpoint).await;
    let server = start_with(
        &[(
            "SQS_QUEUE_URL_OPS",
            "https://sqs.us-east-1.amazonaws.com/123456789012/ops",
        )],
        &sdk,
    )
    .await;
    let (mut ws, _) = connect(&server, "/ws").await;
    let reply = request(
        &mut ws,
        json!({"action": "forward", "type": "ops", "request_id": "x", "data": {}}),
    )
    .await;
    assert_usable(&mut ws).await;
    reply
}

#[tokio::test]
async fn access_denied_is_reported_with_the_queue_and_the_cause() {
    let (endpoint, calls) = failing_sqs(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        "not authorized to sqs:SendMessage",
    )
    .await;
    let reply = forward_error(&endpoint).await;
    assert_eq!(reply["code"], "queue_error", "{reply}");
    assert_eq!(reply["request_id"], "x");
    let message = reply["message"].as_str().expect("message");
    assert!(
        message.contains("\"ops\"") && message.contains("AccessDenied"),
        "{message}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "access denied is not retried"
    );
}

#[tokio::test]
async fn throttling_is_retried_then_reported() {
    let (endpoint, calls) =
        failing_sqs(StatusCode::BAD_REQUEST, "RequestThrottled", "Rate exceeded").await;
    let reply = forward_error(&endpoint).await;
    assert_eq!(reply["code"], "queue_error", "{reply}");
    let message = reply["message"].as_str().expect("message");
    assert!(
        message.contains("\"ops\"") && message.contains("RequestThrottled"),
        "{message}"
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "throttling is retried by the SDK"
    );
}
