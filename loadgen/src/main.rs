//! loadgen: drives ws-server with the benchmark scenarios of issue 5 (conns, fanout, ping,
//! forward) over the wire protocol of docs/protocol.md. Each run prints one JSON result line on
//! stdout and a readable summary on stderr; loopback targets only; bounded in count and time.
//!
//! Exit codes: 0 the scenario ran and printed its result (which may show misses), 1 it could not
//! run (bad target, no server, too few file descriptors), 2 bad arguments.

mod common;
mod conns;
mod fanout;
mod floor;
mod forward;
mod histogram;
mod net;
mod pacing;
mod ping;
mod procfs;
mod target;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for ws-server (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open N idle connections over K projects: connect rate, failures, server memory per connection
    Conns(conns::Args),
    /// N subscribers, a publisher at rate R: loss, deliveries/s, latency, server CPU (--saturate: highest rate that holds)
    Fanout(fanout::Args),
    /// N clients pinging in a loop: round trips/s, latency, server CPU per 1,000 round trips
    Ping(ping::Args),
    /// N clients forwarding to an SQS queue: forwards/s, errors
    Forward(forward::Args),
    /// The kernel's own CPU per loopback send and per round trip on this machine (no server needed)
    Floor(floor::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Conns(args) => conns::run(args).await,
        Command::Fanout(args) => fanout::run(args).await,
        Command::Ping(args) => ping::run(args).await,
        Command::Forward(args) => forward::run(args).await,
        Command::Floor(args) => floor::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
