//! The WebSocket server of the agent system: clients subscribe to project updates and hand
//! work to the agents through SQS; agents publish updates back through `POST /publish`.
//!
//! Layout, in the order a request meets it: [`config`] (environment), [`app`] (routes),
//! [`connection`] (one WebSocket), [`protocol`] (the wire contract), [`hub`] and [`outbox`]
//! (broadcast and per-client backpressure), [`broker`] (the cross-task hub on Redis),
//! [`forward`] (SQS), [`publish`], [`health`],
//! [`shutdown`] (drain), [`metrics`] and [`logging`]. `main.rs` only wires them together.

#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod broker;
pub mod config;
pub mod connection;
pub mod forward;
pub mod health;
pub mod http;
pub mod hub;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod protocol;
pub mod publish;
pub mod shutdown;
pub mod transport;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::forward::Forwarder;
use crate::hub::{Hub, LocalHub};
use crate::metrics::Metrics;
use crate::shutdown::Drain;

/// The server's version, reported in `welcome` and `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything the handlers share.
pub struct Shared {
    /// The configuration read at start.
    pub config: Config,
    /// Delivers updates: the in-process hub, or the broker across tasks.
    pub hub: Arc<dyn Hub>,
    /// Sends forwards to SQS.
    pub forwarder: Forwarder,
    /// Counters for the EMF metrics.
    pub metrics: Arc<Metrics>,
    /// The drain: when it began, and the open connections' slots.
    pub drain: Arc<Drain>,
    /// When the server started (for `/health`'s uptime).
    pub started: Instant,
    /// Checks tokens (see [`auth`]).
    pub auth: auth::Authenticator,
    /// Open connections per client IP (see [`limits`]).
    pub per_ip: Arc<limits::PerIp>,
    /// `WS_CONNECT_RATE`: admits a reconnect wave at a pace the task can take.
    pub connect_rate: governor::DefaultDirectRateLimiter,
}

#[derive(Clone)]
/// What every handler gets: [`Shared`], behind one reference count.
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State with the hub the configuration asks for (the broker when `WS_REDIS_URL` is set,
    /// else the in-process hub) and an SQS client from `sdk`. Needs a Tokio runtime.
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let forwarder = Forwarder::new(sdk, config.queues.clone(), config.sqs_timeout);
        let metrics = Arc::new(Metrics::default());
        let hub: Arc<dyn Hub> = match &config.broker.url {
            None => Arc::new(LocalHub::new()),
            Some(_) => match broker::RedisHub::new(config.broker.clone(), metrics.clone()) {
                Ok(h) => Arc::new(h),
                Err(e) => {
                    // Config::from_lookup checked the URL; this cannot happen after it.
                    tracing::error!(error = %e, "broker unusable; using the in-process hub");
                    Arc::new(LocalHub::new())
                }
            },
        };
        Self::with_parts(config, hub, forwarder, metrics)
    }

    fn with_parts(
        config: Config,
        hub: Arc<dyn Hub>,
        forwarder: Forwarder,
        metrics: Arc<Metrics>,
    ) -> Self {
        let rate =
            std::num::NonZeroU32::new(config.connect_rate).unwrap_or(std::num::NonZeroU32::MIN);
        Self(Arc::new(Shared {
            auth: auth::Authenticator::new(&config.auth),
            per_ip: Arc::default(),
            connect_rate: governor::RateLimiter::direct(governor::Quota::per_second(rate)),
            config,
            hub,
            forwarder,
            drain: Arc::new(Drain::new(metrics.clone())),
            metrics,
            started: Instant::now(),
        }))
    }
}

/// The routes: `/ws`, `/health`, `/publish`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.limits.max_frame_bytes;
    Router::new()
        .route("/ws", get(connection::upgrade))
        .route("/health", get(health::health))
        .route(
            "/publish",
            post(publish::publish)
                .layer(DefaultBodyLimit::max(body_limit))
                // Outermost: the token is checked before any of the body is read.
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    publish::gate,
                )),
        )
        .with_state(state)
}

/// The AWS SDK configuration: the SDK's default chain (so `AWS_ENDPOINT_URL` and the ECS task
/// role work) with the configured region.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.aws_region.clone()))
        .load()
        .await
}

/// Serves on `listener` until `signal` resolves, then drains (see [`shutdown`]) and returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain_state = state.clone();
    let drained = async move {
        signal.await;
        drain(&drain_state).await;
    };
    let header_timeout = state.config.guard.header_timeout;
    let server = http::serve(listener, app(state.clone()), header_timeout, drained);
    let mut server = std::pin::pin!(server);
    // The server returns after the drain once open HTTP requests finish; do not let a stuck
    // keep-alive client hold the exit beyond the shutdown budget.
    tokio::select! {
        r = &mut server => r,
        () = async {
            shutdown::draining(&mut state.drain.watch()).await;
            tokio::time::sleep(state.config.shutdown_timeout + Duration::from_secs(2)).await;
        } => {
            tracing::warn!("HTTP connections still open after the drain; exiting anyway");
            Ok(())
        }
    }
}

/// Turns `/health` to 503, tells every connection to close, and waits for them (bounded).
pub async fn drain(state: &AppState) {
    let open = state.metrics.open();
    tracing::info!(
        open_connections = open,
        "draining: closing every connection with 1001"
    );
    state.drain.begin();
    let budget = state.config.shutdown_timeout;
    match tokio::time::timeout(budget, state.drain.all_closed()).await {
        Ok(()) => tracing::info!("drain complete"),
        Err(_) => tracing::warn!(
            open_connections = state.metrics.open(),
            budget_seconds = budget.as_secs(),
            "drain budget spent; exiting with connections still open"
        ),
    }
}
