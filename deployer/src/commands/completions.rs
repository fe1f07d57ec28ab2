//! `wsctl completions bash|zsh|fish`: shell completions generated from the command line
//! definition, so they never drift from it.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::Exit;

/// Print shell completions.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wsctl completions bash > /etc/bash_completion.d/wsctl")]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "wsctl", &mut std::io::stdout());
    Ok(Exit::Success)
}
