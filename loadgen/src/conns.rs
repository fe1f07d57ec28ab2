//! `conns`: how many idle connections the server holds, how fast it accepts them, and what each
//! one costs it in memory (VmRSS after the connections opened minus before, divided by their
//! number). Every connection is subscribed to one of K projects through `/ws?project_id=X`, held
//! idle, and at the end pinged once to prove the server still serves it.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::value_parser;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::{self, Join, OpenPlan, Report, ServerArgs};
use crate::net;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Connections to open (at most 60,000; the file-descriptor limit applies)
    #[arg(short = 'n', long, default_value_t = 1000, value_parser = value_parser!(u64).range(1..=60_000))]
    connections: u64,
    /// Projects the connections are spread over
    #[arg(short = 'k', long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=100_000))]
    projects: u64,
    /// Seconds to hold the connections idle once all are open
    #[arg(long, default_value_t = 5, value_parser = value_parser!(u64).range(0..=300))]
    hold: u64,
    /// Seconds allowed for opening them; attempts not started by then are skipped
    #[arg(long, default_value_t = 120, value_parser = value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Connection attempts in flight at once
    #[arg(long, default_value_t = 256, value_parser = value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Connections per source address (127.0.0.2, 127.0.0.3, ...)
    #[arg(long, default_value_t = 10_000, value_parser = value_parser!(u64).range(1..=28_000))]
    per_source: u64,
}

pub async fn run(args: Args) -> Result<Report> {
    common::ensure_fds(args.connections)?;
    let server = common::Server::new(&args.server)?;
    let rss_before = server.rss()?;
    let meters = server.meters()?;
    let plan = OpenPlan {
        connections: args.connections,
        projects: args.projects,
        join: Join::Query,
        concurrency: args.concurrency,
        per_source: args.per_source,
        deadline: Instant::now() + Duration::from_secs(args.duration),
    };
    let opened = common::open_many(server.target, &plan, "conns").await;
    common::require_some(&opened, &server.target)?;
    let open_cpu = meters.stop()?;
    // Let the server finish whatever the last handshakes left behind before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = server.rss()?;
    let held = opened.conns.len() as u64;
    let connects_per_s = opened.per_second();
    if args.hold > 0 {
        eprintln!("conns: holding {held} connections for {} s", args.hold);
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    let alive = ping_all(opened.conns).await;
    let rss_end = server.rss()?;

    let growth = rss_before
        .zip(rss_open)
        .map(|(b, a)| a.saturating_sub(b) as f64 / held as f64);
    let result = json!({
        "scenario": "conns",
        "connections": args.connections,
        "projects": args.projects,
        "opened": held,
        "failed": opened.failed,
        "skipped": opened.skipped,
        "errors": opened.errors,
        "connect_s": crate::procfs::round(opened.elapsed.as_secs_f64(), 3),
        "connects_per_s": crate::procfs::round(connects_per_s, 1),
        "held_s": args.hold,
        "alive_after_hold": alive,
        "server_rss_before_bytes": rss_before,
        "server_rss_open_bytes": rss_open,
        "server_rss_after_ping_bytes": rss_end,
        "server_rss_growth_per_conn_bytes": growth.map(|g| crate::procfs::round(g, 1)),
        "connect_cpu": open_cpu.to_json(held),
    });
    let memory = match (growth, rss_before, rss_open) {
        (Some(g), Some(b), Some(a)) => format!(
            "server RSS {:.1} MiB -> {:.1} MiB: {:.2} KiB per connection",
            b as f64 / 1048576.0,
            a as f64 / 1048576.0,
            g / 1024.0
        ),
        _ => "server memory not measured (no --server-pid)".to_string(),
    };
    let summary = format!(
        "conns: {held} of {} open in {:.2} s ({:.0}/s), {} failed, {alive} alive after {} s idle\n\
         conns: {memory}\nconns: while connecting, {}",
        args.connections,
        opened.elapsed.as_secs_f64(),
        connects_per_s,
        opened.failed,
        args.hold,
        open_cpu.describe(held, "connections"),
    );
    Ok(Report { result, summary })
}

/// Ping every connection once, in parallel; how many answered.
async fn ping_all(conns: Vec<(u64, net::Ws)>) -> u64 {
    let mut tasks = JoinSet::new();
    for (_, mut ws) in conns {
        tasks.spawn(async move { net::ping(&mut ws).await.is_ok() });
    }
    let mut alive = 0;
    while let Some(ok) = tasks.join_next().await {
        alive += u64::from(matches!(ok, Ok(true)));
    }
    alive
}
