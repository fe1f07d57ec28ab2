//! `rolling`: N clients follow K projects through a load balancer while a publisher posts at a
//! steady rate (retrying with the same `Idempotency-Key`, as a backend does), and meanwhile the
//! caller (`scripts/bench-broker`) replaces one task behind the balancer. Clients behave as
//! `docs/protocol.md` tells them to: after a close they wait a random delay within the
//! `reconnect` frame's `jitter_ms`, back off after a refused connect, and resubscribe with
//! `since`. Reports lost and duplicated updates over all clients, the share of resubscribes that
//! were `recovered:true`, and how long the reconnect wave took until every client was back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::value_parser;
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Report, ServerArgs};
use crate::{net, wire};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Clients (one connection each)
    #[arg(short = 'n', long, default_value_t = 5000, value_parser = value_parser!(u64).range(1..=20_000))]
    subscribers: u64,
    /// Projects the clients are spread over
    #[arg(short = 'k', long, default_value_t = 10)]
    projects: u64,
    /// Publishes per second, round robin over the projects
    #[arg(short = 'r', long, default_value_t = 100)]
    rate: u64,
    /// Seconds of publishing
    #[arg(short = 'd', long, default_value_t = 20)]
    duration: u64,
    /// The server's PUBLISH_TOKEN
    #[arg(long, env = "PUBLISH_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Default)]
struct Counts {
    duplicates: AtomicU64,
    holes: AtomicU64,
    resubscribes: AtomicU64,
    recovered: AtomicU64,
    reloads: AtomicU64,
    reconnects: AtomicU64,
    refused_connects: AtomicU64,
    /// Milliseconds since the start: the first close, and the last resubscribe answered.
    first_down_ms: AtomicU64,
    last_back_ms: AtomicU64,
}

/// A rough uniform random number below `n`, from the clock and a counter: jitter only.
fn jitter(n: u64, seed: &AtomicU64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed) ^ now;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % n.max(1)
}

