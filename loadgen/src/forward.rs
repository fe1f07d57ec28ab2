//! `forward`: N clients each sending `{"action":"forward"}` to one SQS queue and waiting for the
//! reply, in a loop, for a fixed time. Against the emulator this measures the server's forwarding
//! path (and mostly the emulator's speed), and shows that errors are answered, not dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::value_parser;
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, Report, ServerArgs};
use crate::histogram::Histogram;
use crate::net::{self, Ws};
use crate::procfs::round;
use crate::wire;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Clients forwarding at once (one connection each)
    #[arg(short = 'n', long, default_value_t = 20, value_parser = value_parser!(u64).range(1..=1000))]
    clients: u64,
    /// Seconds of forwarding
    #[arg(short = 'd', long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=120))]
    duration: u64,
    /// The queue type to forward to
    #[arg(long, default_value = "dev", value_parser = ["pm", "dev", "qa", "ops"])]
    queue: String,
    /// Stop after this many forwards in all
    #[arg(long, default_value_t = 100_000, value_parser = value_parser!(u64).range(1..=1_000_000))]
    max_forwards: u64,
}

#[derive(Default)]
struct Tally {
    started: AtomicU64,
    errors: Mutex<BTreeMap<String, (u64, String)>>,
}

fn forward_request(queue: &str, client: u64, seq: u64) -> String {
    json!({
        "action": "forward",
        "type": queue,
        "project_id": wire::project_name(client % 10),
        "request_id": format!("lg-{client}-{seq}"),
        "data": {"lg_seq": seq, "from": "loadgen", "text": "benchmark forward"},
    })
    .to_string()
}

/// Forward until `until` or the shared cap; the failure that stopped the client, if one did.
async fn client(
    mut ws: Ws,
    id: u64,
    queue: &str,
    until: Instant,
    max: u64,
    latency: &Histogram,
    tally: &Tally,
) -> Option<String> {
    let mut seq = 0;
    while Instant::now() < until && tally.started.fetch_add(1, Relaxed) < max {
        let sent = Instant::now();
        if let Err(e) = ws
            .send(Message::text(forward_request(queue, id, seq)))
            .await
        {
            return Some(format!("sending forward: {e}"));
        }
        seq += 1;
        loop {
            let text = match net::next_text(&mut ws).await {
                Ok(text) => text,
                Err(why) => return Some(why),
            };
            match wire::msg_type(&text) {
                Some("forwarded") => {
                    latency.record(sent.elapsed().as_micros() as u64);
                    break;
                }
                Some("error") => {
                    let code = wire::str_field(&text, "code").unwrap_or("?").to_string();
                    let mut errors = tally.errors.lock().await;
                    errors
                        .entry(code)
                        .or_insert_with(|| (0, wire::describe_error(&text)))
                        .0 += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    None
}

pub async fn run(args: Args) -> Result<Report> {
    let server = common::Server::new(&args.server)?;
    let latency = Arc::new(Histogram::new());
    let tally = Arc::new(Tally::default());
    let run = common::closed_loop(
        &server,
        args.clients,
        Duration::from_secs(args.duration),
        "forward",
        |i, ws, until| {
            let (queue, latency, tally, max) = (
                args.queue.clone(),
                latency.clone(),
                tally.clone(),
                args.max_forwards,
            );
            async move { client(ws, i, &queue, until, max, &latency, &tally).await }
        },
    )
    .await?;
    let forwarded = latency.count();
    let errors = tally.errors.lock().await.clone();
    let error_count: u64 = errors.values().map(|(n, _)| n).sum();
    let per_s = forwarded as f64 / run.window_s;
    let pct = latency.percentiles();
    let by_code: serde_json::Map<_, _> = errors
        .iter()
        .map(|(code, (n, example))| (code.clone(), json!({"count": n, "example": example})))
        .collect();
    let result = json!({
        "scenario": "forward",
        "clients": args.clients,
        "connected": run.connected,
        "queue": args.queue,
        "duration_s": args.duration,
        "forwarded": forwarded,
        "forwards_per_s": round(per_s, 1),
        "errors": error_count,
        "errors_by_code": by_code,
        "clients_stopped_early": run.stopped,
        "failure": run.first_failure,
        "latency_ms": pct.to_json_ms(),
        "cpu": run.cpu.to_json(forwarded),
    });
    let mut summary = format!(
        "forward: {} clients to queue {}: {forwarded} forwarded in {:.2} s ({per_s:.0}/s), {error_count} errors, {} stopped early\n\
         forward:   latency {}\nforward:   {}",
        run.connected,
        args.queue,
        run.window_s,
        run.stopped,
        pct.describe(),
        run.cpu.describe(forwarded, "forwards"),
    );
    for (code, (n, example)) in &errors {
        summary.push_str(&format!("\nforward: error {code} x{n}: {example}"));
    }
    if let Some(f) = &run.first_failure {
        summary.push_str(&format!("\nforward: first failure: {f}"));
    }
    Ok(Report { result, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_request_follows_the_protocol() {
        let v: serde_json::Value =
            serde_json::from_str(&forward_request("qa", 13, 7)).expect("json");
        assert_eq!(v["action"], "forward");
        assert_eq!(v["type"], "qa");
        assert_eq!(v["project_id"], "lg-p3");
        assert_eq!(v["request_id"], "lg-13-7");
        assert_eq!(v["data"]["lg_seq"], 7);
    }
}
