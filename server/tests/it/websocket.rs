//! Real WebSocket clients against the real server: welcome, ping, subscriptions through both
//! routes, and publish fan-out to exactly the subscribers of a project and to everyone.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn welcome_carries_connection_id_and_limits() {
    let server = start(&[("WS_MAX_FRAME_BYTES", "2048")]).await;
    let (_a, wa) = connect(&server, "/ws").await;
    let (_b, wb) = connect(&server, "/ws").await;
    let id = wa["connection_id"]
        .as_str()
        .expect("connection_id is a string");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_ne!(wa["connection_id"], wb["connection_id"]);
    assert_eq!(wa["max_frame_bytes"], 2048);
    assert_eq!(wa["subscriptions"], json!([]));
    assert!(wa["server_version"].is_string());
}

#[tokio::test]
async fn ping_gets_pong_with_request_id() {
    let server = start(&[]).await;
    let (mut ws, _) = connect(&server, "/ws").await;
    let r = request(&mut ws, json!({"action": "ping"})).await;
    assert_eq!(r["type"], "pong");
    assert!(r["timestamp"].is_string());
    assert!(r.get("request_id").is_none());
    let r = request(&mut ws, json!({"action": "ping", "request_id": 42})).await;
    assert_eq!(r["request_id"], 42);
}

#[tokio::test]
async fn subscribe_through_both_routes_and_unsubscribe() {
    let server = start(&[]).await;
    // route 1: on connect
    let (mut by_query, welcome) = connect(&server, "/ws?project_id=alpha").await;
    assert_eq!(welcome["subscriptions"], json!(["alpha"]));
    // the position of the project follows the welcome, without request_id
    let sub = recv(&mut by_query).await;
    let epoch = sub["epoch"].clone();
    assert!(epoch.as_str().is_some_and(|e| e.len() == 16), "{sub}");
    assert_eq!(
        sub,
        json!({"type": "subscribed", "project_id": "alpha", "offset": 0, "epoch": epoch})
    );
    // route 2: by request
    let (mut by_action, _) = connect(&server, "/ws").await;
    let r = request(
        &mut by_action,
        json!({"action": "subscribe", "project_id": "alpha", "request_id": "s1"}),
    )
    .await;
    assert_eq!(
        r,
        json!({"type": "subscribed", "project_id": "alpha", "request_id": "s1", "offset": 0, "epoch": epoch})
    );

    let (status, body) = publish(&server, json!({"project_id": "alpha", "data": {"n": 1}})).await;
    assert_eq!(
        (status, body.clone()),
        (
            202,
            json!({"offset": 1, "epoch": epoch, "duplicate": false, "delivered": 2, "dropped": 0})
        )
    );
    for ws in [&mut by_query, &mut by_action] {
        let u = recv(ws).await;
        assert_eq!(
            u,
            json!({"type": "update", "project_id": "alpha", "data": {"n": 1}, "offset": 1, "epoch": epoch})
        );
    }

    let r = request(
        &mut by_query,
        json!({"action": "unsubscribe", "project_id": "alpha"}),
    )
    .await;
    assert_eq!(r, json!({"type": "unsubscribed", "project_id": "alpha"}));
    let (_, body) = publish(&server, json!({"project_id": "alpha", "data": {"n": 2}})).await;
    assert_eq!(body["delivered"], 1);
    assert_eq!(recv(&mut by_action).await["data"]["n"], 2);
    assert_silent(&mut by_query).await;
}

