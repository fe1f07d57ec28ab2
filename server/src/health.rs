//! `GET /health`: what the ALB target group and ECS check. 503 while draining takes the task out
//! of rotation before its connections are closed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::AppState;

#[derive(Serialize)]
/// The body of `GET /health` (the load balancer's health check).
pub struct Health {
    /// `ok`, or `draining` (with status 503).
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// Connections open on this task.
    pub connections: usize,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// Shown, never a reason for 503: see `docs/protocol.md`, `GET /health`.
    pub broker: crate::hub::BrokerStatus,
}

/// `GET /health`: 200 while serving, 503 once draining so the load balancer stops routing here.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let draining = state.drain.is_draining();
    let body = Health {
        status: if draining { "draining" } else { "ok" },
        version: crate::VERSION,
        connections: state.metrics.open(),
        uptime_seconds: state.started.elapsed().as_secs(),
        broker: state.hub.status(),
    };
    let code = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body))
}
