//! `wsctl deploy` (being written).

use crate::cli::Global;
use crate::exit::{Exit, fail};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Exit> {
    Err(fail(Exit::Failure, "wsctl deploy is not implemented yet"))
}
