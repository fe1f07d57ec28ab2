//! Limits that keep one client from hurting the others, through real clients: connections per
//! IP (with and without a trusted X-Forwarded-For), the request rate, Origin, tokens in URLs,
//! invalid UTF-8, error replies that do not amplify, and `/publish` checking its token before
//! it reads a body that must arrive in time.

#![allow(clippy::unwrap_used)] // a test failing on its own setup says so well enough

use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

#[tokio::test]
async fn one_ip_gets_at_most_its_share_of_connections() {
    let server = start(&[("WS_MAX_CONNECTIONS_PER_IP", "2")]).await;
    let a = connect_with(&server, "/ws", &[]).await.expect("first");
    let _b = connect_with(&server, "/ws", &[]).await.expect("second");
    // Without WS_TRUST_FORWARDED_FOR the header is the client's word and is ignored.
    match connect_with(&server, "/ws", &[("x-forwarded-for", "203.0.113.9")]).await {
        Err((429, body)) => assert_eq!(body["code"], "too_many_connections", "{body}"),
        other => panic!("expected 429, got {:?}", other.map(|(_, w)| w)),
    }
    drop(a);
    wait_connections(&server, 1).await;
    connect_with(&server, "/ws", &[])
        .await
        .expect("a closed connection frees its slot");
    assert_eq!(
        server
            .state
            .metrics
            .refused_per_ip
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn behind_the_load_balancer_the_rightmost_forwarded_address_counts() {
    let server = start(&[
        ("WS_MAX_CONNECTIONS_PER_IP", "2"),
        ("WS_TRUST_FORWARDED_FOR", "true"),
    ])
    .await;
    // What the ALB sends: the client's own claim first, the address the ALB saw last.
    let mut open = Vec::new();
    for spoofed in ["10.9.9.1", "10.9.9.2"] {
        let xff = format!("{spoofed}, 198.51.100.7");
        open.push(
            connect_with(&server, "/ws", &[("x-forwarded-for", &xff)])
                .await
                .expect("under the cap"),
        );
    }
    let refused = connect_with(
        &server,
        "/ws",
        &[("x-forwarded-for", "10.9.9.3, 198.51.100.7")],
    )
    .await;
    assert!(
        matches!(refused, Err((429, _))),
        "a new spoofed prefix must not escape the cap"
    );
    // Another client behind the same load balancer (the local peer) is not affected.
    connect_with(&server, "/ws", &[("x-forwarded-for", "198.51.100.8")])
        .await
        .expect("another client IP");
    let retry = reqwest::Client::new()
        .get(server.url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 429);
    assert_eq!(retry.headers()["retry-after"], "10");
}

#[tokio::test]
async fn over_the_rate_requests_are_refused_and_sustained_abuse_is_closed() {
    let server = start(&[("WS_RATE_PER_SECOND", "1"), ("WS_RATE_BURST", "10")]).await;
    let (mut ws, _) = connect(&server, "/ws").await;
    for i in 0..12 {
        send(&mut ws, json!({"action": "ping", "request_id": i})).await;
    }
    let mut codes = Vec::new();
    for i in 0..12 {
        let r = recv(&mut ws).await;
        assert_eq!(r["request_id"], i, "{r}");
        codes.push(
            r["code"]
                .as_str()
                .unwrap_or(r["type"].as_str().unwrap())
                .to_owned(),
        );
    }
    assert_eq!(codes[..10], ["pong"; 10]);
    assert_eq!(codes[10..], ["rate_limited"; 2]);
    // After a pause the bucket has refilled: the connection is usable again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_usable(&mut ws).await;
    // Keeping on sending over the rate closes the connection.
    for i in 0..100 {
        if ws
            .send(Message::text(
                json!({"action": "ping", "request_id": i}).to_string(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let (frames, close) = read_until_close(&mut ws).await;
    assert!(frames.iter().any(|f| f["code"] == "rate_limited"));
    assert_eq!(
        close,
        Some((1008, "rate limit: too many requests".to_owned()))
    );
}

#[tokio::test]
async fn browsers_from_other_origins_are_refused() {
    let server = start(&[(
        "WS_ALLOWED_ORIGINS",
        "https://app.example.com, https://admin.example.com/",
    )])
    .await;
    match connect_with(&server, "/ws", &[("origin", "https://evil.example")]).await {
        Err((403, body)) => assert_eq!(body["code"], "origin_not_allowed", "{body}"),
        other => panic!("expected 403, got {:?}", other.map(|(_, w)| w)),
    }
    connect_with(&server, "/ws", &[("origin", "https://app.example.com")])
        .await
        .expect("allowed");
    connect_with(&server, "/ws", &[("origin", "https://ADMIN.example.com")])
        .await
        .expect("allowed");
    // Not a browser (no Origin): services and CLIs connect.
    connect_with(&server, "/ws", &[]).await.expect("no origin");
}

#[tokio::test]
async fn a_token_in_the_url_is_refused() {
    let server = start(&[]).await;
    for path in ["/ws?token=abc", "/ws?project_id=p1&access_token=abc"] {
        match connect_with(&server, path, &[]).await {
            Err((400, body)) => assert_eq!(body["code"], "token_in_url", "{body}"),
            other => panic!("{path}: expected 400, got {:?}", other.map(|(_, w)| w)),
        }
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = start(&[]).await;
    let (mut ws, _) = connect(&server, "/ws").await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    let (_, close) = read_until_close(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(1007));
}

#[tokio::test]
async fn an_error_reply_quotes_little_of_a_huge_request_and_the_connection_stays() {
    let server = start(&[]).await;
    let (mut ws, _) = connect(&server, "/ws").await;
    // 60 KB of control characters: quoted whole and escaped, they would make a 400 KB error.
    let action = "\u{1}".repeat(9_000);
    let req = json!({"action": action, "type": "\u{2}".repeat(1000), "request_id": "big"});
    let text = req.to_string();
    assert!(text.len() > 59_000 && text.len() < 65_536, "{}", text.len());
    ws.send(Message::text(text)).await.unwrap();
    let r = recv(&mut ws).await;
    assert_eq!(
        (&r["code"], &r["request_id"]),
        (&json!("unknown_action"), &json!("big"))
    );
    assert!(r.to_string().len() < 1024, "{} bytes", r.to_string().len());
    assert_usable(&mut ws).await;
}

#[tokio::test]
async fn publish_checks_the_token_before_the_body_and_bounds_the_body_time() {
    let server = start(&[("WS_HTTP_BODY_TIMEOUT_SECONDS", "1")]).await;
    let head = |token: &str| {
        format!(
            "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"data\":"
        )
    };
    // Wrong token: refused at once, although 990 bytes of the body never come.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(head("wrong-token-wrong-token").as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut tcp).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(started.elapsed() < Duration::from_millis(900));
    // Right token, body stalls: 408 after the body timeout.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(head(TOKEN).as_bytes()).await.unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut tcp).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

async fn read_reply(tcp: &mut tokio::net::TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("a reply within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