#[tokio::test]
async fn publish_reaches_exactly_the_subscribers_of_a_project() {
    let server = start(&[]).await;
    let (mut a1, _) = connect(&server, "/ws?project_id=a").await;
    let (mut a2, _) = connect(&server, "/ws?project_id=a").await;
    let (mut b, _) = connect(&server, "/ws?project_id=b").await;
    let (mut none, _) = connect(&server, "/ws").await;
    for ws in [&mut a1, &mut a2, &mut b] {
        assert_eq!(recv(ws).await["type"], "subscribed");
    }

    let (status, body) = publish(
        &server,
        json!({"project_id": "a", "data": {"build": "green"}}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body["delivered"], 2);
    for ws in [&mut a1, &mut a2] {
        assert_eq!(recv(ws).await["data"], json!({"build": "green"}));
    }
    assert_silent(&mut b).await;
    assert_silent(&mut none).await;

    let (_, body) = publish(&server, json!({"project_id": "nobody", "data": {}})).await;
    assert_eq!(body["delivered"], 0);
}

#[tokio::test]
async fn publish_without_project_reaches_everyone() {
    let server = start(&[]).await;
    let (mut a, _) = connect(&server, "/ws?project_id=a").await;
    assert_eq!(recv(&mut a).await["type"], "subscribed");
    let (mut b, _) = connect(&server, "/ws").await;
    let (status, body) = publish(&server, json!({"data": {"notice": "maintenance"}})).await;
    assert_eq!((status, body["delivered"].as_u64()), (202, Some(2)));
    for ws in [&mut a, &mut b] {
        let u = recv(ws).await;
        assert_eq!(
            u,
            json!({"type": "update", "data": {"notice": "maintenance"}})
        );
    }
}

#[tokio::test]
async fn health_reports_status_version_connections_uptime() {
    let server = start(&[]).await;
    let (_ws, _) = connect(&server, "/ws").await;
    let (status, h) = health(&server).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["connections"], 1);
    assert!(h["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn publish_requires_the_token() {
    let server = start(&[]).await;
    let client = reqwest::Client::new();
    let body = json!({"data": {}});
    let none = client
        .post(server.url("/publish"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(none.status(), 401);
    let wrong = client
        .post(server.url("/publish"))
        .bearer_auth("wrong-token-wrong-token")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let body: serde_json::Value = wrong.json().await.expect("json");
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test]
async fn publish_is_off_without_a_token() {
    let mut cfg = crate::common::config(&[("WEBSOCKET_HOST", "127.0.0.1"), ("WS_AUTH", "none")]);
    cfg.publish_token = None;
    let state = server::AppState::new(cfg, &sdk_for("http://127.0.0.1:9").await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/publish"))
        .bearer_auth("anything-anything-anything")
        .json(&json!({"data": {}}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bad_publish_bodies_are_refused_with_400() {
    let server = start(&[]).await;
    for body in [
        json!({"project_id": "a"}),
        json!({"project_id": 5, "data": {}}),
        json!({"data": [1]}),
        json!([]),
    ] {
        let (status, reply) = publish(&server, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {reply}");
        assert!(reply["message"].is_string());
    }
}

#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let server = start(&[("WS_MAX_CONNECTIONS", "2")]).await;
    let (_a, _) = connect(&server, "/ws").await;
    let (_b, _) = connect(&server, "/ws").await;
    match tokio_tungstenite::connect_async(server.ws_url("/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("third connection should be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_project_on_connect_is_refused() {
    let server = start(&[]).await;
    match tokio_tungstenite::connect_async(server.ws_url("/ws?project_id=")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_that_are_not_a_websocket_handshake_are_refused_with_a_code() {
    let server = start(&[]).await;
    let key = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    let upgrade = [("connection", "Upgrade"), ("upgrade", "websocket")];
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, u16, &str); 3] = [
        (&[], 400, "not_websocket"),
        (
            &[upgrade[0], upgrade[1], ("sec-websocket-version", "8"), key],
            400,
            "websocket_version",
        ),
        (
            &[upgrade[0], upgrade[1], ("sec-websocket-version", "13")],
            400,
            "not_websocket",
        ),
    ];
    for (headers, status, code) in cases {
        let mut req = reqwest::Client::new().get(server.url("/ws"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let answer = req.send().await.expect("an answer");
        assert_eq!(answer.status().as_u16(), status, "{headers:?}");
        let body: serde_json::Value = answer.json().await.expect("a JSON refusal");
        assert_eq!(body["code"], code, "{headers:?}: {body}");
    }
}

#[tokio::test]
async fn a_request_sent_right_behind_the_handshake_is_read_and_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    // The handshake and a first frame in one write: hyper reads both, and the server must
    // hand the frame's bytes to the WebSocket (a zero mask leaves the payload as it is).
    let payload = br#"{"action":"ping","request_id":"early"}"#;
    let mut bytes = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    )
    .into_bytes();
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0]);
    bytes.extend_from_slice(payload);
    tcp.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&got).contains(r#""request_id":"early""#) {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("the early request answered within the wait")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    // RFC 6455's example key and its accept value.
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{text}"
    );
    assert!(text.contains(r#""type":"welcome""#), "{text}");
}
