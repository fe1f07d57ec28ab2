//! The command line: global flags shared by every command, and one subcommand per operation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "wsctl",
    version,
    about = "Provision, deploy and operate the WebSocket server on ECS Fargate",
    after_help = "Exit codes: 0 success, 1 failure, 2 bad usage, 3 rolled back, 4 timed out, \
                  5 not found, 6 superseded by another deployment, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands. AWS profile, region and endpoint also come from the
/// standard AWS variables (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Environment to act on; names its stack, cluster, service and log group.
    #[arg(
        long,
        short = 'e',
        global = true,
        env = "WSCTL_ENV",
        default_value = "dev"
    )]
    pub env: String,
    /// Settings file; optional, the defaults follow the seed deployment.
    #[arg(
        long,
        global = true,
        env = "WSCTL_CONFIG",
        default_value = "wsctl.yaml"
    )]
    pub config: PathBuf,
    /// Output format for results on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// AWS profile (else AWS_PROFILE, else the default chain).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (else the environment's settings, else AWS_REGION, else us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS endpoint override, e.g. a local emulator (else AWS_ENDPOINT_URL).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, push and roll out the server; create or update its stack first.
    Deploy(commands::deploy::Args),
    /// Show the state of an environment at a glance.
    Status(commands::status::Args),
    /// Print or follow the service's logs.
    Logs(commands::logs::Args),
    /// List the releases a rollback can go to.
    Releases(commands::releases::Args),
    /// Roll the service back to an earlier release.
    Rollback(commands::rollback::Args),
    /// Change the number of tasks now, or the autoscaling range.
    Scale(commands::scale::Args),
    /// Run a command in a running task (ECS Exec).
    Exec(commands::exec::Args),
    /// Delete an environment's stack and everything it owns.
    Teardown(commands::teardown::Args),
    /// Mint a short-lived client token from the environment's signing secret.
    Token(commands::token::Args),
    /// Print shell completions.
    Completions(commands::completions::Args),
}
