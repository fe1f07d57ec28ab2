//! Attacks by one client that could hurt every other client, against the real `ws-server`
//! process: clients that never read while flooding it and being flooded keep its memory (VmRSS
//! from /proc) bounded and are closed; a client that never reads but keeps sending pongs is closed as slow; slowloris
//! connections (headers a byte at a time) are closed while `/health` keeps answering.

#![allow(clippy::unwrap_used)] // a test failing on its own setup says so well enough

use std::time::Duration;

use crate::common::jwt::{SECRET, claims, hs256, with};
use crate::common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ATTACKERS: usize = 14;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourteen_clients_that_never_read_keep_the_memory_bounded_and_are_closed() {
    // The rate limit is lifted so that the outbox bounds are what stops the attack.
    let server = ServerProcess::spawn(&[
        ("WS_JWT_SECRET", SECRET),
        ("WS_RATE_PER_SECOND", "1000000"),
        ("WS_RATE_BURST", "1000000"),
    ])
    .await;
    let baseline = server.rss_kib();
    let mut attackers = Vec::new();
    for n in 0..ATTACKERS {
        let token = hs256(&with(
            claims(&format!("mallory-{n}")),
            json!({"projects": ["*"]}),
        ));
        let url = format!("ws://{}/ws?project_id=feed", server.addr);
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        // Never reads: writes 60 KB requests that each earn an error reply (which must not
        // quote them whole: escaped, that is 7 times larger), and a pong now and then to look alive.
        attackers.push(tokio::spawn(async move {
            let mut ws = ws;
            let junk =
                json!({"action": "\u{1}".repeat(9000), "type": "x".repeat(5000)}).to_string();
            for i in 0u64.. {
                let m = if i % 10 == 0 {
                    Message::Pong(Default::default())
                } else {
                    Message::text(junk.clone())
                };
                let sent = tokio::time::timeout(Duration::from_secs(2), ws.send(m)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Meanwhile 60 KB updates to the project they follow, which they do not read either.
    let pad = "u".repeat(60_000);
    let mut peak = baseline;
    for seq in 0..300 {
        let body = json!({"project_id": "feed", "data": {"seq": seq, "pad": pad}});
        assert_eq!(server.publish(&body).await, 202);
        peak = peak.max(server.rss_kib());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        peak = peak.max(server.rss_kib());
        let h = server.health().await;
        if h["connections"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the non-reading clients were not closed: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growth_mib = (peak.saturating_sub(baseline)) as f64 / 1024.0;
    eprintln!(
        "VmRSS baseline {} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB",
        baseline
    );
    assert!(
        growth_mib < 64.0,
        "{ATTACKERS} non-reading clients grew the server by {growth_mib:.1} MiB"
    );
    for a in attackers {
        a.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_but_sends_pongs_is_closed_as_slow() {
    // Outbox bounds far away: only the write stall can close this client.
    let server = start(&[
        ("WS_OUTBOX_BYTES", "500000000"),
        ("WS_OUTBOX_MESSAGES", "100000"),
        ("WS_WRITE_TIMEOUT_SECONDS", "2"),
        ("WS_PING_INTERVAL_SECONDS", "60"),
    ])
    .await;
    let (mut ws, _) = connect(&server, "/ws?project_id=feed").await;
    let pad = "p".repeat(60_000);
    for seq in 0..300 {
        let (status, _) = publish(
            &server,
            json!({"project_id": "feed", "data": {"seq": seq, "pad": pad}}),
        )
        .await;
        assert_eq!(status, 202);
    }
    let slow = &server.state.metrics.slow_clients_closed;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while slow.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        // A pong every half second: proof of life that is not reading.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            ws.send(Message::Pong(Default::default())),
        )
        .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "a client that does not read stayed open"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_connections(&server, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_health_keeps_answering() {
    let server =
        ServerProcess::spawn(&[("WS_AUTH", "none"), ("WS_HTTP_HEADER_TIMEOUT_SECONDS", "2")]).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(tcp);
    }
    let started = tokio::time::Instant::now();
    // One more header byte a second each, as a slowloris client sends them.
    let mut closed = vec![false; slow.len()];
    while closed.iter().any(|c| !c) {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{} slowloris connections still open after 8 s",
            closed.iter().filter(|c| !**c).count()
        );
        assert_eq!(server.health().await["status"], "ok");
        for (tcp, done) in slow.iter_mut().zip(closed.iter_mut()) {
            if *done {
                continue;
            }
            let _ = tcp.write_all(b"X").await;
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => *done = true,
                // hyper may answer 408 before closing.
                Ok(Ok(_)) => *done = true,
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed before the timeout?"
    );
}
