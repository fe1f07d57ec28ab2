//! What every command runs with, resolved once in `main` from the global flags (as ripgrep's
//! `HiArgs` or uv's `GlobalSettings`): the environment's settings, the AWS clients built from
//! the one SDK config, the output format, the progress display and Ctrl-C. Commands take it by
//! reference; nothing below the commands sees the command line.

use std::sync::OnceLock;

use serde::Serialize;

use crate::aws::AwsArgs;
use crate::clients::Clients;
use crate::interrupt::Interrupt;
use crate::output::{self, Format};
use crate::progress::Progress;
use crate::settings::{self, Environment};

pub struct Context {
    /// The environment acted on, from the settings file (or the defaults).
    pub env: Environment,
    /// The settings file it came from (a promotion reads its source environment there).
    pub settings_file: std::path::PathBuf,
    /// The AWS flags as given (`exec` hands the profile to AWS's plugin).
    pub aws: AwsArgs,
    pub clients: Clients,
    /// How results are printed on stdout.
    pub format: Format,
    pub progress: Progress,
    interrupt: OnceLock<Interrupt>,
}

impl Context {
    /// Loads the settings of environment `env` from `settings_file` and builds the clients.
    pub async fn new(
        settings_file: &std::path::Path,
        env: &str,
        format: Format,
        aws: AwsArgs,
    ) -> anyhow::Result<Self> {
        let env = settings::load(settings_file, env)?;
        let config = aws.sdk_config(env.region.as_deref()).await;
        Ok(Self {
            env,
            settings_file: settings_file.to_owned(),
            aws,
            clients: Clients::new(&config),
            format,
            progress: Progress::new(format),
            interrupt: OnceLock::new(),
        })
    }

    /// Ctrl-C as a value. The handler is installed on first use, by a command about to wait
    /// on AWS: until then Ctrl-C ends the process as usual.
    pub fn interrupt(&self) -> &Interrupt {
        self.interrupt.get_or_init(Interrupt::install)
    }

    /// Prints a command's result: `value` as one JSON document, or `text` (built only then).
    pub fn print<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        match self.format {
            Format::Json | Format::Ndjson => self.print_json(value),
            Format::Text => output::print(text()),
        }
    }

    /// Prints `value` as JSON whatever the format: indented, or as the last line of an ndjson
    /// stream (`--output ndjson`).
    pub fn print_json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        output::print_json(value, self.format)
    }
}
