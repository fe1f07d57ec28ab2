//! One WebSocket connection: the upgrade on `/ws`, then a single task that reads requests,
//! writes replies and updates from the connection's outbox, runs forwards, and keeps the
//! connection alive, until the client leaves, falls behind, goes silent or the server drains.
//!
//! Everything for one connection happens in one task with small, fixed state, so an idle
//! connection costs a few kilobytes (see `docs/protocol.md`, Limits).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tracing::{debug, info};
use uuid::Uuid;

use crate::AppState;
use crate::admission::{Admitted, refuse};
use crate::auth::Identity;
use crate::forward::Forward;
use crate::hub::SubscribeRequest;
use crate::limits::{RequestRate, Verdict};
use crate::metrics::incr;
use crate::outbox::Outbox;
use crate::protocol::{
    Action, ErrorCode, QueueKind, Reply, RequestError, SessionInfo, Since, parse_request,
    valid_project_id,
};
use crate::shutdown::ConnectionSlot;

/// Read buffer of one connection, also the most read from the socket at once: requests are
/// small, and a larger frame grows the buffer on demand (at the cost of more reads).
pub const READ_BUFFER_BYTES: usize = 256;
/// Replies and updates are batched up to this size before a write to the socket.
pub const WRITE_BUFFER_BYTES: usize = 4096;
/// How long a close handshake may take before the socket is simply dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

#[derive(serde::Deserialize)]
pub struct ConnectQuery {
    project_id: Option<String>,
}

/// `GET /ws`: checks the request, takes a connection slot, upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<ConnectQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if state.drain.is_draining() {
        incr(&state.metrics.connections_refused);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "server is shutting down; connect again",
        );
    }
    if let Some(p) = &query.project_id
        && !valid_project_id(p)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_project_id",
            "project_id must be a non-empty string of at most 256 bytes without control characters",
        );
    }
    // Before the token is checked: a reconnect wave beyond the rate costs no verification.
    if state.connect_rate.check().is_err() {
        incr(&state.metrics.connections_refused);
        return connect_rate_refusal();
    }
    let project = query.project_id.as_deref();
    let admitted = match crate::admission::admit(&state, &headers, uri.query(), peer, project).await
    {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let limits = &state.config.limits;
    let Some(slot) = state.drain.try_open(limits.max_connections) else {
        incr(&state.metrics.connections_refused);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_full",
            "connection limit of this task reached; connect again",
        );
    };
    let hard = limits.hard_frame_bytes();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * limits.max_frame_bytes + 4096)
        .max_frame_size(hard)
        .max_message_size(hard)
        .on_upgrade(move |socket| run(socket, state, slot, admitted, query.project_id))
}

/// A reconnect wave beyond `WS_CONNECT_RATE`: try again shortly (a client adds jitter).
fn connect_rate_refusal() -> Response {
    let mut r = refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "connect_rate",
        "too many connections are being opened on this task; connect again after a random delay",
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}

/// Why the loop ended, and so how the connection is closed.
#[derive(Debug)]
enum Exit {
    ClientClosed,
    ClientGone,
    Draining,
    TooSlow,
    KeepaliveTimeout,
    TooBig,
    ReadError(String),
    /// The client stopped reading while frames waited for it (pongs do not count).
    Stalled,
    InvalidUtf8,
    AuthTimeout,
    AuthFailed(String),
    TokenExpired,
    RateAbuse,
}

/// What handling one frame calls for.
enum Step {
    Done,
    Check(TokenCheck),
    Exit(Exit),
}

/// What woke the connection loop, besides the outbox (which it writes as part of waiting).
enum Event {
    Exit(Exit),
    Read(Option<Result<Message, axum::Error>>),
    Forwarded(Result<ForwardResult, tokio::task::JoinError>),
    Timer,
}

type ForwardResult = (
    QueueKind,
    Option<Box<RawValue>>,
    Result<String, RequestError>,
);

/// Who the connection is, once authenticated.
struct Session {
    identity: Identity,
    /// Whether the client was warned of the expiry (`identity.expires_at`).
    warned: bool,
}

