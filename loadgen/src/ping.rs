//! `ping`: N clients each sending `{"action":"ping"}` and waiting for the pong, in a loop, for a
//! fixed time. Measures the server's per-message cost on the smallest request there is: round
//! trips per second, their latency, and the server's CPU per 1,000 round trips.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::value_parser;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::common::{self, Report, ServerArgs};
use crate::histogram::Histogram;
use crate::net::{self, Ws};
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
            match net::next_text(&mut ws).await {
                Ok(text) if wire::msg_type(&text) == Some("pong") => break,
                Ok(_) => {}
                Err(why) => return Some(why),
            }
        }
        latency.record(sent.elapsed().as_micros() as u64);
    }
    None
}

pub async fn run(args: Args) -> Result<Report> {
    let server = common::Server::new(&args.server)?;
    let latency = Arc::new(Histogram::new());
    let run = common::closed_loop(
        &server,
        args.clients,
        Duration::from_secs(args.duration),
        "ping",
        |_, ws, until| client(ws, until, latency.clone()),
    )
    .await?;
    let trips = latency.count();
    let pct = latency.percentiles();
    let per_s = trips as f64 / run.window_s;
    let result = json!({
        "scenario": "ping",
        "clients": args.clients,
        "connected": run.connected,
        "duration_s": args.duration,
        "round_trips": trips,
        "round_trips_per_s": round(per_s, 1),
        "clients_stopped_early": run.stopped,
        "error": run.first_failure,
        "latency_ms": pct.to_json_ms(),
        "cpu": run.cpu.to_json(trips),
    });
    let mut summary = format!(
        "ping: {} clients, {trips} round trips in {:.2} s ({per_s:.0}/s), {} stopped early\n\
         ping:   latency {}\nping:   {}",
        run.connected,
        run.window_s,
        run.stopped,
        pct.describe(),
        run.cpu.describe(trips, "round trips"),
    );
    if let Some(e) = &run.first_failure {
        summary.push_str(&format!("\nping: first error: {e}"));
    }
    Ok(Report { result, summary })
}
