//! `POST /publish`: how the backend agents push an update to the clients following a project
//! (or to every client). The update is serialized once here and shared by every recipient.
//!
//! Off unless `PUBLISH_TOKEN` is set: a publish endpoint must never be open by accident.
//! [`gate`] checks the token before a byte of the body is read, and bounds the time the body
//! may take.

use axum::Json;
use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use serde_json::value::RawValue;

use crate::AppState;
use crate::hub::{PublishError, Target};
use crate::metrics::add;
use crate::protocol::check_id;

#[derive(serde::Deserialize)]
struct Body<'a> {
    #[serde(default)]
    project_id: Option<String>,
    /// Job progress for one user: every connection authenticated as this `sub`.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn problem(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "code": code, "message": message.into() })),
    )
        .into_response()
}

/// In front of [`publish`]: the token, then the body within `WS_HTTP_BODY_TIMEOUT_SECONDS`.
pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(refused) = refusal(&state, req.headers()) {
        return refused;
    }
    let (parts, body) = req.into_parts();
    let limit = state.config.limits.max_frame_bytes;
    let read = tokio::time::timeout(
        state.config.guard.body_timeout,
        axum::body::to_bytes(body, limit),
    );
    match read.await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, HttpBody::from(bytes)))
                .await
        }
        Ok(Err(_)) => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {limit} bytes (WS_MAX_FRAME_BYTES)"),
        ),
        Err(_) => problem(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive in time (WS_HTTP_BODY_TIMEOUT_SECONDS)",
        ),
    }
}

/// Runs behind [`gate`], which has checked the token and read the body.
pub async fn publish(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Body<'_> = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("body must be {{\"project_id\":\"X\",\"data\":{{...}}}}: {e}"),
            );
        }
    };
    if let Some(Err(message)) = parsed
        .project_id
        .as_deref()
        .map(|p| check_id("project_id", p))
    {
        return problem(StatusCode::BAD_REQUEST, "invalid_field", message);
    }
    if let Some(u) = &parsed.user_id {
        if let Err(message) = check_id("user_id", u) {
            return problem(StatusCode::BAD_REQUEST, "invalid_field", message);
        }
        if parsed.project_id.is_some() {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                "give either project_id or user_id, not both",
            );
        }
    }
    let Some(data) = parsed.data.filter(|d| d.get().starts_with('{')) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "field \"data\" is required and must be a JSON object",
        );
    };
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let target = match (parsed.project_id.as_deref(), parsed.user_id.as_deref()) {
        (Some(p), _) => Target::Project(p),
        (None, Some(u)) => Target::User(u),
        (None, None) => Target::All,
    };
    match state.hub.publish(target, data, key).await {
        Ok(published) => {
            if let Some(d) = &published.local {
                add(&state.metrics.updates_delivered, d.delivered as u64);
            }
            (StatusCode::ACCEPTED, Json(published)).into_response()
        }
        Err(PublishError::BrokerUnavailable(cause)) => {
            tracing::warn!(error = %cause, "publish refused: broker unavailable");
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!(
                    "the broker did not take the update ({cause}); retry with the same Idempotency-Key"
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
    }
}

/// The optional `Idempotency-Key` header: 1 to 128 visible ASCII characters.
// The error is the finished 400 reply, built at most once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Response> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        _ => Err(problem(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 128 visible ASCII characters (e.g. a UUID)",
        )),
    }
}

/// The publish token's verdict: `404` when publishing is off, `401` when the token is missing
/// or wrong, `None` when it is right.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = state.config.publish_token.as_deref() else {
        return Some(problem(
            StatusCode::NOT_FOUND,
            "publish_disabled",
            "publishing is off on this server: PUBLISH_TOKEN is not set",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the header Authorization: Bearer <PUBLISH_TOKEN>",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return Some(r);
    }
    None
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
