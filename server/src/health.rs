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
}

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let draining = state.drain.is_draining();
    let body = Health {
        status: if draining { "draining" } else { "ok" },
        version: crate::VERSION,
        connections: state.metrics.open(),
        uptime_seconds: state.started.elapsed().as_secs(),
    };
    let code = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body))
}
