//! Authentication through real WebSocket clients: every way a token can be wrong, refused by
//! header (401) and by first frame (error, then 1008); valid tokens by both; refresh and
//! expiry; grants; per-user publish; a JWKS served on 127.0.0.1 with key rotation.

#![allow(clippy::unwrap_used)] // a test failing on its own setup says so well enough

use std::time::{Duration, Instant};

use crate::common::jwt::{
    AUDIENCE, ISSUER, JwksServer, Key, SECRET, claims, hs256, hs256_with, now, unsigned, with,
};
use crate::common::*;
use serde_json::{Value, json};

async fn auth_server(jwks: &JwksServer, extra: &[(&str, &str)]) -> TestServer {
    let mut vars = vec![
        ("WS_JWT_SECRET", SECRET),
        ("WS_JWT_JWKS_URL", jwks.url.as_str()),
        ("WS_JWT_ISSUER", ISSUER),
        ("WS_JWT_AUDIENCE", AUDIENCE),
    ];
    vars.extend_from_slice(extra);
    start(&vars).await
}

async fn authenticate(ws: &mut Ws, token: &str) -> Value {
    request(
        ws,
        json!({"action": "authenticate", "token": token, "request_id": "auth"}),
    )
    .await
}

#[tokio::test]
async fn refused_tokens_are_named_by_header_and_by_frame() {
    let rsa = Key::rsa("k1");
    let ec = Key::ec("e1");
    // Same key id as the real key, another private key: a forgery.
    let forger = Key::rsa("k1");
    let jwks = JwksServer::start(&[&rsa, &ec]).await;
    let server = auth_server(&jwks, &[]).await;
    let c = claims("alice");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "forged HS256 signature",
            hs256_with(b"another-secret-that-is-long-enough-012345", &c),
            "invalid_token",
            "signature",
        ),
        (
            "forged RS256 signature",
            forger.sign(&c),
            "invalid_token",
            "signature",
        ),
        (
            "wrong key id",
            rsa.sign_as("k-unknown", &c),
            "invalid_token",
            "unknown key id",
        ),
        (
            "alg none",
            unsigned(&c),
            "invalid_token",
            "not a signed JWT",
        ),
        (
            "HS/RS confusion: HS256 keyed with the RSA public key",
            hs256_with(rsa.public_pem.as_bytes(), &c),
            "invalid_token",
            "signature",
        ),
        (
            "RS256 naming the EC key",
            rsa.sign_as("e1", &c),
            "invalid_token",
            "ES256 key",
        ),
        (
            "expired",
            hs256(&with(c.clone(), json!({"exp": now() - 120}))),
            "token_expired",
            "expired",
        ),
        (
            "not yet valid",
            hs256(&with(c.clone(), json!({"nbf": now() + 600}))),
            "invalid_token",
            "not valid yet",
        ),
        (
            "wrong issuer",
            hs256(&with(c.clone(), json!({"iss": "https://evil.test"}))),
            "invalid_token",
            "issuer",
        ),
        (
            "wrong audience",
            hs256(&with(c.clone(), json!({"aud": "someone-else"}))),
            "invalid_token",
            "audience",
        ),
        (
            "missing sub",
            hs256(&with(c.clone(), json!({"sub": null}))),
            "invalid_token",
            "missing claim sub",
        ),
        (
            "missing exp",
            hs256(&with(c.clone(), json!({"exp": null}))),
            "invalid_token",
            "missing claim exp",
        ),
        (
            "unknown queue in the grants",
            hs256(&with(c.clone(), json!({"queues": ["dev", "payroll"]}))),
            "invalid_token",
            "payroll",
        ),
        (
            "not a JWT",
            "hello".to_owned(),
            "invalid_token",
            "not a signed JWT",
        ),
    ];
    for (name, token, code, why) in &cases {
        let bearer = format!("Bearer {token}");
        match connect_with(&server, "/ws", &[("authorization", &bearer)]).await {
            Ok(_) => panic!("{name}: accepted by header"),
            Err((status, body)) => {
                assert_eq!(status, 401, "{name}: {body}");
                assert_eq!(body["code"], *code, "{name}: {body}");
                let error = body["error"].as_str().unwrap_or_default();
                assert!(error.contains(why), "{name}: {body}");
            }
        }
        let (mut ws, welcome) = connect(&server, "/ws").await;
        assert!(welcome["user_id"].is_null(), "{welcome}");
        let r = authenticate(&mut ws, token).await;
        assert_eq!(r["type"], "error", "{name}: {r}");
        assert_eq!(r["code"], *code, "{name}: {r}");
        assert_eq!(r["request_id"], "auth");
        assert!(r["message"].as_str().unwrap().contains(why), "{name}: {r}");
        let (_, close) = read_until_close(&mut ws).await;
        let (close_code, reason) = close.unwrap_or_else(|| panic!("{name}: no close frame"));
        assert_eq!(close_code, 1008, "{name}");
        assert!(reason.starts_with("auth failed: "), "{name}: {reason}");
    }
    let m = &server.state.metrics;
    assert_eq!(
        m.auth_failures.load(std::sync::atomic::Ordering::Relaxed),
        2 * cases.len() as u64
    );
}

