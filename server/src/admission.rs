//! What a `GET /ws` must pass before it becomes a connection, in the order that costs least to
//! refuse: no token in the URL, an allowed `Origin`, a valid `Authorization` token (when sent)
//! granting the `?project_id=` project, and a free slot for the client's IP. Each refusal is
//! the HTTP status and `code` listed in `docs/protocol.md`, Connecting.

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::{Identity, TokenError};
use crate::limits::IpSlot;
use crate::metrics::incr;

/// An upgrade that passed: who it is (when the header said so) and its IP's slot.
pub struct Admitted {
    /// The identity the `Authorization` header proved; `None` until the first frame authenticates.
    pub identity: Option<Identity>,
    /// The connection's place in its IP's count, freed when it closes.
    pub ip_slot: IpSlot,
}

/// A refusal before the upgrade: status, stable code, what to do.
pub fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "code": code, "error": message })),
    )
        .into_response()
}

/// Admits or refuses an upgrade: the origin, the per-IP limit and the header's token, if any.
pub async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    peer: SocketAddr,
    project: Option<&str>,
) -> Result<Admitted, Response> {
    let m = &state.metrics;
    let guard = &state.config.guard;
    if query.is_some_and(has_token_parameter) {
        incr(&m.connections_refused);
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "token_in_url",
            "never put a token in the URL (it is logged): send it as Authorization: Bearer <jwt> or in the first frame {\"action\":\"authenticate\",\"token\":...}",
        ));
    }
    if !guard.origin_allowed(headers) {
        incr(&m.connections_refused);
        incr(&m.origins_refused);
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not open a WebSocket here (WS_ALLOWED_ORIGINS)",
        ));
    }
    let identity = match headers.get(header::AUTHORIZATION) {
        None if state.auth.is_disabled() => Some(Identity::anonymous()),
        None => None,
        Some(value) => {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let result = match token {
                Some(t) => state.auth.verify(t).await,
                None => Err(TokenError::Invalid(
                    "the Authorization header must be \"Bearer <jwt>\"".to_owned(),
                )),
            };
            match result {
                Ok(identity) => Some(identity),
                Err(e) => {
                    incr(&m.connections_refused);
                    incr(&m.auth_failures);
                    let mut r = refuse(StatusCode::UNAUTHORIZED, e.code().as_str(), &e.message());
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer error=\"invalid_token\""),
                    );
                    return Err(r);
                }
            }
        }
    };
    if let (Some(id), Some(p)) = (&identity, project)
        && !id.grants.project(p)
    {
        incr(&m.connections_refused);
        incr(&m.forbidden);
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token does not grant this project_id",
        ));
    }
    let ip = guard.client_ip(headers, peer);
    let Some(ip_slot) = state.per_ip.try_open(ip, guard.max_per_ip) else {
        incr(&m.connections_refused);
        incr(&m.refused_per_ip);
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "this client IP has too many connections open (WS_MAX_CONNECTIONS_PER_IP); close some or retry later",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return Err(r);
    };
    Ok(Admitted { identity, ip_slot })
}

fn has_token_parameter(query: &str) -> bool {
    query.split('&').any(|kv| {
        let key = kv.split('=').next().unwrap_or("");
        key.eq_ignore_ascii_case("token") || key.eq_ignore_ascii_case("access_token")
    })
}
