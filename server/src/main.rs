//! `ws-server`: reads the configuration, starts logging and metrics, serves until SIGTERM or
//! SIGINT, drains, exits 0. Exit code 2 means invalid configuration, 1 a failure to start.

use std::net::SocketAddr;
use std::process::ExitCode;

use server::protocol::QueueKind;
use server::{AppState, config::Config, logging, metrics, shutdown};

#[tokio::main]
async fn main() -> ExitCode {
    logging::init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(problems = %e.problems.join("; "), "invalid configuration");
            eprintln!("ws-server: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            eprintln!("ws-server: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let sdk = server::sdk_config(&config).await;
    let queues: Vec<&str> = config.queues.configured().map(QueueKind::as_str).collect();
    tracing::info!(
        address = %listener.local_addr().unwrap_or(addr),
        version = server::VERSION,
        region = sdk.region().map(|r| r.as_ref()).unwrap_or("none"),
        queues = ?queues,
        publish = config.publish_token.is_some(),
        broker = if config.broker.url.is_some() { "redis" } else { "local (one task only)" },
        max_connections = config.limits.max_connections,
        "ws-server listening"
    );
    if queues.len() < QueueKind::ALL.len() {
        tracing::warn!(configured = ?queues, "some SQS queues are not configured; forwards to them get queue_not_configured");
    }
    let environment = config.environment.clone();
    let interval = config.metrics_interval;
    let state = AppState::new(config, &sdk);
    if state.auth.is_disabled() {
        tracing::warn!(
            "WS_AUTH=none: authentication is OFF, every client is 'anonymous' with every grant; for local development only"
        );
    } else {
        let warm = state.clone();
        tokio::spawn(async move { warm.auth.warm_up().await });
    }
    let emitter = tokio::spawn(metrics::emit_every(
        state.metrics.clone(),
        environment.clone(),
        interval,
    ));
    let result = server::serve(listener, state.clone(), shutdown::signal()).await;
    emitter.abort();
    metrics::emit(&state.metrics, &environment);
    match result {
        Ok(()) => {
            tracing::info!("ws-server stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(1)
        }
    }
}
