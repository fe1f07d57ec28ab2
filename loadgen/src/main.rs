//! loadgen: drives ws-server with the benchmark scenarios that `scripts/bench` and
//! `scripts/bench-broker` run (see docs/performance.md), over the wire protocol of
//! docs/protocol.md. Each run prints one JSON result line on stdout and a readable summary on
//! stderr; loopback targets only; bounded in count and time.
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
mod refused;
mod rolling;
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
    /// A flood of upgrades with a refused token: refusals/s, server CPU per 1,000 refused upgrades
    Refused(refused::Args),
    /// N clients through a balancer while a task is replaced: lost, duplicates, recovered share
    Rolling(rolling::Args),
}

async fn dispatch(command: Command) -> anyhow::Result<common::Report> {
    match command {
        Command::Conns(args) => conns::run(args).await,
        Command::Fanout(args) => fanout::run(args).await,
        Command::Ping(args) => ping::run(args).await,
        Command::Forward(args) => forward::run(args).await,
        Command::Floor(args) => floor::run(args).await,
        Command::Refused(args) => refused::run(args).await,
        Command::Rolling(args) => rolling::run(args).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command).await {
        Ok(report) => {
            report.emit();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every scenario against the real server, started in this process on a loopback port; small
/// numbers, and assertions on what the scenario reports, never on speed.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const TOKEN: &str = "loadgen-test-token-0123456789";

    /// ws-server on 127.0.0.1:0 with a publish token and no SQS queue; stops with the test.
    async fn start_server() -> String {
        // No authentication and no rate limit: these tests are about the scenarios.
        start_server_with(&[("WS_AUTH", "none")]).await
    }

    async fn start_server_with(auth: &[(&'static str, &'static str)]) -> String {
        let mut vars = vec![
            ("WEBSOCKET_HOST", "127.0.0.1"),
            ("PUBLISH_TOKEN", TOKEN),
            ("WS_RATE_PER_SECOND", "1000000"),
            ("WS_RATE_BURST", "1000000"),
        ];
        vars.extend_from_slice(auth);
        let config = server::config::Config::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
        .expect("valid configuration");
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = server::AppState::new(config, &sdk);
        tokio::spawn(server::serve(listener, state, std::future::pending()));
        addr.to_string()
    }

    async fn run(args: &[&str]) -> Value {
        let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .expect("valid arguments");
        let report = dispatch(cli.command).await.expect("the scenario runs");
        assert!(!report.summary.is_empty());
        report.result
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn floor_reports_its_three_costs() {
        let r = run(&[
            "floor",
            "-m",
            "20000",
            "-n",
            "50",
            "--sleepers",
            "300",
            "--echo-clients",
            "40",
        ])
        .await;
        for figure in [
            "delivery_cpu_ms_per_1000",
            "delivery_to_sleepers_cpu_ms_per_1000",
            "echo_cpu_ms_per_1000",
        ] {
            let v = r[figure].as_f64().unwrap_or(-1.0);
            assert!(v > 0.0, "{figure} = {v}: {r}");
        }
        // The sleepers get the fan-out's shape: bursts of -n over all of them.
        assert_eq!(r["burst"], 50, "{r}");
        assert_eq!(r["sleepers"], 300, "{r}");
        assert_eq!(r["echo_clients"], 40, "{r}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conns_holds_every_connection_and_reads_memory() {
        let server = start_server().await;
        let pid = std::process::id().to_string();
        let r = run(&[
            "conns",
            "--server",
            &server,
            "--server-pid",
            &pid,
            "-n",
            "300",
            "-k",
            "4",
            "--hold",
            "0",
        ])
        .await;
        assert_eq!(r["opened"], 300, "{r}");
        assert_eq!(r["failed"], 0);
        assert_eq!(r["alive_after_hold"], 300);
        assert!(r["server_rss_growth_per_conn_bytes"].is_number(), "{r}");
        assert!(r["connect_cpu"]["server_cpu_ms"].is_number());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fanout_counts_every_delivery_and_its_latency() {
        let server = start_server().await;
        let r = run(&[
            "fanout", "--server", &server, "-n", "40", "-k", "4", "-r", "40", "-d", "1", "--token",
            TOKEN,
        ])
        .await;
        // 40 publishes round-robin over 4 projects of 10 subscribers each.
        assert_eq!(r["published"], 40, "{r}");
        assert_eq!(r["expected"], 400);
        assert_eq!(r["delivered"], 400);
        assert_eq!(r["lost"], 0);
        assert_eq!(r["server_reported_delivered"], 400);
        assert!(r["latency_ms"]["p50"].as_f64().expect("p50") > 0.0);
        assert!(r["latency_ms"]["max"].as_f64() >= r["latency_ms"]["p99"].as_f64());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fanout_reports_a_wrong_token_as_failed_publishes() {
        let server = start_server().await;
        let r = run(&[
            "fanout",
            "--server",
            &server,
            "-n",
            "4",
            "-k",
            "2",
            "-r",
            "5",
            "-d",
            "1",
            "--token",
            "wrong-token-wrong-token",
        ])
        .await;
        assert_eq!(r["publish_failed"], 5, "{r}");
        assert_eq!(r["expected"], 0);
        assert!(
            r["publish_error"].as_str().expect("error").contains("401"),
            "{r}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturation_steps_up_and_names_why_it_stopped() {
        let server = start_server().await;
        let r = run(&[
            "fanout",
            "--server",
            &server,
            "-n",
            "10",
            "-k",
            "2",
            "-r",
            "10",
            "--saturate",
            "--step-duration",
            "1",
            "--max-steps",
            "2",
            "--factor",
            "2",
            "--token",
            TOKEN,
        ])
        .await;
        let steps = r["steps"].as_array().expect("steps");
        assert!(!steps.is_empty() && steps.len() <= 2, "{r}");
        assert_eq!(steps[0]["rate"], 10);
        assert_eq!(steps[0]["lost"], 0, "{r}");
        if let Some(second) = steps.get(1) {
            assert_eq!(second["rate"], 20);
        }
        assert!(r["stop_reason"].as_str().is_some_and(|s| !s.is_empty()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ping_counts_round_trips() {
        let server = start_server().await;
        let r = run(&["ping", "--server", &server, "-n", "5", "-d", "1"]).await;
        assert_eq!(r["connected"], 5, "{r}");
        assert_eq!(r["clients_stopped_early"], 0);
        assert!(r["round_trips"].as_u64().expect("count") > 5, "{r}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forward_counts_error_replies_by_code() {
        // No SQS queue is configured: every forward is answered queue_not_configured.
        let server = start_server().await;
        let r = run(&[
            "forward",
            "--server",
            &server,
            "-n",
            "2",
            "-d",
            "1",
            "--max-forwards",
            "20",
        ])
        .await;
        assert_eq!(r["forwarded"], 0, "{r}");
        assert_eq!(r["errors"], 20);
        assert_eq!(r["errors_by_code"]["queue_not_configured"]["count"], 20);
        assert_eq!(r["clients_stopped_early"], 0);
    }

    #[test]
    fn refuses_a_remote_target_before_connecting() {
        let err = Cli::try_parse_from(["loadgen", "ping", "--server", "192.0.2.1:8080"])
            .expect_err("refused");
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_counts_every_upgrade_refused_for_its_token() {
        let server =
            start_server_with(&[("WS_JWT_SECRET", "loadgen-test-secret-0123456789-0123456789")])
                .await;
        let pid = std::process::id().to_string();
        let r = run(&[
            "refused",
            "--server",
            &server,
            "--server-pid",
            &pid,
            "-n",
            "200",
            "--concurrency",
            "8",
            "--token",
            "not.a-valid.token",
        ])
        .await;
        assert_eq!(r["refused"], 200, "{r}");
        assert_eq!(r["other"], 0, "{r}");
        assert!(r["cpu"]["server_cpu_ms_per_1000"].as_f64().is_some(), "{r}");
    }
}
