//! Where results and progress go: results to stdout (text or one JSON document), progress and
//! logs to stderr, with spinners only when stderr is a terminal.

use std::io::IsTerminal;

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text.
    #[default]
    Text,
    /// One JSON document on stdout (logs: one JSON object a line).
    Json,
}

/// Prints one JSON document to stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Whether progress may draw spinners and bars (stderr is a terminal and not CI).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}
