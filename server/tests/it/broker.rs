//! The cross-task broker with real components: `redis-server`, `ws-server` processes, HAProxy
//! round robin in front (the ALB's stand-in), real WebSocket clients. Each test starts its own
//! Redis and tasks on free ports.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::fleet::*;
use crate::common::{assert_silent, recv, request};
use serde_json::{Value, json};

async fn subscribe_since(ws: &mut crate::common::Ws, project: &str, since: Value) -> Value {
    request(
        ws,
        json!({"action": "subscribe", "project_id": project, "since": since, "request_id": "r"}),
    )
    .await
}

#[tokio::test]
async fn two_tasks_every_subscriber_gets_every_update_in_order_once() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::shared().await;
    let a = Task::start(Some(&redis.url()), &[]).await;
    let b = Task::start(Some(&redis.url()), &[]).await;
    let lb = Haproxy::start(&[a.port, b.port]).await;
    let mut followers = Vec::new();
    for _ in 0..20 {
        followers.push(Follower::start(lb.addr(), proj.to_owned()).await);
    }
    // both tasks hold clients (round robin)
    let (ca, cb) = (a.health().await.unwrap().1, b.health().await.unwrap().1);
    assert!(
        ca["connections"] == 10 && cb["connections"] == 10,
        "{ca} {cb}"
    );
    for n in 1..=200u64 {
        let (s, body) = publish_at(
            &lb.addr(),
            json!({"project_id": proj, "data": {"n": n}}),
            None,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        assert_eq!(body["offset"], n, "{body}");
        assert!(
            body["epoch"].is_string() && body["duplicate"] == false,
            "{body}"
        );
    }
    for (i, f) in followers.into_iter().enumerate() {
        let seen = f.finish(200).await;
        assert_exactly_once(&format!("client {i}"), &seen, 200);
    }
}

#[tokio::test]
async fn a_broadcast_reaches_every_connection_on_every_task_without_position() {
    let redis = Redis::shared().await;
    let a = Task::start(Some(&redis.url()), &[]).await;
    let b = Task::start(Some(&redis.url()), &[]).await;
    a.broker_up().await;
    b.broker_up().await;
    let mut wa = ws_connect(&a.addr(), "/ws").await.unwrap();
    let mut wb = ws_connect(&b.addr(), "/ws").await.unwrap();
    let (s, body) = publish_at(&a.addr(), json!({"data": {"all": true}}), None).await;
    assert_eq!(
        (s, body.clone()),
        (202, json!({"duplicate": false})),
        "{body}"
    );
    for ws in [&mut wa, &mut wb] {
        assert_eq!(
            recv(ws).await,
            json!({"type": "update", "data": {"all": true}})
        );
    }
}

#[tokio::test]
async fn a_user_publish_on_any_task_reaches_that_users_connections_on_every_task() {
    use crate::common::jwt::{SECRET, claims, hs256};
    let (alice, bob): (&str, &str) = (unique("alice").leak(), unique("bob").leak());
    let redis = Redis::shared().await;
    let auth = [("WS_JWT_SECRET", SECRET)];
    let a = Task::start(Some(&redis.url()), &auth).await;
    let b = Task::start(Some(&redis.url()), &auth).await;
    a.broker_up().await;
    b.broker_up().await;
    // alice on both tasks (by header on a, by first frame on b), bob on b only
    let (mut on_a, w) = ws_connect_bearer(&a.addr(), "/ws", &hs256(&claims(alice)))
        .await
        .unwrap();
    assert_eq!(w["user_id"], alice, "{w}");
    let mut on_b = ws_connect(&b.addr(), "/ws").await.unwrap();
    let r = request(
        &mut on_b,
        json!({"action": "authenticate", "token": hs256(&claims(alice)), "request_id": "a"}),
    )
    .await;
    assert_eq!(
        (r["type"].as_str(), &r["user_id"]),
        (Some("authenticated"), &json!(alice)),
        "{r}"
    );
    let (mut bob_b, _) = ws_connect_bearer(&b.addr(), "/ws", &hs256(&claims(bob)))
        .await
        .unwrap();

    // accepted by either task, delivered on both, live-only (no position)
    for (n, via) in [(1, &a), (2, &b)] {
        let (s, body) = publish_at(
            &via.addr(),
            json!({"user_id": alice, "data": {"n": n}}),
            None,
        )
        .await;
        assert_eq!(
            (s, body.clone()),
            (202, json!({"duplicate": false})),
            "{body}"
        );
        let want = json!({"type": "update", "user_id": alice, "data": {"n": n}});
        assert_eq!(recv(&mut on_a).await, want);
        assert_eq!(recv(&mut on_b).await, want);
    }
    assert_silent(&mut bob_b).await;

    // a retried publish with the same Idempotency-Key is delivered once
    for dup in [false, true] {
        let (s, body) = publish_at(
            &b.addr(),
            json!({"user_id": alice, "data": {"n": 3}}),
            Some("job-3"),
        )
        .await;
        assert_eq!((s, &body["duplicate"]), (202, &json!(dup)), "{body}");
    }
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(recv(ws).await["data"]["n"], 3);
        assert_silent(ws).await;
    }

    // alice leaves task b: b gives up her channel, a publish through b still reaches her on a
    drop(on_b);
    let channel = format!("ws:user:{alice}");
    let mut subscribers = None;
    for _ in 0..100 {
        subscribers = redis.cli(&["PUBSUB", "NUMSUB", &channel]).await;
        if subscribers.as_deref().and_then(|o| o.lines().nth(1)) == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        subscribers.as_deref().and_then(|o| o.lines().nth(1)),
        Some("1"),
        "only task a: {subscribers:?}"
    );
    let (s, _) = publish_at(&b.addr(), json!({"user_id": alice, "data": {"n": 4}}), None).await;
    assert_eq!(s, 202);
    assert_eq!(recv(&mut on_a).await["data"]["n"], 4);
    assert_silent(&mut bob_b).await;
}

