//! JSON logs on stdout, one object a line, for CloudWatch Logs Insights.
//!
//! Fields are flattened to the top level (`connection_id`, `queue`, ...) so queries can filter
//! on them directly. The level comes from `RUST_LOG` (default `info`); per-message events are
//! at `debug`, so the default level stays quiet under load.

use tracing_subscriber::EnvFilter;

/// JSON logs to stdout (CloudWatch reads them), level from `RUST_LOG`, default `info`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}
