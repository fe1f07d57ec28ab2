//! `wsctl`: provision, deploy and operate the WebSocket server on ECS Fargate.
//!
//! This file only parses the command line, resolves the global flags once into the
//! [`context::Context`] every command takes, dispatches, and turns the outcome into an exit
//! code. Each subcommand lives in `commands/` with its own `Args` and `run`; the operations
//! they call (`deploy/`, `rollout/`, `status/`, ...) never see the command line.

mod aws;
mod cli;
mod clients;
mod commands;
mod context;
mod deploy;
mod events;
mod exit;
mod interrupt;
mod live_service;
mod lock;
mod logs;
mod output;
mod permissions;
mod progress;
mod release;
mod rollout;
mod settings;
mod smoke;
mod stack;
mod status;
mod table;
mod teardown;
mod token;
mod trace;
mod when;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trace::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with success; usage errors get code 2.
            let _ = err.print();
            return if err.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Success.into()
            };
        }
    };
    let outcome = match cli.command {
        Command::Completions(args) => commands::completions::run(args),
        command => match cli.global.context().await {
            Ok(ctx) => run(&ctx, command).await,
            Err(err) => Err(err),
        },
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(err) => {
            let exit = exit::classify(&err);
            let message = format!("{err:#}");
            eprintln!("error: {message}");
            if let Some(hint) = permissions::denial_hint(&message) {
                eprintln!("{hint}");
            }
            exit.into()
        }
    }
}

async fn run(ctx: &context::Context, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Deploy(args) => commands::deploy::run(ctx, args).await,
        Command::Status(args) => commands::status::run(ctx, args).await,
        Command::Logs(args) => commands::logs::run(ctx, args).await,
        Command::Releases(args) => commands::releases::run(ctx, args).await,
        Command::Rollback(args) => commands::rollback::run(ctx, args).await,
        Command::Teardown(args) => commands::teardown::run(ctx, args).await,
        Command::Scale(args) => commands::scale::run(ctx, args).await,
        Command::Exec(args) => commands::exec::run(ctx, args).await,
        Command::Token(args) => commands::token::run(ctx, args).await,
        Command::Smoke(args) => commands::smoke::run(ctx, args).await,
        Command::Unlock(args) => commands::unlock::run(ctx, args).await,
        Command::Completions(args) => commands::completions::run(args),
    }
}
