//! `refused`: what a flood of upgrades with a bad token costs the server. `concurrency` clients
//! each open TCP, send the upgrade with `Authorization: Bearer <token>` and expect the 401, in a
//! loop, until `attempts` were made. Reports refusals per second and the server's CPU per 1,000
//! refused upgrades (the token check, the HTTP exchange and the TCP set-up and tear-down).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::value_parser;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite;

use crate::common::{self, Report, ServerArgs};
use crate::net::{self, Sources};
use crate::procfs::round;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Upgrade attempts in all
    #[arg(short = 'n', long, default_value_t = 20_000, value_parser = value_parser!(u64).range(1..=10_000_000))]
    attempts: u64,
    /// Attempts in flight at once
    #[arg(long, default_value_t = 64, value_parser = value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// The token to send; the scenario expects every upgrade to be refused with 401
    #[arg(long)]
    token: String,
}

pub async fn run(args: Args) -> Result<Report> {
    let server = common::Server::new(&args.server)?;
    let target = server.target;
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let first_other: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    // Many source addresses: the closed sockets' TIME_WAIT would exhaust one address's ports.
    let sources = Arc::new(Sources::new(5_000));
    let token: Arc<str> = Arc::from(args.token.as_str());
    let meters = server.meters()?;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..args.concurrency {
        let (next, refused, other, first_other) = (
            next.clone(),
            refused.clone(),
            other.clone(),
            first_other.clone(),
        );
        let (sources, token) = (sources.clone(), token.clone());
        let attempts = args.attempts;
        tasks.spawn(async move {
            while next.fetch_add(1, Relaxed) < attempts {
                let source = sources.next_for(&target);
                match net::connect_as(&target, "/ws", source, Some(&token)).await {
                    Err(e)
                        if e.downcast_ref::<tungstenite::Error>().is_some_and(
                            |t| matches!(t, tungstenite::Error::Http(r) if r.status() == 401),
                        ) =>
                    {
                        refused.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        other.fetch_add(1, Relaxed);
                        first_other
                            .lock()
                            .map(|mut f| f.get_or_insert(format!("{e:#}")).clone())
                            .ok();
                    }
                    Ok(_) => {
                        other.fetch_add(1, Relaxed);
                        first_other
                            .lock()
                            .map(|mut f| f.get_or_insert("the upgrade was accepted".into()).clone())
                            .ok();
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = meters.stop()?;
    let refused = refused.load(Relaxed);
    let other = other.load(Relaxed);
    let first_other = first_other.lock().ok().and_then(|f| f.clone());
    if refused == 0 {
        bail!(
            "no upgrade was refused with 401: {}",
            first_other.unwrap_or_default()
        );
    }
    let per_s = refused as f64 / elapsed;
    let result = json!({
        "scenario": "refused",
        "attempts": args.attempts,
        "concurrency": args.concurrency,
        "refused": refused,
        "other": other,
        "first_other": first_other,
        "refused_per_s": round(per_s, 1),
        "cpu": cpu.to_json(refused),
    });
    let summary = format!(
        "refused: {refused} of {} upgrades refused with 401 in {elapsed:.2} s ({per_s:.0}/s), {other} otherwise\nrefused:   {}",
        args.attempts,
        cpu.describe(refused, "refused upgrades"),
    );
    Ok(Report { result, summary })
}
