//! `GET /health`: what the ALB target group and ECS check. 503 while draining takes the task out
//! of rotation before its connections are closed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::AppState;

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub connections: usize,
    pub uptime_seconds: u64,
    /// Shown, never a reason for 503: see `docs/protocol.md`, `GET /health`.
    pub broker: crate::hub::BrokerStatus,
}

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