/// What a connection still has to do to authenticate. Boxed in [`Conn`]: connections that
/// authenticated on the upgrade never need it, and it is freed once they authenticate.
struct Pending {
    /// When it is closed if it has not authenticated.
    deadline: Instant,
    /// `?project_id=` of the connect URL: subscribed on authentication, if granted.
    project: Option<String>,
}

struct Conn {
    id: Uuid,
    state: AppState,
    outbox: Arc<Outbox>,
    subscriptions: Vec<Arc<str>>,
    /// Created on the first forward; most connections never forward.
    forwards: Option<JoinSet<ForwardResult>>,
    inflight: usize,
    /// `None` until the connection authenticates (by header or by its first frame).
    session: Option<Session>,
    /// Set while it has not authenticated.
    pending: Option<Box<Pending>>,
    /// Made on the first request, so an idle connection carries no rate state.
    rate: Option<Box<RequestRate>>,
}

/// A token to check, found by [`Conn::handle`] and checked by the loop (it may need a JWKS
/// fetch, so it is awaited there rather than in the synchronous request handler).
struct TokenCheck {
    token: String,
    refresh: bool,
    request_id: Option<Box<RawValue>>,
}

async fn run(
    socket: WebSocket,
    state: AppState,
    slot: ConnectionSlot,
    admitted: Admitted,
    project: Option<String>,
) {
    let id = Uuid::new_v4();
    let outbox = Arc::new(Outbox::new(
        state.config.limits.outbox_messages,
        state.config.guard.outbox_bytes,
    ));
    let Admitted { identity, ip_slot } = admitted;
    let pending = identity.is_none().then(|| {
        Box::new(Pending {
            deadline: Instant::now() + state.config.auth.timeout,
            project: None,
        })
    });
    let mut conn = Conn {
        id,
        state,
        outbox,
        subscriptions: Vec::new(),
        forwards: None,
        inflight: 0,
        session: None,
        pending,
        rate: None,
    };
    if let Some(p) = conn.pending.as_mut() {
        p.project = project;
    } else if let Some(p) = project {
        // `?project_id=` was checked against the grants at the upgrade (403 if not granted).
        conn.pending = Some(Box::new(Pending {
            deadline: Instant::now(),
            project: Some(p),
        }));
    }
    let mut follow = None;
    if let Some(identity) = identity {
        follow = conn.start_session(identity).await.ok().flatten();
    }
    let subs: Vec<String> = conn.subscriptions.iter().map(|s| s.to_string()).collect();
    let id_text = id.to_string();
    let limits = &conn.state.config.limits;
    let session = conn.session.as_ref().map(|s| &s.identity);
    conn.send(&Reply::Welcome {
        connection_id: &id_text,
        server_version: crate::VERSION,
        subscriptions: &subs,
        max_frame_bytes: limits.max_frame_bytes,
        max_subscriptions: limits.max_subscriptions,
        ping_interval_seconds: conn.state.config.keepalive.ping_interval.as_secs(),
        user_id: session.map(|i| &*i.user_id),
        expires_at: session.and_then(|i| i.expires_at),
        auth_timeout_seconds: conn.state.config.auth.timeout.as_secs(),
    });
    drop(subs);
    // After the welcome: the hub queues its `subscribed` (with the position) behind it.
    if let Some(p) = follow {
        conn.follow(p, None, None);
    }
    debug!(connection_id = %id, "connection opened");

    // Not split: one task reads and writes, so the halves' lock would only add work per poll.
    let mut socket = socket;
    let exit = conn.serve(&mut socket).await;
    // Boxed: the closing path is large and only needed once, so it does not grow the state
    // every idle connection carries.
    Box::pin(conn.finish(exit, &mut socket)).await;
    drop(slot);
    drop(ip_slot);
}

