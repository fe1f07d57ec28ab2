//! `wsctl logs`: the service's log group in time order, each line prefixed by its task, the
//! server's JSON lines made readable; `--follow` keeps streaming (live tail, or polls) until
//! Ctrl-C, which is the normal way to stop and exits 0.

use std::io::Write as _;
use std::time::Duration;

use chrono::Utc;

use crate::context::Context;

use crate::exit::Exit;
use crate::logs::fetch::{self, Query};
use crate::logs::follow::Follower;
use crate::logs::render::{self, Style};
use crate::logs::tail::Tail;
use crate::logs::{live, since, streams};
use crate::output::Format;

/// Print or follow the service's logs.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl logs --env prod --since 30m
  3f9c0d1e8a2b4c6d  2024-05-01T12:00:00.250Z  INFO   client connected  connection_id=c-17
  3f9c0d1e8a2b4c6d  2024-05-01T12:00:04.912Z  WARN   queue send failed  queue=ops  error=...

  $ wsctl logs --env prod --follow --filter ERROR        # until Ctrl-C
  $ wsctl logs --env prod --task 3f9c0d1e --since 2024-05-01T11:00:00Z
  $ wsctl logs --env prod --output json | jq -r .fields.message")]
pub struct Args {
    /// Keep printing new lines as they arrive, until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Start this far back (30s, 30m, 1h, 2d, 1h30m) or at this RFC 3339 time.
    #[arg(long, default_value = "10m", value_name = "WHEN")]
    pub since: String,
    /// Only events matching this CloudWatch Logs filter pattern (e.g. ERROR, "client connected",
    /// { $.level = "WARN" }).
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Only this task (its id, a prefix of it, or its ARN).
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Print messages exactly as logged instead of making JSON lines readable.
    #[arg(long, conflicts_with = "output")]
    pub raw: bool,
    /// Seconds between polls with --follow, where live tail is not available.
    #[arg(long, default_value_t = 2, value_name = "SECONDS", hide = true)]
    pub poll_interval: u64,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let start = since::parse(&args.since, Utc::now())?;
    let (env, clients) = (&ctx.env, &ctx.clients);
    let style = match (ctx.format, args.raw) {
        (Format::Json | Format::Ndjson, _) => Style::Json,
        (Format::Text, true) => Style::Raw,
        (Format::Text, false) => Style::Readable,
    };
    let streams = match &args.task {
        Some(task) => Some(streams::for_task(&clients.logs, &env.log_group, task).await?),
        None => None,
    };
    let query = Query {
        log_group: env.log_group.clone(),
        filter: args.filter.clone().filter(|f| !f.trim().is_empty()),
        streams,
    };
    let mut follower = Follower::new(start);
    let first = fetch::fetch(&clients.logs, &query, follower.next_start()).await?;
    if !print(&follower.admit(first), style) || !args.follow {
        return Ok(Exit::Success);
    }
    let tail = Tail {
        logs: &clients.logs,
        query: &query,
        no_live: live::unreachable_reason(clients.endpoint_url.as_deref()),
        poll_interval: Duration::from_secs(args.poll_interval.max(1)),
    };
    let note = |line: &str| eprintln!("wsctl: {line}");
    tokio::select! {
        // Ctrl-C is how a follow ends: nothing was changed, so it is a success.
        () = ctx.interrupt().wait() => Ok(Exit::Success),
        followed = tail.run(&mut follower, |events| print(events, style), note) => {
            followed.map(|()| Exit::Success)
        }
    }
}

/// Prints events to stdout; `false` once stdout is closed (e.g. piped into `head`).
fn print(events: &[crate::logs::Event], style: Style) -> bool {
    let mut out = std::io::stdout().lock();
    for event in events {
        if writeln!(out, "{}", render::line(event, style)).is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}