#[tokio::test]
async fn a_valid_token_by_header_or_by_message_authenticates() {
    let rsa = Key::rsa("k1");
    let ec = Key::ec("e1");
    let jwks = JwksServer::start(&[&rsa, &ec]).await;
    let server = auth_server(&jwks, &[]).await;

    let c = claims("alice");
    let (mut ws, welcome) = connect_bearer(&server, "/ws?project_id=p1", &hs256(&c)).await;
    assert_eq!(welcome["user_id"], "alice", "{welcome}");
    assert_eq!(welcome["expires_at"], c["exp"]);
    assert_eq!(welcome["subscriptions"], json!(["p1"]));
    expect_position(&mut ws, "p1").await;
    assert_usable(&mut ws).await;
    let r = authenticate(&mut ws, &hs256(&c)).await;
    assert_eq!(r["code"], "already_authenticated", "{r}");

    let (mut ws, welcome) = connect_bearer(&server, "/ws", &rsa.sign(&claims("bob"))).await;
    assert_eq!(welcome["user_id"], "bob");
    assert_usable(&mut ws).await;

    let c = claims("carol");
    let (mut ws, welcome) = connect(&server, "/ws?project_id=p1").await;
    assert!(welcome["user_id"].is_null() && welcome["expires_at"].is_null());
    assert_eq!(welcome["subscriptions"], json!([]));
    assert_eq!(welcome["auth_timeout_seconds"], 10);
    let r = authenticate(&mut ws, &ec.sign(&c)).await;
    assert_eq!(
        r,
        json!({"type": "authenticated", "request_id": "auth", "user_id": "carol",
               "expires_at": c["exp"], "projects": ["p1"], "queues": ["dev"],
               "subscriptions": ["p1"]})
    );
    expect_position(&mut ws, "p1").await;
    assert_usable(&mut ws).await;
}