#[tokio::test]
async fn rolling_replacement_under_steady_publishing_loses_nothing() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::shared().await;
    let url = redis.url();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let mut a = Task::start_on(pa, Some(&url), &[]).await;
    let _b = Task::start_on(pb, Some(&url), &[]).await;
    let lb = Haproxy::start(&[pa, pb, pc]).await;
    let mut followers = Vec::new();
    for _ in 0..20 {
        followers.push(Follower::start(lb.addr(), proj.to_owned()).await);
    }
    let addr = lb.addr();
    let publisher = tokio::spawn(async move {
        let mut top = 0;
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(7) {
            n += 1;
            top = publish_until_accepted(&addr, proj, n).await.0;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        top
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    // the new task comes up, then the old one drains (WS_DRAIN_SECONDS=2)
    let _c = Task::start_on(pc, Some(&url), &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.sigterm();
    assert!(a.wait(25).await, "the old task exits 0");
    let top = publisher.await.unwrap();
    assert!(top > 100, "steady publishing: {top}");
    let mut reconnected = 0;
    for (i, f) in followers.into_iter().enumerate() {
        let seen = f.finish(top).await;
        assert_exactly_once(&format!("client {i}"), &seen, top);
        assert_eq!(seen.reloads, 0, "client {i}: {:?}", seen.recovered);
        reconnected += u32::from(seen.reconnects > 0);
    }
    assert!(
        reconnected >= 5,
        "the clients of the old task reconnected: {reconnected}"
    );
}

#[tokio::test]
async fn recovery_after_the_history_ttl_with_nothing_new_is_complete() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::start().await;
    let t = Task::start(Some(&redis.url()), &[("WS_HISTORY_TTL_SECONDS", "1")]).await;
    let mut last = Value::Null;
    for n in 1..=3 {
        last = publish_at(
            &t.addr(),
            json!({"project_id": proj, "data": {"n": n}}),
            None,
        )
        .await
        .1;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hist = redis.cli(&["EXISTS", &format!("ws:{{{proj}}}:hist")]).await;
    assert_eq!(hist.as_deref(), Some("0"), "the history expired");
    let mut ws = ws_connect(&t.addr(), "/ws").await.unwrap();
    let r = subscribe_since(&mut ws, proj, json!({"offset": 3, "epoch": last["epoch"]})).await;
    assert_eq!(r["type"], "subscribed", "{r}");
    assert_eq!(
        (r["offset"].as_u64(), r["recovered"].as_bool()),
        (Some(3), Some(true)),
        "{r}"
    );
    assert_eq!(r["epoch"], last["epoch"]);
    assert_silent(&mut ws).await;
    // and live updates continue after the position
    publish_at(
        &t.addr(),
        json!({"project_id": proj, "data": {"n": 4}}),
        None,
    )
    .await;
    assert_eq!(recv(&mut ws).await["offset"], 4);
}

#[tokio::test]
async fn unrecoverable_gaps_say_so_and_replay_nothing() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::start().await;
    let t = Task::start(
        Some(&redis.url()),
        &[("WS_HISTORY_SIZE", "5"), ("WS_RECOVERY_MAX", "3")],
    )
    .await;
    let mut epoch = Value::Null;
    for n in 1..=10 {
        epoch = publish_at(
            &t.addr(),
            json!({"project_id": proj, "data": {"n": n}}),
            None,
        )
        .await
        .1["epoch"]
            .clone();
    }
    let mut ws = ws_connect(&t.addr(), "/ws").await.unwrap();
    // trimmed: 3..5 are gone (history keeps 6..10), and 2 is within no cap either
    for (since, why) in [
        (json!({"offset": 4, "epoch": epoch}), "trimmed history"),
        (
            json!({"offset": 6, "epoch": epoch}),
            "more than WS_RECOVERY_MAX=3 missed",
        ),
        (
            json!({"offset": 9, "epoch": "0000000000000000"}),
            "another epoch",
        ),
        (
            json!({"offset": 11, "epoch": epoch}),
            "an offset above the top",
        ),
    ] {
        let r = subscribe_since(&mut ws, proj, since).await;
        assert_eq!(r["type"], "subscribed", "{why}: {r}");
        assert_eq!(r["recovered"], false, "{why}: {r}");
        assert_eq!(
            (r["offset"].as_u64(), &r["epoch"]),
            (Some(10), &epoch),
            "{why}: {r}"
        );
        assert_silent(&mut ws).await;
    }
    // within the history and the cap: exactly the missed ones, then nothing
    let r = subscribe_since(&mut ws, proj, json!({"offset": 7, "epoch": epoch})).await;
    assert_eq!(
        (r["recovered"].as_bool(), r["offset"].as_u64()),
        (Some(true), Some(10)),
        "{r}"
    );
    for o in 8..=10 {
        let u = recv(&mut ws).await;
        assert_eq!(
            (u["type"].as_str(), u["offset"].as_u64()),
            (Some("update"), Some(o)),
            "{u}"
        );
        assert_eq!(u["data"]["n"], o);
    }
    assert_silent(&mut ws).await;
}

#[tokio::test]
async fn a_flushed_broker_gives_a_new_epoch_and_live_clients_are_told_to_reload() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::start().await;
    let t = Task::start(Some(&redis.url()), &[]).await;
    let first = publish_at(
        &t.addr(),
        json!({"project_id": proj, "data": {"n": 1}}),
        None,
    )
    .await
    .1;
    let mut ws = ws_connect(&t.addr(), "/ws").await.unwrap();
    let r = subscribe_since(&mut ws, proj, json!({"offset": 1, "epoch": first["epoch"]})).await;
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(redis.cli(&["FLUSHALL"]).await.as_deref(), Some("OK"));
    let after = publish_at(
        &t.addr(),
        json!({"project_id": proj, "data": {"n": 2}}),
        None,
    )
    .await
    .1;
    assert_ne!(
        after["epoch"], first["epoch"],
        "a new epoch after the flush"
    );
    assert_eq!(after["offset"], 1);
    let tell = recv(&mut ws).await;
    assert_eq!(
        (
            tell["type"].as_str(),
            tell["recovered"].as_bool(),
            &tell["epoch"]
        ),
        (Some("subscribed"), Some(false), &after["epoch"]),
        "{tell}"
    );
    assert!(tell.get("request_id").is_none(), "unsolicited: {tell}");
    let u = recv(&mut ws).await;
    assert_eq!(
        (u["offset"].as_u64(), &u["epoch"]),
        (Some(1), &after["epoch"]),
        "{u}"
    );
    // an old position in the old epoch is not recoverable either
    let r = subscribe_since(&mut ws, proj, json!({"offset": 1, "epoch": first["epoch"]})).await;
    assert_eq!(r["recovered"], false, "{r}");
}

#[tokio::test]
async fn a_publish_racing_the_resubscribe_leaves_no_gap_and_no_duplicate() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::shared().await;
    let a = Task::start(Some(&redis.url()), &[]).await;
    let b = Task::start(Some(&redis.url()), &[]).await;
    let epoch = publish_at(
        &a.addr(),
        json!({"project_id": proj, "data": {"n": 1}}),
        None,
    )
    .await
    .1["epoch"]
        .clone();
    // publishing on task a while clients resubscribe on task b at different moments
    let addr = a.addr();
    let publisher = tokio::spawn(async move {
        for n in 2..=300u64 {
            let (s, _) =
                publish_at(&addr, json!({"project_id": proj, "data": {"n": n}}), None).await;
            assert_eq!(s, 202);
        }
    });
    let mut clients = Vec::new();
    for i in 0..10u64 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let mut ws = ws_connect(&b.addr(), "/ws").await.unwrap();
        let r = subscribe_since(&mut ws, proj, json!({"offset": 1, "epoch": epoch})).await;
        assert_eq!(r["recovered"], true, "client {i}: {r}");
        clients.push(ws);
    }
    publisher.await.unwrap();
    for (i, ws) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.last() != Some(&300) {
            let u = recv(ws).await;
            assert_eq!(u["type"], "update", "client {i}: {u}");
            got.push(u["offset"].as_u64().unwrap());
        }
        assert_eq!(got, (2..=300).collect::<Vec<u64>>(), "client {i}");
        assert_silent(ws).await;
    }
}

