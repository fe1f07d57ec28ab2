//! `wsctl`: provision, deploy and operate the WebSocket server on ECS Fargate.
//!
//! This file only parses the command line, dispatches, and turns the outcome into an exit
//! code; each subcommand lives in `commands/` with its own `Args` and `run`.

mod aws;
mod cli;
mod clients;
mod commands;
mod deploy;
mod exit;
mod interrupt;
mod live_service;
mod logs;
mod output;
mod progress;
mod release;
mod rollout;
mod settings;
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
        Command::Deploy(args) => commands::deploy::run(&cli.global, args).await,
        Command::Status(args) => commands::status::run(&cli.global, args).await,
        Command::Logs(args) => commands::logs::run(&cli.global, args).await,
        Command::Releases(args) => commands::releases::run(&cli.global, args).await,
        Command::Rollback(args) => commands::rollback::run(&cli.global, args).await,
        Command::Teardown(args) => commands::teardown::run(&cli.global, args).await,
        Command::Scale(args) => commands::scale::run(&cli.global, args).await,
        Command::Exec(args) => commands::exec::run(&cli.global, args).await,
        Command::Token(args) => commands::token::run(&cli.global, args).await,
        Command::Completions(args) => commands::completions::run(args),
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(err) => {
            let exit = exit::classify(&err);
            eprintln!("error: {err:#}");
            exit.into()
        }
    }
}