#[tokio::test]
async fn before_authenticating_a_client_gets_nothing_and_is_closed_after_the_timeout() {
    let server = start(&[("WS_JWT_SECRET", SECRET), ("WS_AUTH_TIMEOUT_SECONDS", "2")]).await;
    let started = Instant::now();
    let (mut ws, welcome) = connect(&server, "/ws?project_id=p1").await;
    assert_eq!(welcome["auth_timeout_seconds"], 2);
    for req in [
        json!({"action": "ping", "request_id": 1}),
        json!({"action": "subscribe", "project_id": "p1", "request_id": 2}),
        json!({"action": "forward", "type": "dev", "data": {}, "request_id": 3}),
        json!({"action": "refresh", "token": hs256(&claims("a")), "request_id": 4}),
    ] {
        let r = request(&mut ws, req.clone()).await;
        assert_eq!(r["code"], "unauthenticated", "{req}: {r}");
        assert_eq!(r["request_id"], req["request_id"]);
    }
    // Neither broadcasts nor the project's updates reach it.
    let (_, d) = publish(&server, json!({"data": {"n": 1}})).await;
    assert_eq!(d["delivered"], 0, "{d}");
    let (_, d) = publish(&server, json!({"project_id": "p1", "data": {"n": 2}})).await;
    assert_eq!(d["delivered"], 0, "{d}");
    let (frames, close) = read_until_close(&mut ws).await;
    assert!(frames.is_empty(), "{frames:?}");
    let (code, reason) = close.expect("close frame");
    assert_eq!(code, 1008);
    assert!(reason.starts_with("auth timeout"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refresh_in_time_keeps_the_connection_and_a_refused_refresh_changes_nothing() {
    let server = start(&[
        ("WS_JWT_SECRET", SECRET),
        ("WS_AUTH_EXPIRY_WARNING_SECONDS", "2"),
    ])
    .await;
    let exp = now() + 4;
    let first = hs256(&with(claims("alice"), json!({"exp": exp})));
    let (mut ws, _) = connect_bearer(&server, "/ws", &first).await;

    // Another user's token, even one granting everything, is refused and changes nothing.
    let mallory = hs256(&with(claims("mallory"), json!({"projects": ["*"]})));
    let r = request(
        &mut ws,
        json!({"action": "refresh", "token": mallory, "request_id": "r1"}),
    )
    .await;
    assert_eq!(r["code"], "invalid_token", "{r}");
    assert!(r["message"].as_str().unwrap().contains("same user"), "{r}");
    let forged = hs256_with(
        b"not-the-server-secret-but-long-enough-0123",
        &claims("alice"),
    );
    let r = request(&mut ws, json!({"action": "refresh", "token": forged})).await;
    assert_eq!(r["code"], "invalid_token", "{r}");
    let r = request(&mut ws, json!({"action": "subscribe", "project_id": "p9"})).await;
    assert_eq!(
        r["code"], "forbidden",
        "the refused refresh must not widen grants: {r}"
    );

    let warning = recv(&mut ws).await;
    assert_eq!(warning["type"], "token_expiring", "{warning}");
    assert_eq!(warning["expires_at"], exp);
    assert!(warning["seconds_left"].as_u64().unwrap() <= 2, "{warning}");

    let new_exp = now() + 600;
    let second = hs256(&with(
        claims("alice"),
        json!({"exp": new_exp, "projects": ["p1", "p9"]}),
    ));
    let r = request(
        &mut ws,
        json!({"action": "refresh", "token": second, "request_id": "r2"}),
    )
    .await;
    assert_eq!(r["type"], "refreshed", "{r}");
    assert_eq!(r["request_id"], "r2");
    assert_eq!(r["expires_at"], new_exp);
    assert_eq!(r["projects"], json!(["p1", "p9"]));

    // Past the first token's expiry the connection is still open, with the new grants.
    tokio::time::sleep(Duration::from_secs((exp + 2).saturating_sub(now()))).await;
    assert_usable(&mut ws).await;
    let r = request(&mut ws, json!({"action": "subscribe", "project_id": "p9"})).await;
    assert_eq!(r["type"], "subscribed", "{r}");
}

#[tokio::test]
async fn a_token_that_expires_while_connected_is_warned_then_closed() {
    let server = start(&[
        ("WS_JWT_SECRET", SECRET),
        ("WS_AUTH_EXPIRY_WARNING_SECONDS", "1"),
    ])
    .await;
    let exp = now() + 3;
    let (mut ws, _) = connect(&server, "/ws").await;
    let r = authenticate(&mut ws, &hs256(&with(claims("alice"), json!({"exp": exp})))).await;
    assert_eq!(r["type"], "authenticated", "{r}");
    let (frames, close) = read_until_close(&mut ws).await;
    assert!(
        frames.iter().any(|f| f["type"] == "token_expiring"),
        "{frames:?}"
    );
    assert_eq!(
        close,
        Some((1008, "token expired: refresh before expires_at".to_owned()))
    );
    assert!(now() >= exp && now() <= exp + 2);
}

#[tokio::test]
async fn grants_limit_subscribe_connect_and_forward() {
    let server = start(&[("WS_JWT_SECRET", SECRET)]).await;
    let token = hs256(&claims("alice"));
    let (mut ws, _) = connect_bearer(&server, "/ws", &token).await;
    let r = request(&mut ws, json!({"action": "subscribe", "project_id": "p1"})).await;
    assert_eq!(r["type"], "subscribed", "{r}");
    let r = request(
        &mut ws,
        json!({"action": "subscribe", "project_id": "p2", "request_id": "s2"}),
    )
    .await;
    assert_eq!(
        (&r["code"], &r["request_id"]),
        (&json!("forbidden"), &json!("s2"))
    );
    for f in [
        json!({"action": "forward", "type": "ops", "data": {}}),
        json!({"action": "forward", "type": "dev", "project_id": "p2", "data": {}}),
        json!({"action": "forward", "type": "dev", "data": {"project_id": "p2"}}),
    ] {
        let r = request(&mut ws, f.clone()).await;
        assert_eq!(r["code"], "forbidden", "{f}: {r}");
    }
    // Granted: it gets as far as the queue (not configured on this server).
    let r = request(
        &mut ws,
        json!({"action": "forward", "type": "dev", "project_id": "p1", "data": {}}),
    )
    .await;
    assert_eq!(r["code"], "queue_not_configured", "{r}");

    // ?project_id= not granted: 403 by header; by frame, an error after `authenticated`.
    let bearer = format!("Bearer {token}");
    let refused = connect_with(&server, "/ws?project_id=p2", &[("authorization", &bearer)]).await;
    match refused {
        Err((403, body)) => assert_eq!(body["code"], "forbidden", "{body}"),
        other => panic!("expected 403, got {:?}", other.map(|(_, w)| w)),
    }
    let (mut ws2, _) = connect(&server, "/ws?project_id=p2").await;
    let r = authenticate(&mut ws2, &token).await;
    assert_eq!(r["type"], "authenticated");
    assert_eq!(r["subscriptions"], json!([]));
    let e = recv(&mut ws2).await;
    assert_eq!(e["code"], "forbidden", "{e}");
    let (_, d) = publish(&server, json!({"project_id": "p2", "data": {}})).await;
    assert_eq!(d["delivered"], 0);

    // "*" grants every project and queue.
    let all = hs256(&with(
        claims("root"),
        json!({"projects": ["*"], "queues": ["*"]}),
    ));
    let (mut ws3, w) = connect_bearer(&server, "/ws?project_id=anything", &all).await;
    assert_eq!(w["subscriptions"], json!(["anything"]));
    expect_position(&mut ws3, "anything").await;
    let r = request(
        &mut ws3,
        json!({"action": "forward", "type": "ops", "data": {}}),
    )
    .await;
    assert_eq!(r["code"], "queue_not_configured", "{r}");
}

#[tokio::test]
async fn a_publish_to_a_user_reaches_each_of_their_connections_only() {
    let server = start(&[("WS_JWT_SECRET", SECRET)]).await;
    let (mut a1, _) = connect_bearer(&server, "/ws", &hs256(&claims("alice"))).await;
    let (mut a2, _) = connect(&server, "/ws").await;
    let r = authenticate(&mut a2, &hs256(&claims("alice"))).await;
    assert_eq!(r["type"], "authenticated");
    let (mut b, _) = connect_bearer(&server, "/ws?project_id=p1", &hs256(&claims("bob"))).await;
    expect_position(&mut b, "p1").await;

    let (status, d) = publish(
        &server,
        json!({"user_id": "alice", "data": {"job": "42", "progress": 50}}),
    )
    .await;
    assert_eq!((status, &d["delivered"]), (202, &json!(2)), "{d}");
    for ws in [&mut a1, &mut a2] {
        assert_eq!(
            recv(ws).await,
            json!({"type": "update", "user_id": "alice", "data": {"job": "42", "progress": 50}})
        );
    }
    assert_silent(&mut b).await;
    let (status, d) = publish(
        &server,
        json!({"user_id": "alice", "project_id": "p1", "data": {}}),
    )
    .await;
    assert_eq!((status, &d["code"]), (400, &json!("invalid_field")), "{d}");
    drop(a1);
    drop(a2);
    // Closed connections leave the user's index.
    wait_connections(&server, 1).await;
    let (_, d) = publish(&server, json!({"user_id": "alice", "data": {}})).await;
    assert_eq!(d["delivered"], 0, "{d}");
}

#[tokio::test]
async fn jwks_keys_are_cached_refetched_on_rotation_and_never_hammered() {
    let old = Key::rsa("2026-01");
    let new = Key::ec("2026-02");
    let jwks = JwksServer::start(&[&old]).await;
    let server = start(&[("WS_JWT_JWKS_URL", jwks.url.as_str())]).await;
    let mut fetched = None;
    for _ in 0..2 {
        let (mut ws, w) = connect_bearer(&server, "/ws", &old.sign(&claims("alice"))).await;
        assert_eq!(w["user_id"], "alice");
        fetched.get_or_insert_with(Instant::now);
        assert_usable(&mut ws).await;
    }
    assert_eq!(jwks.fetches(), 1, "the second token must use the cache");
    let fetched = fetched.unwrap();

    // The provider rotates: only the new key is published.
    jwks.rotate(&[&new]);
    tokio::time::sleep(Duration::from_millis(5500).saturating_sub(fetched.elapsed())).await;
    let (_, w) = connect_bearer(&server, "/ws", &new.sign(&claims("bob"))).await;
    assert_eq!(w["user_id"], "bob");
    assert_eq!(
        jwks.fetches(),
        2,
        "an unknown kid fetches the document again"
    );

    // The retired key is gone; made-up key ids are refused without fetching every time.
    let mut tokens = vec![old.sign(&claims("alice"))];
    tokens.extend((0..5).map(|i| new.sign_as(&format!("made-up-{i}"), &claims("eve"))));
    for t in &tokens {
        let bearer = format!("Bearer {t}");
        let r = connect_with(&server, "/ws", &[("authorization", &bearer)]).await;
        match r {
            Err((401, body)) => assert!(
                body["error"].as_str().unwrap().contains("unknown key id"),
                "{body}"
            ),
            other => panic!("expected 401, got {:?}", other.map(|(_, w)| w)),
        }
    }
    assert_eq!(jwks.fetches(), 2, "misses within 5 s must not refetch");

    // With only a JWKS configured, HS256 is refused outright, whatever key signed it.
    for t in [
        hs256(&claims("alice")),
        hs256_with(old.public_pem.as_bytes(), &claims("alice")),
    ] {
        let bearer = format!("Bearer {t}");
        let r = connect_with(&server, "/ws", &[("authorization", &bearer)]).await;
        match r {
            Err((401, body)) => assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("HS256 tokens are not accepted"),
                "{body}"
            ),
            other => panic!("expected 401, got {:?}", other.map(|(_, w)| w)),
        }
    }
}