#[tokio::test]
async fn an_idempotent_retry_publishes_once() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::shared().await;
    let a = Task::start(Some(&redis.url()), &[]).await;
    let b = Task::start(Some(&redis.url()), &[]).await;
    let mut ws = ws_connect(&a.addr(), "/ws").await.unwrap();
    let r = request(&mut ws, json!({"action": "subscribe", "project_id": proj})).await;
    assert_eq!(r["offset"], 0, "{r}");
    let body = json!({"project_id": proj, "data": {"job": 7}});
    let first = publish_at(&a.addr(), body.clone(), Some("job-7-done")).await;
    // the retry lands on the other task, as a retry through the balancer may
    let again = publish_at(&b.addr(), body.clone(), Some("job-7-done")).await;
    assert_eq!(first.0, 202);
    assert_eq!(again.0, 202);
    assert_eq!(first.1["offset"], again.1["offset"]);
    assert_eq!(
        (
            first.1["duplicate"].as_bool(),
            again.1["duplicate"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(recv(&mut ws).await["offset"], 1);
    assert_silent(&mut ws).await;
    let other = publish_at(&a.addr(), body, Some("job-8-done")).await;
    assert_eq!(other.1["offset"], 2);
    // a malformed key is refused
    let bad = publish_at(
        &a.addr(),
        json!({"project_id": proj, "data": {}}),
        Some("has space"),
    )
    .await;
    assert_eq!(
        (bad.0, bad.1["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
}

#[tokio::test]
async fn a_malformed_since_gets_invalid_since_and_the_connection_stays_usable() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::shared().await;
    let t = Task::start(Some(&redis.url()), &[]).await;
    let mut ws = ws_connect(&t.addr(), "/ws").await.unwrap();
    for since in [
        json!("3"),
        json!(3),
        json!({"offset": -1, "epoch": "abc"}),
        json!({"offset": "3", "epoch": "abc"}),
        json!({"offset": 2.5, "epoch": "abc"}),
        json!({"offset": 3}),
        json!({"offset": 3, "epoch": ""}),
        json!({"offset": 3, "epoch": "no such epoch!"}),
        json!({"offset": 3, "epoch": 12}),
    ] {
        let r = subscribe_since(&mut ws, proj, since.clone()).await;
        assert_eq!(
            (
                r["type"].as_str(),
                r["code"].as_str(),
                r["request_id"].as_str()
            ),
            (Some("error"), Some("invalid_since"), Some("r")),
            "{since}: {r}"
        );
        crate::common::assert_usable(&mut ws).await;
    }
    // not subscribed by the refused requests
    publish_at(&t.addr(), json!({"project_id": proj, "data": {}}), None).await;
    assert_silent(&mut ws).await;
    let r = request(&mut ws, json!({"action": "subscribe", "project_id": proj})).await;
    assert_eq!(
        (r["type"].as_str(), r["offset"].as_u64()),
        (Some("subscribed"), Some(1)),
        "{r}"
    );
}

/// Task a reaches the broker through a proxy that the test cuts; task b keeps publishing. a's
/// clients stay connected, and when the link is back they get what they missed, in order.
#[tokio::test]
async fn a_task_cut_off_its_broker_keeps_its_clients_and_fills_their_gap() {
    let proj: &'static str = unique("proj").leak();
    let redis = Redis::start().await;
    let cut = Cut::start(redis.port).await;
    let a = Task::start(Some(&cut.url()), &[]).await;
    let b = Task::start(Some(&redis.url()), &[]).await;
    a.broker_up().await;
    let mut followers = Vec::new();
    for _ in 0..5 {
        followers.push(Follower::start(a.addr(), proj.to_owned()).await);
    }
    for n in 1..=20 {
        publish_until_accepted(&b.addr(), proj, n).await;
    }
    cut.sever();
    wait_state(&a, "down").await;
    let (status, h) = a.health().await.unwrap();
    assert_eq!(
        status, 200,
        "a task whose broker is down stays in the balancer: {h}"
    );
    assert!(h["broker"]["error"].is_string(), "{h}");
    let (s, body) = publish_at(
        &a.addr(),
        json!({"project_id": proj, "data": {}}),
        Some("while-down"),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (503, Some("broker_unavailable")),
        "{body}"
    );
    for n in 21..=60 {
        publish_until_accepted(&b.addr(), proj, n).await;
    }
    // the retried publish goes through once the broker is back: one more update
    cut.restore();
    wait_state(&a, "up").await;
    let (s, body) = publish_at(
        &a.addr(),
        json!({"project_id": proj, "data": {}}),
        Some("while-down"),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let top = body["offset"].as_u64().unwrap();
    assert_eq!(top, 61);
    for (i, f) in followers.into_iter().enumerate() {
        let seen = f.finish(top).await;
        assert_exactly_once(&format!("client {i} of the cut-off task"), &seen, top);
        assert_eq!((seen.reconnects, seen.reloads), (0, 0), "client {i}");
    }
}

async fn wait_state(t: &Task, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((_, h)) = t.health().await
            && h["broker"]["state"] == state
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker state {state} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The broker restarts (keeping its data) and later stops answering (SIGSTOP) while a backend
/// keeps publishing with retries: publishes get 503 meanwhile, delivery resumes after, and every
/// client ends with every accepted update exactly once.
#[tokio::test]
async fn broker_restart_and_unreachable_broker_lose_no_update() {
    let proj: &'static str = unique("proj").leak();
    let mut redis = Redis::start_persistent().await;
    let a = Task::start(Some(&redis.url()), &[]).await;
    let b = Task::start(Some(&redis.url()), &[]).await;
    let lb = Haproxy::start(&[a.port, b.port]).await;
    let mut followers = Vec::new();
    for _ in 0..10 {
        followers.push(Follower::start(lb.addr(), proj.to_owned()).await);
    }
    let addr = lb.addr();
    let publisher = tokio::spawn(async move {
        let (mut top, mut retried) = (0, 0);
        for n in 1..=150 {
            let (o, tries) = publish_until_accepted(&addr, proj, n).await;
            assert_eq!(o, n, "offsets stay contiguous across the outages");
            top = o;
            retried += tries - 1;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        (top, retried)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.freeze();
    wait_state(&a, "down").await;
    let (s, h) = a.health().await.unwrap();
    assert_eq!(s, 200, "{h}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.thaw();
    let (top, retried) = publisher.await.unwrap();
    assert!(
        retried > 0,
        "some publishes were refused while the broker was away"
    );
    for (i, f) in followers.into_iter().enumerate() {
        let seen = f.finish(top).await;
        assert_exactly_once(&format!("client {i}"), &seen, top);
        assert_eq!(seen.reloads, 0, "client {i}");
    }
}

#[tokio::test]
async fn cluster_mode_two_tasks_deliver_and_recover_across_slots() {
    let cluster = RedisCluster::start().await;
    let env = [("WS_REDIS_CLUSTER", "true")];
    let a = Task::start(Some(&cluster.url()), &env).await;
    let b = Task::start(Some(&cluster.url()), &env).await;
    let lb = Haproxy::start(&[a.port, b.port]).await;
    // projects whose keys live on different nodes
    let mut projects: Vec<String> = Vec::new();
    let mut ports = std::collections::HashSet::new();
    for i in 0..100 {
        let p = format!("cp{i}");
        if ports.insert(cluster.port_of(&format!("ws:{{{p}}}:pos")).await) {
            projects.push(p);
        }
        if projects.len() == 3 {
            break;
        }
    }
    assert_eq!(projects.len(), 3, "one project per node");
    let mut followers = Vec::new();
    for p in &projects {
        for _ in 0..4 {
            followers.push((p.clone(), Follower::start(lb.addr(), p.clone()).await));
        }
    }
    for n in 1..=30 {
        for p in &projects {
            let (o, _) = publish_until_accepted(&lb.addr(), p, n).await;
            assert_eq!(o, n);
        }
    }
    for (p, f) in followers {
        let seen = f.finish(30).await;
        assert_exactly_once(&format!("a client of {p}"), &seen, 30);
    }
    // recovery reads the history from the project's own node
    let mut ws = ws_connect(&lb.addr(), "/ws").await.unwrap();
    let (_, body) = publish_at(
        &lb.addr(),
        json!({"project_id": projects[2], "data": {}}),
        None,
    )
    .await;
    let r = subscribe_since(
        &mut ws,
        &projects[2],
        json!({"offset": 28, "epoch": body["epoch"]}),
    )
    .await;
    assert_eq!(
        (r["recovered"].as_bool(), r["offset"].as_u64()),
        (Some(true), Some(31)),
        "{r}"
    );
    for o in 29..=31 {
        assert_eq!(recv(&mut ws).await["offset"], o);
    }
}

#[tokio::test]
async fn the_drain_spreads_its_closes_and_tells_clients_to_reconnect_with_jitter() {
    let redis = Redis::start().await;
    let mut t = Task::start(Some(&redis.url()), &[("WS_DRAIN_SECONDS", "3")]).await;
    let mut clients = Vec::new();
    for _ in 0..30 {
        clients.push(ws_connect(&t.addr(), "/ws").await.unwrap());
    }
    let signalled = Instant::now();
    t.sigterm();
    let mut closes = Vec::new();
    for mut ws in clients {
        closes.push(tokio::spawn(async move {
            let (frames, close) = crate::common::read_until_close(&mut ws).await;
            (signalled.elapsed(), frames, close)
        }));
    }
    let mut times = Vec::new();
    for c in closes {
        let (at, frames, close) = c.await.unwrap();
        assert_eq!(close.map(|c| c.0), Some(1001));
        let last = frames.last().cloned().unwrap_or(Value::Null);
        assert_eq!(
            (
                last["type"].as_str(),
                last["reason"].as_str(),
                last["jitter_ms"].as_u64()
            ),
            (Some("reconnect"), Some("draining"), Some(2000)),
            "{frames:?}"
        );
        times.push(at);
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    assert!(
        last < Duration::from_secs(5),
        "every close within the window: {last:?}"
    );
    assert!(
        last - first > Duration::from_millis(1000),
        "closes spread over the 3 s window, not at once: {first:?}..{last:?}"
    );
    assert!(t.wait(10).await);
}

#[tokio::test]
async fn a_reconnect_wave_beyond_the_connect_rate_gets_503_connect_rate() {
    let t = Task::start(None, &[("WS_CONNECT_RATE", "5")]).await;
    let mut refused = 0;
    let mut admitted = Vec::new();
    for _ in 0..20 {
        match tokio_tungstenite::connect_async(format!("ws://{}/ws", t.addr())).await {
            Ok((ws, _)) => admitted.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 503);
                assert_eq!(r.headers()["retry-after"], "1");
                let body: Value = serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["code"], "connect_rate", "{body}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        (5..=7).contains(&admitted.len()),
        "admitted {}",
        admitted.len()
    );
    assert_eq!(refused + admitted.len(), 20);
    // a second later the task admits again
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ws_connect(&t.addr(), "/ws").await.is_ok());
}

/// TLS as ElastiCache requires it: the task verifies the broker's certificate against the
/// system roots (`SSL_CERT_FILE`, which the image sets), and refuses a broker it cannot verify.
#[tokio::test]
async fn a_tls_broker_is_verified_and_delivers() {
    let (redis, ca) = Redis::start_tls().await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = ca.display().to_string();
    let t = Task::start(Some(&url), &[("SSL_CERT_FILE", ca.as_str())]).await;
    t.broker_up().await;
    let proj = unique("tls");
    let mut ws = ws_connect(&t.addr(), "/ws").await.unwrap();
    let r = request(&mut ws, json!({"action": "subscribe", "project_id": proj})).await;
    assert_eq!(r["offset"], 0, "{r}");
    let (s, body) = publish_at(
        &t.addr(),
        json!({"project_id": proj, "data": {"tls": true}}),
        None,
    )
    .await;
    assert_eq!((s, body["offset"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(recv(&mut ws).await["data"]["tls"], true);

    // a task with only the public roots (not the broker's private CA) never talks to it
    let untrusting = Task::start(
        Some(&url),
        &[("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, h) = untrusting.health().await.unwrap();
    assert_eq!(h["broker"]["state"], "down", "{h}");
    let (s, body) = publish_at(
        &untrusting.addr(),
        json!({"project_id": proj, "data": {}}),
        None,
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (503, Some("broker_unavailable")),
        "{body}"
    );
}
