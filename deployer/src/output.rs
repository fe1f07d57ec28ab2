//! Where results and progress go: results to stdout (text or one JSON document), progress and
//! logs to stderr, with spinners only when stderr is a terminal. A closed stdout is not an
//! error ([`print`]).

use std::io::{IsTerminal, Write as _};

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text.
    #[default]
    Text,
    /// One JSON document on stdout (logs: one JSON object a line).
    Json,
    /// Progress as one JSON event a line on stdout, ending with the `json` document
    /// (`crate::events`).
    Ndjson,
}

/// Prints one JSON document to stdout: indented, or on one line as the last line of an
/// ndjson stream (`Context::print_json` picks by `--output`).
pub fn print_json<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    let mut json = if format == Format::Ndjson {
        serde_json::to_string(value)?
    } else {
        serde_json::to_string_pretty(value)?
    };
    json.push('\n');
    print(json)
}

/// Writes `text` to stdout as it is. A closed stdout (`wsctl ... | head`) is not a failure:
/// the reader has what it wanted, so the command goes on and ends as it would (ripgrep's rule);
/// `println!` would panic instead.
pub fn print(text: impl AsRef<str>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(text.as_ref().as_bytes())
        .and_then(|()| out.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// Whether progress may draw spinners and bars (stderr is a terminal and not CI).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}