pub async fn run(args: Args) -> Result<Report> {
    let target = args.server.server;
    crate::common::ensure_fds(args.subscribers)?;
    let start = Instant::now();
    let counts = Arc::new(Counts {
        first_down_ms: AtomicU64::new(u64::MAX),
        ..Counts::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let seed = Arc::new(AtomicU64::new(start.elapsed().as_nanos() as u64 | 1));
    let lasts: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.subscribers).map(|_| AtomicU64::new(0)).collect());
    let ready = Arc::new(AtomicU64::new(0));

    let mut clients = Vec::new();
    for i in 0..args.subscribers {
        let project = wire::project_name(i % args.projects);
        let (counts, stop, seed, lasts, ready) = (
            counts.clone(),
            stop.clone(),
            seed.clone(),
            lasts.clone(),
            ready.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut since: Option<(u64, String)> = None;
            let mut attempt = 0u32;
            let mut down_since: Option<Instant> = None;
            while !stop.load(Relaxed) {
                let mut ws = match net::connect(&target, "/ws", None).await {
                    Ok(ws) => ws,
                    Err(_) => {
                        counts.refused_connects.fetch_add(1, Relaxed);
                        attempt += 1;
                        let cap = (500u64 << attempt.min(6)).min(30_000);
                        tokio::time::sleep(Duration::from_millis(jitter(cap, &seed))).await;
                        continue;
                    }
                };
                attempt = 0;
                if net::expect(&mut ws, "welcome").await.is_err() {
                    continue;
                }
                let mut req = json!({"action": "subscribe", "project_id": project});
                if let Some((offset, epoch)) = &since {
                    req["since"] = json!({"offset": offset, "epoch": epoch});
                }
                if ws.send(Message::text(req.to_string())).await.is_err() {
                    continue;
                }
                let mut wait_ms = 2000;
                loop {
                    let text = match net::next_text(&mut ws).await {
                        Ok(t) => t,
                        Err(_) => break,
                    };
                    let last = &lasts[i as usize];
                    match wire::msg_type(&text) {
                        Some("update") => {
                            let Some(o) = wire::u64_field(&text, "offset") else {
                                continue;
                            };
                            let l = last.load(Relaxed);
                            if o <= l {
                                counts.duplicates.fetch_add(1, Relaxed);
                            } else {
                                if o > l + 1 {
                                    counts.holes.fetch_add(o - l - 1, Relaxed);
                                }
                                last.store(o, Relaxed);
                            }
                            if let Some((s, _)) = since.as_mut() {
                                *s = o.max(*s);
                            }
                        }
                        Some("subscribed") => {
                            let offset = wire::u64_field(&text, "offset").unwrap_or(0);
                            let epoch = wire::str_field(&text, "epoch").unwrap_or("").to_owned();
                            if since.is_some() {
                                counts.resubscribes.fetch_add(1, Relaxed);
                                if text.contains("\"recovered\":true") {
                                    counts.recovered.fetch_add(1, Relaxed);
                                } else {
                                    // told to reload: the position jumps, nothing is missing
                                    counts.reloads.fetch_add(1, Relaxed);
                                    last.store(offset, Relaxed);
                                }
                            } else {
                                last.store(offset, Relaxed);
                                ready.fetch_add(1, Relaxed);
                            }
                            since = Some((last.load(Relaxed), epoch));
                            if down_since.take().is_some() {
                                counts
                                    .last_back_ms
                                    .fetch_max(start.elapsed().as_millis() as u64, Relaxed);
                            }
                        }
                        Some("reconnect") => {
                            wait_ms = wire::u64_field(&text, "jitter_ms").unwrap_or(2000);
                        }
                        _ => {}
                    }
                }
                if stop.load(Relaxed) {
                    break;
                }
                counts.reconnects.fetch_add(1, Relaxed);
                counts
                    .first_down_ms
                    .fetch_min(start.elapsed().as_millis() as u64, Relaxed);
                down_since = Some(Instant::now());
                tokio::time::sleep(Duration::from_millis(jitter(wait_ms, &seed))).await;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Relaxed) < args.subscribers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let subscribed_s = start.elapsed().as_secs_f64();
    eprintln!(
        "rolling: {} clients subscribed in {subscribed_s:.1} s; publishing",
        ready.load(Relaxed)
    );
    println!("{}", json!({"event": "subscribed", "at_s": subscribed_s}));

    // the publisher
    let tops: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.projects).map(|_| AtomicU64::new(0)).collect());
    let retries = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let url = target.http_url("/publish");
    let pub_start = Instant::now();
    let total = args.rate * args.duration;
    let inflight = Arc::new(tokio::sync::Semaphore::new(64));
    let mut handles = Vec::new();
    let publish_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    for n in 0..total {
        let due = pub_start + Duration::from_secs_f64(n as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = inflight.clone().acquire_owned().await?;
        let (http, url, token, tops, retries, errors) = (
            http.clone(),
            url.clone(),
            args.token.clone(),
            tops.clone(),
            retries.clone(),
            publish_errors.clone(),
        );
        let k = n % args.projects;
        handles.push(tokio::spawn(async move {
            let _permit = permit;
            let key = format!("rolling-{n}-{}", pub_start.elapsed().as_nanos());
            let body = json!({"project_id": wire::project_name(k), "data": {"n": n}});
            for _ in 0..200 {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("idempotency-key", &key)
                    .timeout(Duration::from_secs(5))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status().as_u16() == 202
                    && let Ok(text) = r.text().await
                {
                    if let Some(o) = wire::u64_field(&text, "offset") {
                        tops[k as usize].fetch_max(o, Relaxed);
                    }
                    return;
                }
                retries.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            errors
                .lock()
                .await
                .push(format!("publish {n} never accepted"));
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let publish_s = pub_start.elapsed().as_secs_f64();
    // every client catches up to its project's top (or 30 s pass)
    let caught_up = |lasts: &Vec<AtomicU64>| {
        (0..args.subscribers).all(|i| {
            lasts[i as usize].load(Relaxed) >= tops[(i % args.projects) as usize].load(Relaxed)
        })
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !caught_up(&lasts) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Relaxed);
    let behind: u64 = (0..args.subscribers)
        .map(|i| {
            tops[(i % args.projects) as usize]
                .load(Relaxed)
                .saturating_sub(lasts[i as usize].load(Relaxed))
        })
        .sum();
    for c in clients {
        c.abort();
    }
    let c = &counts;
    let lost = c.holes.load(Relaxed) + behind;
    let resub = c.resubscribes.load(Relaxed);
    let recovered = c.recovered.load(Relaxed);
    let (down, back) = (c.first_down_ms.load(Relaxed), c.last_back_ms.load(Relaxed));
    let wave_s = if down == u64::MAX {
        0.0
    } else {
        back.saturating_sub(down) as f64 / 1000.0
    };
    let expected: u64 = (0..args.subscribers)
        .map(|i| tops[(i % args.projects) as usize].load(Relaxed))
        .sum();
    let result = json!({
        "scenario": "rolling", "subscribers": args.subscribers, "projects": args.projects,
        "rate": args.rate, "publishes": total, "publish_seconds": publish_s,
        "publish_retries": retries.load(Relaxed), "publish_errors": publish_errors.lock().await.len(),
        "expected_deliveries": expected, "lost": lost, "duplicates": c.duplicates.load(Relaxed),
        "resubscribes": resub, "recovered": recovered, "reloads": c.reloads.load(Relaxed),
        "recovered_share": if resub == 0 { 1.0 } else { recovered as f64 / resub as f64 },
        "reconnects": c.reconnects.load(Relaxed), "refused_connects": c.refused_connects.load(Relaxed),
        "reconnect_wave_seconds": wave_s,
    });
    let summary = format!(
        "rolling: {} clients, {total} publishes ({} retried): lost {lost}, duplicates {}, \
         {recovered}/{resub} resubscribes recovered, {} reloads, {} reconnects, every client back {wave_s:.1} s after the first close",
        args.subscribers,
        retries.load(Relaxed),
        c.duplicates.load(Relaxed),
        c.reloads.load(Relaxed),
        c.reconnects.load(Relaxed),
    );
    Ok(Report { result, summary })
}
