//! `WSCTL_LOG=<filter>`: the SDK's and wsctl's tracing on stderr, each span closed with its
//! time, to see which AWS call a slow command waits on, e.g.
//! `WSCTL_LOG=aws_smithy_runtime::client::orchestrator=debug wsctl deploy --env dev`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

pub fn init() {
    let Ok(filter) = std::env::var("WSCTL_LOG") else {
        return;
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
}
