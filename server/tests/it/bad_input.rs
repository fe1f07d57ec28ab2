//! Bad input: each invalid request gets its stable error code, and the connection stays open
//! and usable after every one of them.

use crate::common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: usize = 1024;

#[tokio::test]
async fn each_invalid_request_gets_its_code_and_the_connection_carries_on() {
    let server = start(&[
        ("WS_MAX_FRAME_BYTES", "1024"),
        ("WS_MAX_SUBSCRIPTIONS", "2"),
    ])
    .await;
    let (mut ws, _) = connect(&server, "/ws").await;

    let too_big = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(LIMIT));
    let table: Vec<(&str, Message, &str)> = vec![
        ("not JSON", Message::text("hello"), "invalid_json"),
        (
            "truncated JSON",
            Message::text(r#"{"action":"ping""#),
            "invalid_json",
        ),
        ("an array", Message::text("[1,2]"), "not_an_object"),
        ("a string", Message::text(r#""ping""#), "not_an_object"),
        (
            "no action",
            Message::text(r#"{"project_id":"a"}"#),
            "missing_field",
        ),
        (
            "action not a string",
            Message::text(r#"{"action":7}"#),
            "invalid_field",
        ),
        (
            "unknown action",
            Message::text(r#"{"action":"explode"}"#),
            "unknown_action",
        ),
        (
            "subscribe without project",
            Message::text(r#"{"action":"subscribe"}"#),
            "missing_field",
        ),
        (
            "project_id a number",
            Message::text(r#"{"action":"subscribe","project_id":12}"#),
            "invalid_field",
        ),
        (
            "project_id empty",
            Message::text(r#"{"action":"unsubscribe","project_id":""}"#),
            "invalid_field",
        ),
        (
            "forward without type",
            Message::text(r#"{"action":"forward","data":{}}"#),
            "missing_field",
        ),
        (
            "forward to unknown queue",
            Message::text(r#"{"action":"forward","type":"hr","data":{}}"#),
            "unknown_queue",
        ),
        (
            "forward without data",
            Message::text(r#"{"action":"forward","type":"dev"}"#),
            "missing_field",
        ),
        (
            "forward data not an object",
            Message::text(r#"{"action":"forward","type":"dev","data":"x"}"#),
            "invalid_field",
        ),
        (
            "forward to unset queue",
            Message::text(r#"{"action":"forward","type":"qa","data":{}}"#),
            "queue_not_configured",
        ),
        (
            "request_id an object",
            Message::text(r#"{"action":"ping","request_id":{}}"#),
            "invalid_field",
        ),
        (
            "binary frame",
            Message::binary(vec![1u8, 2, 3]),
            "binary_not_supported",
        ),
        (
            "frame over the limit",
            Message::text(too_big),
            "frame_too_large",
        ),
    ];
    for (what, frame, code) in table {
        ws.send(frame).await.expect("send");
        let reply = recv(&mut ws).await;
        assert_eq!(reply["type"], "error", "{what}: {reply}");
        assert_eq!(reply["code"], code, "{what}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: message missing in {reply}"
        );
        assert_usable(&mut ws).await;
    }

    // Subscriptions past the limit.
    for p in ["p1", "p2"] {
        let r = request(&mut ws, json!({"action": "subscribe", "project_id": p})).await;
        assert_eq!(r["type"], "subscribed");
    }
    let r = request(
        &mut ws,
        json!({"action": "subscribe", "project_id": "p3", "request_id": "r3"}),
    )
    .await;
    assert_eq!(
        (r["code"].as_str(), r["request_id"].as_str()),
        (Some("too_many_subscriptions"), Some("r3"))
    );
    assert_usable(&mut ws).await;

    // The request_id is echoed on errors too.
    let r = request(&mut ws, json!({"action": "fly", "request_id": "q-1"})).await;
    assert_eq!(
        (r["code"].as_str(), r["request_id"].as_str()),
        (Some("unknown_action"), Some("q-1"))
    );
}

#[tokio::test]
async fn a_frame_far_over_the_limit_closes_with_1009() {
    let server = start(&[("WS_MAX_FRAME_BYTES", "1024")]).await;
    let (mut ws, _) = connect(&server, "/ws").await;
    let huge = "x".repeat(LIMIT * 4 + 1);
    ws.send(Message::text(huge)).await.expect("send");
    let (_, close) = read_until_close(&mut ws).await;
    let closed = close.map(|c| c.0);
    assert_eq!(closed, Some(1009));
    wait_connections(&server, 0).await;
}
