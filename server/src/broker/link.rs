//! The task's pub/sub connection to the broker: one dedicated connection, subscribed to the
//! broadcast channel and to the channel of each project its clients follow, kept alive by
//! pings and reconnected with backoff when it fails.
//!
//! redis-rs reconnects command connections by itself, but a pub/sub connection that comes back
//! silently would hide the messages lost meanwhile; this loop knows exactly when it was down,
//! and tells the hub ([`Receiver::reconnected`]) so every subscription's gap is repaired.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};

/// What the hub gives the link.
pub trait Receiver: Send + Sync + 'static {
    fn message(&self, channel: &str, payload: &[u8]);
    /// The connection is back after a loss: messages may be missing.
    fn reconnected(&self);
    /// Every channel needed now (subscribed after each connect).
    fn wanted(&self) -> Vec<String>;
    fn still_wanted(&self, channel: &str) -> bool;
}

pub enum Cmd {
    /// Acknowledged once the channel is subscribed on a live connection.
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
}

#[derive(Debug, Clone)]
pub enum LinkState {
    Up,
    Down { since: Instant, error: String },
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bound on connecting and on any one pub/sub command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// A ping every second finds a broker that stopped answering (not only one that closed).
const PING_EVERY: Duration = Duration::from_secs(1);

pub async fn run(
    client: redis::Client,
    recv: Arc<dyn Receiver>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    state: watch::Sender<LinkState>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut waiting: Vec<(String, oneshot::Sender<()>)> = Vec::new();
    let mut connected_before = false;
    let down = |error: String, state: &watch::Sender<LinkState>| {
        state.send_modify(|s| {
            let since = match s {
                LinkState::Down { since, .. } => *since,
                LinkState::Up => Instant::now(),
            };
            if matches!(s, LinkState::Up) {
                tracing::warn!(error = %error, "broker connection lost; reconnecting");
            }
            *s = LinkState::Down { since, error };
        });
    };
    loop {
        let pubsub = match tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(p)) => Some(p),
            Ok(Err(e)) => {
                down(format!("cannot connect: {e}"), &state);
                None
            }
            Err(_) => {
                down("cannot connect: timed out".to_owned(), &state);
                None
            }
        };
        let Some(pubsub) = pubsub else {
            // Wait (with jitter, so tasks do not reconnect in step) and keep taking commands.
            let pause = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
            backoff = (backoff * 2).min(MAX_BACKOFF);
            let until = tokio::time::sleep(pause);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    () = &mut until => break,
                    cmd = rx.recv() => match cmd {
                        None => return,
                        Some(Cmd::Subscribe(ch, ack)) => waiting.push((ch, ack)),
                        Some(Cmd::Unsubscribe(_)) => {}
                    }
                }
            }
            continue;
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut active: HashSet<String> = recv.wanted().into_iter().collect();
        active.extend(waiting.iter().map(|(c, _)| c.clone()));
        let channels: Vec<&String> = active.iter().collect();
        match tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(channels)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                down(format!("cannot subscribe: {e}"), &state);
                continue;
            }
            Err(_) => {
                down("cannot subscribe: timed out".to_owned(), &state);
                continue;
            }
        }
        if let LinkState::Down { since, .. } = &*state.borrow() {
            tracing::info!(
                down_ms = since.elapsed().as_millis() as u64,
                channels = active.len(),
                "broker connection up"
            );
        }
        state.send_replace(LinkState::Up);
        backoff = MIN_BACKOFF;
        for (_, ack) in waiting.drain(..) {
            let _ = ack.send(());
        }
        if connected_before {
            recv.reconnected();
        }
        connected_before = true;

        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let error = loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => recv.message(m.get_channel_name(), m.get_payload_bytes()),
                    None => break "connection closed".to_owned(),
                },
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Subscribe(ch, ack)) => {
                        if active.contains(&ch) {
                            let _ = ack.send(());
                            continue;
                        }
                        match tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&ch)).await {
                            Ok(Ok(())) => {
                                active.insert(ch);
                                let _ = ack.send(());
                            }
                            other => {
                                waiting.push((ch, ack));
                                break format!("subscribe failed: {}", describe(other));
                            }
                        }
                    }
                    Some(Cmd::Unsubscribe(ch)) => {
                        // A subscribe may have come since this was sent.
                        if active.contains(&ch) && !recv.still_wanted(&ch) {
                            active.remove(&ch);
                            if let other @ (Ok(Err(_)) | Err(_)) =
                                tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(&ch)).await
                            {
                                break format!("unsubscribe failed: {}", describe(other));
                            }
                        }
                    }
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if let other @ (Ok(Err(_)) | Err(_)) = pong {
                        break format!("no answer to ping: {}", describe(other.map(|r| r.map(|_| ()))));
                    }
                }
            }
        };
        down(error, &state);
    }
}

fn describe(r: Result<redis::RedisResult<()>, tokio::time::error::Elapsed>) -> String {
    match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()),
    }
}