impl Conn {
    /// Queues a reply. A client whose queue is full is closed by the loop (overflow signal).
    /// A reply larger than the outbox's byte bound becomes a `reply_too_large` error instead of
    /// overflowing the outbox (which would close the connection as slow).
    fn send(&self, reply: &Reply<'_>) {
        let text = reply.to_text();
        if text.len() > self.outbox.max_bytes() {
            let request_id = match reply {
                Reply::Authenticated { request_id, .. } | Reply::Refreshed { request_id, .. } => {
                    *request_id
                }
                _ => None,
            };
            let message = format!(
                "the reply is {} bytes, over the limit of {} (WS_OUTBOX_BYTES); the request was done",
                text.len(),
                self.outbox.max_bytes()
            );
            let error = Reply::Error {
                request_id,
                code: ErrorCode::ReplyTooLarge,
                message: &message,
            };
            let _ = self.outbox.push_own(Utf8Bytes::from(error.to_text()));
            return;
        }
        let _ = self.outbox.push_own(Utf8Bytes::from(text));
    }

    fn send_error(&self, request_id: Option<&RawValue>, e: &RequestError) {
        incr(&self.state.metrics.invalid_requests);
        self.send(&Reply::Error {
            request_id,
            code: e.code,
            message: &e.message,
        });
    }

