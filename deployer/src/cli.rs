//! The command line: global flags shared by every command, and one subcommand per operation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::aws::AwsArgs;
use crate::commands;
use crate::context::Context;
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "wsctl",
    version,
    about = "Provision, deploy and operate the WebSocket server on ECS Fargate",
    after_help = crate::exit::help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands; the AWS ones are [`AwsArgs`].
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
    /// Settings file; optional, without it every environment gets the defaults.
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
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl Global {
    /// The context every command runs with (settings, clients, output, progress).
    pub async fn context(self) -> anyhow::Result<Context> {
        Context::new(&self.config, &self.env, self.output, self.aws).await
    }
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
    /// Run the smoke test against an environment (a deploy ends with it).
    Smoke(commands::smoke::Args),
    /// Remove an environment's deploy lock, after showing who holds it.
    Unlock(commands::unlock::Args),
    /// Print shell completions.
    Completions(commands::completions::Args),
}
