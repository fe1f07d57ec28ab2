//! `ping`: N clients each sending `{"action":"ping"}` and waiting for the pong, in a loop, for a
//! fixed time. Measures the server's per-message cost on the smallest request there is: round
//! trips per second, their latency, and the server's CPU per 1,000 round trips.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::value_parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::common::{self, Join, OpenPlan, ServerArgs};
use crate::histogram::Histogram;
use crate::net::{REPLY_TIMEOUT, Ws};
use crate::procfs::round;
use crate::wire;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Clients pinging at once (one connection each)
    #[arg(short = 'n', long, default_value_t = 500, value_parser = value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// Seconds of pinging
    #[arg(short = 'd', long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=120))]
    duration: u64,
}

/// Ping until `until`; the error that stopped the client early, if one did.
async fn client(mut ws: Ws, until: Instant, latency: Arc<Histogram>) -> Option<String> {
    let ping = Message::Text(Utf8Bytes::from_static(wire::PING));
    while Instant::now() < until {
        let sent = Instant::now();
        if let Err(e) = ws.send(ping.clone()).await {
            return Some(format!("sending ping: {e}"));
        }
        loop {
            match timeout(REPLY_TIMEOUT, ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    if wire::msg_type(&text) == Some("pong") {
                        break;
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(format!("server closed the connection: {frame:?}"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Some(format!("reading pong: {e}")),
                Ok(None) => return Some("connection ended".to_string()),
                Err(_) => return Some(format!("no pong within {REPLY_TIMEOUT:?}")),
            }
        }
        latency.record(sent.elapsed().as_micros() as u64);
    }
    None
}

pub async fn run(args: Args) -> Result<()> {
    common::ensure_fds(args.clients)?;
    let server = common::Server::new(&args.server)?;
    let plan = OpenPlan {
        connections: args.clients,
        projects: 1,
        join: Join::None,
        concurrency: 256,
        per_source: 10_000,
        deadline: Instant::now() + Duration::from_secs(60),
    };
    let opened = common::open_many(server.target, &plan, "ping").await;
    common::require_some(&opened, &server.target)?;
    let clients = opened.conns.len() as u64;
    let latency = Arc::new(Histogram::new());
    let meters = server.meters()?;
    let start = Instant::now();
    let until = start + Duration::from_secs(args.duration);
    let tasks: Vec<_> = opened
        .conns
        .into_iter()
        .map(|(_, ws)| tokio::spawn(client(ws, until, latency.clone())))
        .collect();
    let mut stopped = 0;
    let mut first_error = None;
    for t in tasks {
        if let Ok(Some(e)) = t.await {
            stopped += 1;
            first_error.get_or_insert(e);
        }
    }
    let window = start.elapsed().as_secs_f64();
    let cpu = meters.stop()?;
    let trips = latency.count();
    let pct = latency.percentiles();
    let per_s = trips as f64 / window;
    let result = json!({
        "scenario": "ping",
        "clients": args.clients,
        "connected": clients,
        "duration_s": args.duration,
        "round_trips": trips,
        "round_trips_per_s": round(per_s, 1),
        "clients_stopped_early": stopped,
        "error": first_error,
        "latency_ms": pct.to_json_ms(),
        "cpu": cpu.to_json(trips),
    });
    let mut summary = format!(
        "ping: {clients} clients, {trips} round trips in {window:.2} s ({per_s:.0}/s), {stopped} stopped early\n\
         ping:   latency {}\nping:   {}",
        pct.describe(),
        cpu.describe(trips, "round trips"),
    );
    if let Some(e) = &first_error {
        summary.push_str(&format!("\nping: first error: {e}"));
    }
    common::emit(&result, &summary);
    Ok(())
}