    /// The connection loop. One poll looks at everything in order of priority (drain,
    /// overflow, the outbox, forwards, the socket, the keepalive timer) and writes the outbox
    /// as soon as something is queued, so a reply or an update costs one pass, not several.
    async fn serve(&mut self, socket: &mut WebSocket) -> Exit {
        let keepalive = self.state.config.keepalive.clone();
        let max_inflight = self.state.config.limits.max_inflight_forwards;
        let write_timeout = self.state.config.guard.write_timeout;
        let mut drain = self.state.drain.watch();
        let outbox = self.outbox.clone();
        // The welcome is queued (own replies wake nobody; the loop writes after each event).
        let mut want_write = true;
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        // Since when the socket has refused to take more (the client is not reading).
        let mut stalled_since: Option<Instant> = None;
        let mut keepalive_at = last_heard + keepalive.ping_interval;
        let mut timer = pin!(tokio::time::sleep_until(
            keepalive_at.min(self.next_deadline())
        ));
        // Created once and kept registered, rather than once per pass of the loop.
        let window = self.state.config.drain_window;
        let mut draining = pin!(crate::shutdown::turn_to_close(&mut drain, window));
        let mut overflowed = pin!(outbox.overflowed_signal());
        let mut ready = pin!(outbox.ready());

        loop {
            let event = std::future::poll_fn(|cx| {
                if draining.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Exit(Exit::Draining));
                }
                if overflowed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Exit(Exit::TooSlow));
                }
                loop {
                    if want_write {
                        match poll_pump(socket, &outbox, cx) {
                            Poll::Ready(Ok(())) => {
                                want_write = false;
                                stalled_since = None;
                            }
                            Poll::Ready(Err(_)) => {
                                return Poll::Ready(Event::Exit(Exit::ClientGone));
                            }
                            Poll::Pending => {
                                if stalled_since.is_none() {
                                    let now = Instant::now();
                                    stalled_since = Some(now);
                                    let at = now + write_timeout;
                                    if at < timer.deadline() {
                                        timer.as_mut().reset(at);
                                    }
                                }
                                break;
                            }
                        }
                    }
                    // Nothing left to write: wait for the next frame (ready at once if one came).
                    if ready.as_mut().poll(cx).is_pending() {
                        break;
                    }
                    ready.set(outbox.ready());
                    want_write = true;
                }
                if self.inflight > 0
                    && let Some(set) = self.forwards.as_mut()
                    && let Poll::Ready(Some(done)) = set.poll_join_next(cx)
                {
                    return Poll::Ready(Event::Forwarded(done));
                }
                if self.inflight < max_inflight
                    && let Poll::Ready(msg) = socket.poll_next_unpin(cx)
                {
                    return Poll::Ready(Event::Read(msg));
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Exit(exit) => return exit,
                Event::Forwarded(done) => {
                    self.inflight -= 1;
                    self.reply_forward(done);
                    want_write = true;
                }
                Event::Read(msg) => {
                    last_heard = Instant::now();
                    let step = match msg {
                        None => return Exit::ClientGone,
                        Some(Err(e)) => return read_error(e),
                        Some(Ok(Message::Close(_))) => return Exit::ClientClosed,
                        Some(Ok(m)) => self.handle(m),
                    };
                    match step {
                        Step::Done => {}
                        Step::Exit(exit) => return exit,
                        // Boxed: a token check is rare and its future is large.
                        Step::Check(check) => {
                            if let Err(exit) = Box::pin(self.check_token(check)).await {
                                return exit;
                            }
                        }
                    }
                    // Also flushes what the WebSocket layer queued itself (a pong to a ping).
                    want_write = true;
                }
                Event::Timer => {
                    let now = Instant::now();
                    if stalled_since.is_some_and(|t| now >= t + write_timeout) {
                        return Exit::Stalled;
                    }
                    if let Some(exit) = self.check_deadlines(now) {
                        return exit;
                    }
                    want_write = true;
                    if now >= keepalive_at {
                        if let Some(sent) = ping_sent {
                            if last_heard < sent {
                                return Exit::KeepaliveTimeout;
                            }
                            ping_sent = None;
                        }
                        let quiet_until = last_heard + keepalive.ping_interval;
                        if now >= quiet_until {
                            let ping = socket.send(Message::Ping(bytes::Bytes::new()));
                            // Boxed for the same reason as the closing path.
                            let ping = Box::pin(tokio::time::timeout(keepalive.pong_timeout, ping));
                            if !matches!(ping.await, Ok(Ok(()))) {
                                return Exit::KeepaliveTimeout;
                            }
                            ping_sent = Some(now);
                            keepalive_at = now + keepalive.pong_timeout;
                        } else {
                            keepalive_at = quiet_until;
                        }
                    }
                    let mut next = keepalive_at.min(self.next_deadline());
                    if let Some(t) = stalled_since {
                        next = next.min(t + write_timeout);
                    }
                    timer.as_mut().reset(next);
                }
            }
            // A new session moves the deadlines (authentication, refresh).
            let next = self.next_deadline();
            if next < timer.deadline() {
                timer.as_mut().reset(next);
            }
        }
    }

    /// The earliest of the authentication deadline, the expiry warning and the expiry.
    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        match (&self.session, &self.pending) {
            (None, Some(p)) => p.deadline,
            (Some(s), _) => match s.identity.expires_at {
                Some(exp) => {
                    let left = until_unix(exp);
                    if s.warned {
                        now + left
                    } else {
                        now + left.saturating_sub(self.state.config.auth.expiry_warning)
                    }
                }
                None => now + Duration::from_secs(86_400 * 365),
            },
            (None, None) => now,
        }
    }

    /// Closes an unauthenticated connection past its deadline and an expired session; warns
    /// shortly before the expiry.
    fn check_deadlines(&mut self, now: Instant) -> Option<Exit> {
        let warning = self.state.config.auth.expiry_warning;
        let Some(session) = &mut self.session else {
            let late = self.pending.as_ref().is_none_or(|p| now >= p.deadline);
            return late.then_some(Exit::AuthTimeout);
        };
        let exp = session.identity.expires_at?;
        let left = until_unix(exp);
        if left.is_zero() {
            return Some(Exit::TokenExpired);
        }
        if !session.warned && left <= warning {
            session.warned = true;
            self.send(&Reply::TokenExpiring {
                expires_at: exp,
                seconds_left: left.as_secs(),
            });
        }
        None
    }

    /// Starts (or, on refresh, replaces) the session: the hub learns the user, and the
    /// subscriptions follow the grants.
    ///
    /// Returns the `?project_id=` to hand the hub once the reply that reports the session is
    /// queued (its `subscribed` follows that reply), or the refusal of one the token does not
    /// grant, to be sent after that reply.
    async fn start_session(
        &mut self,
        identity: Identity,
    ) -> Result<Option<Arc<str>>, RequestError> {
        let hub = &self.state.hub;
        match self.session.take() {
            None => hub.join(self.id, self.outbox.clone()),
            Some(old) if old.identity.user_id != identity.user_id => {
                hub.leave_user(&old.identity.user_id, self.id);
            }
            Some(_) => {}
        }
        let user_ready = hub.join_user(&identity.user_id, self.id, &self.outbox);
        // Subscriptions the new grants do not cover end now.
        let grants = identity.grants.clone();
        self.subscriptions.retain(|p| {
            let keep = grants.project(p);
            if !keep {
                hub.unsubscribe(p, self.id);
            }
            keep
        });
        self.session = Some(Session {
            identity,
            warned: false,
        });
        // With the broker, the user's channel is subscribed before the client hears it is
        // authenticated, so a publish for the user after that reply reaches it. Bounded, in
        // case the broker stops answering right then (the hub does not wait while it is down).
        let _ = tokio::time::timeout(crate::broker::BROKER_TIMEOUT, user_ready).await;
        let Some(p) = self.pending.take().and_then(|p| p.project) else {
            return Ok(None);
        };
        if grants.project(&p) {
            let p: Arc<str> = Arc::from(p);
            self.subscriptions.push(p.clone());
            return Ok(Some(p));
        }
        incr(&self.state.metrics.forbidden);
        Err(RequestError::new(
            ErrorCode::Forbidden,
            "the token does not grant the project_id of the connect URL; not subscribed",
        ))
    }

    /// Checks an `authenticate` or `refresh` token. `Err` closes the connection (a failed
    /// `authenticate`); a failed `refresh` only gets its error reply and changes nothing.
    async fn check_token(&mut self, check: TokenCheck) -> Result<(), Exit> {
        let rid = check.request_id.as_deref();
        match (&self.session, check.refresh) {
            (Some(_), false) if !self.state.auth.is_disabled() => {
                self.send_error(
                    rid,
                    &RequestError::new(
                        ErrorCode::AlreadyAuthenticated,
                        "this connection is already authenticated; send refresh with a new token",
                    ),
                );
                return Ok(());
            }
            (None, true) => {
                self.send_error(
                    rid,
                    &RequestError::new(
                        ErrorCode::Unauthenticated,
                        "nothing to refresh: authenticate first",
                    ),
                );
                return Ok(());
            }
            _ => {}
        }
        let result = self.state.auth.verify(&check.token).await;
        let result = match (&self.session, result) {
            (Some(s), Ok(new)) if check.refresh && s.identity.user_id != new.user_id => {
                Err(crate::auth::TokenError::Invalid(format!(
                    "a refresh must be for the same user: this connection is {:?}",
                    crate::protocol::short(&s.identity.user_id)
                )))
            }
            (_, r) => r,
        };
        match result {
            Ok(identity) => {
                let pending = self.start_session(identity).await;
                let Some(session) = &self.session else {
                    return Ok(());
                };
                let i = &session.identity;
                let info = SessionInfo {
                    user_id: &i.user_id,
                    expires_at: i.expires_at,
                    projects: i.grants.projects_list(),
                    queues: i.grants.queues_list(),
                    subscriptions: self.subscriptions.iter().map(|s| &**s).collect(),
                };
                self.send(&if check.refresh {
                    Reply::Refreshed {
                        request_id: rid,
                        session: info,
                    }
                } else {
                    Reply::Authenticated {
                        request_id: rid,
                        session: info,
                    }
                });
                match pending {
                    Ok(Some(p)) => self.follow(p, None, None),
                    Ok(None) => {}
                    Err(e) => self.send_error(None, &e),
                }
                Ok(())
            }
            Err(e) => {
                incr(&self.state.metrics.auth_failures);
                self.send_error(rid, &e.to_request_error());
                if check.refresh {
                    Ok(())
                } else {
                    Err(Exit::AuthFailed(e.message()))
                }
            }
        }
    }

    fn handle(&mut self, msg: Message) -> Step {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                incr(&self.state.metrics.messages_received);
                if let Some(step) = self.over_rate(None) {
                    return step;
                }
                self.send_error(
                    None,
                    &RequestError::new(
                        ErrorCode::BinaryNotSupported,
                        "binary frames are not supported; send JSON as a text frame",
                    ),
                );
                return Step::Done;
            }
            // Pings are answered by the WebSocket layer; pongs only prove liveness.
            _ => return Step::Done,
        };
        incr(&self.state.metrics.messages_received);
        let max = self.state.config.limits.max_frame_bytes;
        if text.len() > max {
            if let Some(step) = self.over_rate(None) {
                return step;
            }
            self.send_error(
                None,
                &RequestError::new(
                    ErrorCode::FrameTooLarge,
                    format!(
                        "frame of {} bytes is over the limit of {max} bytes",
                        text.len()
                    ),
                ),
            );
            return Step::Done;
        }
        let parsed = parse_request(&text);
        let rid = parsed.request_id.as_deref();
        if let Some(step) = self.over_rate(rid) {
            return step;
        }
        let action = match parsed.action {
            Err(e) => {
                self.send_error(rid, &e);
                return Step::Done;
            }
            Ok(Action::Authenticate { token, refresh }) => {
                return Step::Check(TokenCheck {
                    token,
                    refresh,
                    request_id: parsed.request_id,
                });
            }
            Ok(a) => a,
        };
        let Some(session) = &self.session else {
            self.send_error(
                rid,
                &RequestError::new(
                    ErrorCode::Unauthenticated,
                    "authenticate first: {\"action\":\"authenticate\",\"token\":\"<jwt>\"}",
                ),
            );
            return Step::Done;
        };
        let grants = session.identity.grants.clone();
        match action {
            Action::Authenticate { .. } => {}
            Action::Ping => self.send(&Reply::Pong {
                request_id: rid,
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
            Action::Subscribe { project_id, since } => {
                if !grants.project(&project_id) {
                    self.forbidden(rid, "the token does not grant this project");
                } else {
                    self.subscribe(rid, project_id, since);
                }
            }
            Action::Unsubscribe { project_id } => {
                if let Some(i) = self.subscriptions.iter().position(|s| **s == *project_id) {
                    self.subscriptions.swap_remove(i);
                    self.state.hub.unsubscribe(&project_id, self.id);
                }
                self.send(&Reply::Unsubscribed {
                    request_id: rid,
                    project_id: &project_id,
                });
            }
            Action::Forward {
                queue,
                project_id,
                data,
            } => {
                if !grants.queue(queue) {
                    self.forbidden(rid, "the token does not grant this queue");
                    return Step::Done;
                }
                if let Some(p) = &project_id
                    && !grants.project(p)
                {
                    self.forbidden(rid, "the token does not grant this project");
                    return Step::Done;
                }
                let f = Forward {
                    queue,
                    project_id,
                    data,
                    connection_id: self.id.to_string(),
                    user_id: session.identity.user_id.to_string(),
                    request_id: parsed.request_id,
                };
                let state = self.state.clone();
                self.inflight += 1;
                self.forwards
                    .get_or_insert_with(JoinSet::new)
                    .spawn(async move {
                        let result = state.forwarder.send(&f).await;
                        (f.queue, f.request_id, result)
                    });
            }
        }
        Step::Done
    }

    /// `Some` when the request must not be processed: over the rate (answered
    /// `rate_limited`) or abusive (the connection is closed).
    fn over_rate(&mut self, rid: Option<&RawValue>) -> Option<Step> {
        let guard = &self.state.config.guard;
        let rate = self
            .rate
            .get_or_insert_with(|| Box::new(RequestRate::new(guard)));
        match rate.check() {
            Verdict::Allowed => None,
            Verdict::Refused => {
                incr(&self.state.metrics.rate_limited);
                let g = &self.state.config.guard;
                self.send(&Reply::Error {
                    request_id: rid,
                    code: ErrorCode::RateLimited,
                    message: &format!(
                        "over {} requests a second (burst {}); this request was not processed, slow down and send it again",
                        g.rate_per_second, g.rate_burst
                    ),
                });
                Some(Step::Done)
            }
            Verdict::Abusive => {
                incr(&self.state.metrics.rate_limited);
                Some(Step::Exit(Exit::RateAbuse))
            }
        }
    }

    fn forbidden(&self, rid: Option<&RawValue>, why: &str) {
        incr(&self.state.metrics.forbidden);
        self.send(&Reply::Error {
            request_id: rid,
            code: ErrorCode::Forbidden,
            message: why,
        });
    }

    fn subscribe(&mut self, rid: Option<&RawValue>, project_id: String, since: Option<Since>) {
        let known = self
            .subscriptions
            .iter()
            .find(|s| ***s == *project_id)
            .cloned();
        let p = match known {
            Some(p) => p,
            None => {
                let max = self.state.config.limits.max_subscriptions;
                if self.subscriptions.len() >= max {
                    return self.send_error(
                        rid,
                        &RequestError::new(
                            ErrorCode::TooManySubscriptions,
                            format!("a connection may follow at most {max} projects; unsubscribe from one first"),
                        ),
                    );
                }
                Arc::from(project_id.as_str())
            }
        };
        self.follow(p, since, rid.map(|r| r.to_owned()));
    }

    /// Hands the subscription to the hub, which answers `subscribed` (maybe after reading the
    /// broker) followed by the replay after `since`.
    fn follow(&mut self, p: Arc<str>, since: Option<Since>, request_id: Option<Box<RawValue>>) {
        if !self.subscriptions.contains(&p) {
            self.subscriptions.push(p.clone());
        }
        self.state.hub.subscribe(SubscribeRequest {
            project: p,
            id: self.id,
            outbox: self.outbox.clone(),
            since,
            request_id,
        });
    }

    fn reply_forward(&self, done: Result<ForwardResult, tokio::task::JoinError>) {
        let m = &self.state.metrics;
        match done {
            Ok((queue, rid, Ok(message_id))) => {
                incr(&m.forwards_succeeded);
                self.send(&Reply::Forwarded {
                    request_id: rid.as_deref(),
                    queue,
                    message_id: &message_id,
                });
            }
            Ok((_, rid, Err(e))) => {
                incr(&m.forwards_failed);
                self.send(&Reply::Error {
                    request_id: rid.as_deref(),
                    code: e.code,
                    message: &e.message,
                });
            }
            Err(e) => {
                incr(&m.forwards_failed);
                let e = RequestError::new(
                    ErrorCode::QueueError,
                    format!("forward did not finish: {e}"),
                );
                self.send(&Reply::Error {
                    request_id: None,
                    code: e.code,
                    message: &e.message,
                });
            }
        }
    }

    /// Closes the connection the way `exit` calls for, then forgets it.
    async fn finish(mut self, exit: Exit, socket: &mut WebSocket) {
        let id = self.id;
        if matches!(
            exit,
            Exit::AuthFailed(_) | Exit::AuthTimeout | Exit::TokenExpired | Exit::RateAbuse
        ) {
            // The error reply or warning that explains the close goes out before it.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, pump(socket, &self.outbox)).await;
        }
        let close = match &exit {
            Exit::Draining => {
                // Forwards in flight complete and their replies go out before the close.
                while self.inflight > 0 {
                    match join_next(&mut self.forwards).await {
                        Some(done) => self.reply_forward(done),
                        None => break,
                    }
                    self.inflight -= 1;
                }
                self.send(&Reply::Reconnect {
                    reason: "draining",
                    jitter_ms: crate::shutdown::RECONNECT_JITTER_MS,
                });
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, pump(socket, &self.outbox)).await;
                Some((
                    close_code::GOING_AWAY,
                    "server shutting down; connect again".into(),
                ))
            }
            Exit::TooSlow => {
                incr(&self.state.metrics.slow_clients_closed);
                info!(connection_id = %id, "closing a client that fell behind (outbound queue full)");
                Some((
                    close_code::POLICY,
                    "too slow: outbound queue overflowed".into(),
                ))
            }
            Exit::KeepaliveTimeout => {
                incr(&self.state.metrics.keepalive_timeouts);
                info!(connection_id = %id, "closing a client that stopped answering pings");
                Some((
                    close_code::POLICY,
                    "keepalive timeout: no answer to ping".into(),
                ))
            }
            Exit::TooBig => Some((close_code::TOO_BIG, "frame far over the size limit".into())),
            Exit::ReadError(e) => {
                debug!(connection_id = %id, error = %e, "read error");
                Some((close_code::PROTOCOL_ERROR, "protocol error".into()))
            }
            Exit::InvalidUtf8 => Some((
                close_code::INVALID_PAYLOAD,
                "invalid UTF-8 in a text frame".into(),
            )),
            Exit::Stalled => {
                incr(&self.state.metrics.slow_clients_closed);
                info!(connection_id = %id, "closing a client that stopped reading");
                Some((
                    close_code::POLICY,
                    "too slow: outbound writes stalled".into(),
                ))
            }
            Exit::AuthTimeout => {
                incr(&self.state.metrics.auth_failures);
                let secs = self.state.config.auth.timeout.as_secs();
                Some((
                    close_code::POLICY,
                    format!("auth timeout: authenticate within {secs} s"),
                ))
            }
            Exit::AuthFailed(why) => Some((close_code::POLICY, close_reason("auth failed", why))),
            Exit::TokenExpired => Some((
                close_code::POLICY,
                "token expired: refresh before expires_at".into(),
            )),
            Exit::RateAbuse => {
                info!(connection_id = %id, "closing a client that kept sending over its rate");
                Some((close_code::POLICY, "rate limit: too many requests".into()))
            }
            Exit::ClientClosed | Exit::ClientGone => None,
        };
        // Whatever the client left in flight still reaches its queue.
        if let Some(set) = self.forwards.as_mut() {
            set.detach_all();
        }
        self.outbox.close();
        self.state.hub.leave(id, &self.subscriptions);
        if let Some(s) = &self.session {
            self.state.hub.leave_user(&s.identity.user_id, id);
        }
        match close {
            Some((code, reason)) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from(reason),
                };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    if socket.send(Message::Close(Some(frame))).await.is_ok() {
                        // Wait for the client's close frame, which ends the stream.
                        while let Some(Ok(_)) = socket.next().await {}
                    }
                })
                .await;
            }
            None => {
                // Completes the close handshake the client started (the reply is queued).
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await;
            }
        }
        debug!(connection_id = %id, reason = ?exit, "connection closed");
    }
}

