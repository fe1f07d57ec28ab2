//! One module per subcommand, each with its own `Args` and `run`.

pub mod completions;
pub mod deploy;
pub mod exec;
pub mod logs;
pub mod releases;
pub mod rollback;
pub mod scale;
pub mod smoke;
pub mod status;
pub mod teardown;
pub mod token;
pub mod unlock;
