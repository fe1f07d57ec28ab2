//! Backpressure and liveness: a client that stops reading is closed (1008) without delaying
//! anyone else; a client that stops answering pings is closed; a live one stays.

use std::time::Duration;

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The `seq` of each update received until the close, and the close code and reason.
async fn read_to_end(mut ws: Ws) -> (Vec<u64>, Option<(u16, String)>) {
    let (frames, close) = read_until_close(&mut ws).await;
    (
        frames
            .iter()
            .filter_map(|v| v["data"]["seq"].as_u64())
            .collect(),
        close,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_while_a_fast_one_gets_everything() {
    // Enough 8 KB updates to fill the socket buffers and the slow client's outbox.
    const MAX: u64 = 20_000;
    let server = start(&[("WS_MAX_FRAME_BYTES", "16384")]).await;
    let (slow, _) = connect(&server, "/ws?project_id=feed").await;
    let (mut fast, _) = connect(&server, "/ws?project_id=feed").await;

    let fast_reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let v = recv(&mut fast).await;
            if v["type"] == "subscribed" {
                continue; // the position of ?project_id=, after the welcome
            }
            if v["data"]["last"] == true {
                break;
            }
            seqs.push(v["data"]["seq"].as_u64().expect("seq"));
        }
        (seqs, fast)
    });

    let pad = "x".repeat(8000);
    let client = reqwest::Client::new();
    let mut slow = Some(slow);
    let mut slow_reader = None;
    let mut dropped = 0;
    let mut sent = 0;
    let mut after_drop = 0;
    while sent < MAX && after_drop < 200 {
        let r = client
            .post(server.url("/publish"))
            .bearer_auth(TOKEN)
            .json(&json!({"project_id": "feed", "data": {"seq": sent, "pad": pad}}))
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.expect("json");
        sent += 1;
        dropped += body["dropped"].as_u64().expect("dropped");
        if dropped > 0 {
            after_drop += 1;
        }
        if dropped > 0 && slow_reader.is_none() {
            // The server gave up on it: read what it still has in flight, then the close.
            slow_reader = slow.take().map(|ws| tokio::spawn(read_to_end(ws)));
        }
    }
    let (status, _) = publish(
        &server,
        json!({"project_id": "feed", "data": {"last": true}}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(dropped, 1, "exactly the slow client was dropped, once");

    let (fast_seqs, mut fast) = fast_reader.await.expect("fast reader");
    assert_eq!(
        fast_seqs,
        (0..sent).collect::<Vec<_>>(),
        "the fast client got every update in order"
    );

    let (slow_seqs, close) = slow_reader
        .expect("slow client was dropped")
        .await
        .expect("slow reader");
    assert!(
        (slow_seqs.len() as u64) < sent,
        "slow client got {} of {sent}",
        slow_seqs.len()
    );
    assert_eq!(
        slow_seqs,
        (0..slow_seqs.len() as u64).collect::<Vec<_>>(),
        "what it got is in order"
    );
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("slow"), "{reason}");
    wait_connections(&server, 1).await;
    assert_usable(&mut fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_closed_and_a_live_one_stays() {
    let server = start(&[
        ("WS_PING_INTERVAL_SECONDS", "1"),
        ("WS_PONG_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    let (live, _) = connect(&server, "/ws").await;
    let (dead, _) = connect(&server, "/ws").await;

    // The live client keeps reading, so its WebSocket layer answers pings.
    let (mut live_tx, mut live_rx) = live.split();
    let pings = tokio::spawn(async move {
        let mut pings = 0;
        let mut pongs = 0;
        while let Some(Ok(m)) = live_rx.next().await {
            match m {
                Message::Ping(_) => pings += 1,
                Message::Text(t) if t.contains("\"pong\"") => {
                    pongs += 1;
                    break;
                }
                _ => {}
            }
        }
        (pings, pongs)
    });

    // The dead one reads nothing (so it never answers) and is closed.
    wait_connections(&server, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, h) = health(&server).await;
    assert_eq!(h["connections"], 1, "the live client is still open");

    use futures_util::SinkExt;
    live_tx
        .send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    let (pings, pongs) = pings.await.expect("reader");
    assert!(pings >= 2, "the quiet live client was pinged ({pings})");
    assert_eq!(pongs, 1);

    let (_, close) = read_to_end(dead).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains("keepalive"), "{reason}");
}