/// Writes everything queued in the outbox and flushes.
async fn pump(socket: &mut WebSocket, outbox: &Outbox) -> Result<(), axum::Error> {
    std::future::poll_fn(|cx| poll_pump(socket, outbox, cx)).await
}

/// One step of [`pump`]. Cancel-safe: a frame is taken from the outbox only once the socket
/// has room for it, and handing it over does not wait.
fn poll_pump(
    socket: &mut WebSocket,
    outbox: &Outbox,
    cx: &mut Context<'_>,
) -> Poll<Result<(), axum::Error>> {
    loop {
        std::task::ready!(socket.poll_ready_unpin(cx))?;
        match outbox.pop() {
            Some(frame) => socket.start_send_unpin(Message::Text(frame))?,
            None => break,
        }
    }
    socket.poll_flush_unpin(cx)
}

async fn join_next(
    set: &mut Option<JoinSet<ForwardResult>>,
) -> Option<Result<ForwardResult, tokio::task::JoinError>> {
    match set {
        Some(s) => s.join_next().await,
        None => None,
    }
}

/// `prefix: why`, cut to the 123 bytes a close reason may have.
fn close_reason(prefix: &str, why: &str) -> String {
    let mut r = format!("{prefix}: {why}");
    let mut end = r.len().min(123);
    while !r.is_char_boundary(end) {
        end -= 1;
    }
    r.truncate(end);
    r
}

/// Time left until the unix time `at` (zero once it has passed).
fn until_unix(at: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(at).saturating_sub(now)
}

fn read_error(e: axum::Error) -> Exit {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Utf8(_)) => Exit::InvalidUtf8,
        Some(tungstenite::Error::Capacity(_)) => Exit::TooBig,
        Some(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            Exit::ClientGone
        }
        Some(tungstenite::Error::Io(_)) => Exit::ClientGone,
        Some(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )) => Exit::ClientGone,
        _ => Exit::ReadError(inner.to_string()),
    }
}
