//! One WebSocket connection: the upgrade on `/ws`, then a single task that reads requests,
//! writes replies and updates from the connection's outbox, runs forwards, and keeps the
//! connection alive, until the client leaves, falls behind, goes silent or the server drains.
//!
//! Everything for one connection happens in one task with small, fixed state, so an idle
//! connection costs a few kilobytes (see `docs/protocol.md`, Limits).
//!
//! This file holds the upgrade, the loop and the close. What the client asks for is handled
//! in the submodules of `connection/`, one per action: `request` checks a frame and dispatches
//! it to `authenticate` (also `refresh`), `ping`, `subscribe`, `unsubscribe` or `forward`;
//! `session` is who the connection is and when that runs out.

mod authenticate;
mod forward;
mod ping;
mod request;
mod session;
mod subscribe;
mod unsubscribe;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::{debug, info};
use uuid::Uuid;

use self::forward::ForwardResult;
use self::request::Step;
use self::session::{Pending, Session};
use crate::AppState;
use crate::admission::{Admitted, refuse};
use crate::auth::Identity;
use crate::limits::RequestRate;
use crate::metrics::incr;
use crate::outbox::Outbox;
use crate::protocol::{ErrorCode, Reply, RequestError, check_id};
use crate::shutdown::ConnectionSlot;
use crate::transport::{Handshake, Socket};

/// Read buffer of one connection, also the most read from the socket at once: requests are
/// small, and a larger frame grows the buffer on demand (at the cost of more reads).
pub const READ_BUFFER_BYTES: usize = 256;
/// tungstenite writes its own frames (pong, ping, close) into the outbox at once: it keeps no
/// write buffer of its own.
pub const WRITE_BUFFER_BYTES: usize = 0;
/// How long a close handshake may take before the socket is simply dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket close codes (RFC 6455, section 7.4.1) the server sends.
pub mod close_code {
    /// The server is draining: connect again.
    pub const GOING_AWAY: u16 = 1001;
    /// The frames broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Too slow, silent, over the rate, or not authenticated.
    pub const POLICY: u16 = 1008;
    /// A frame far over the size limit.
    pub const TOO_BIG: u16 = 1009;
}

#[derive(serde::Deserialize)]
/// The query of `GET /ws`.
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
    ws: Handshake,
) -> Response {
    if state.drain.is_draining() {
        incr(&state.metrics.connections_refused);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "server is shutting down; connect again",
        );
    }
    if let Some(Err(message)) = query
        .project_id
        .as_deref()
        .map(|p| check_id("project_id", p))
    {
        return refuse(StatusCode::BAD_REQUEST, "invalid_project_id", &message);
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
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * limits.max_frame_bytes + 4096)
        .max_frame_size(Some(hard))
        .max_message_size(Some(hard));
    let outbox = Arc::new(Outbox::new(
        limits.outbox_messages,
        state.config.guard.outbox_bytes,
    ));
    let start = Box::new(Start {
        state,
        slot,
        admitted,
        project: query.project_id,
    });
    ws.accept(config, outbox, move |socket, outbox| {
        run(socket, outbox, start)
    })
}

/// What the upgrade hands the connection. Boxed into the upgrade's closure, which the
/// connection's task keeps for its whole life: there it costs a pointer, not a copy.
struct Start {
    state: AppState,
    slot: ConnectionSlot,
    admitted: Admitted,
    project: Option<String>,
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

/// What woke the connection loop, besides the outbox (which it writes as part of waiting).
enum Event {
    Exit(Exit),
    /// The server began to drain: the connection closes at its turn.
    Drain,
    Read(Option<Result<Message, tungstenite::Error>>),
    Forwarded(Result<ForwardResult, tokio::task::JoinError>),
    Timer,
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

/// The connection's task. Not an `async fn`: its arguments would stay in the future for the
/// connection's life next to the copies the body makes of them (the socket twice, the upgrade's
/// `Start` besides the `Conn` made of it). The block below keeps the socket once, used in place.
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn run(mut socket: Socket, outbox: Arc<Outbox>, start: Box<Start>) -> impl Future<Output = ()> {
    async move {
        let Start {
            state,
            slot,
            admitted,
            project,
        } = *start;
        let Admitted { identity, ip_slot } = admitted;
        let (mut conn, follow) = Conn::open(state, identity, project, outbox).await;
        // The welcome is written alone: tungstenite's write buffer keeps the capacity of the
        // largest batch it held for the connection's life, and the welcome with the
        // `subscribed` of `?project_id=` behind it would about double it.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, pump(&mut socket, &conn.outbox)).await;
        // After the welcome: the hub queues its `subscribed` (with the position) behind it.
        if let Some(p) = follow {
            conn.follow(p, None, None);
        }
        let exit = conn.serve(&mut socket).await;
        // Boxed: the closing path is large and only needed once, so it does not grow the state
        // every idle connection carries.
        Box::pin(conn.finish(exit, &mut socket)).await;
        drop(slot);
        drop(ip_slot);
    }
}

impl Conn {
    /// The connection's state once upgraded: its outbox, its session when the upgrade
    /// authenticated it (the hub then knows the user), and the welcome queued; with the
    /// `?project_id=` to follow once the welcome is out.
    async fn open(
        state: AppState,
        identity: Option<Identity>,
        project: Option<String>,
        outbox: Arc<Outbox>,
    ) -> (Self, Option<Arc<str>>) {
        let id = Uuid::new_v4();
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
        debug!(connection_id = %id, "connection opened");
        (conn, follow)
    }

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
    async fn serve(&mut self, socket: &mut Socket) -> Exit {
        // Settings are read from the configuration where used, not copied: every copy kept
        // across an await is a few bytes more in each connection's task.
        let mut drain = self.state.drain.watch();
        let outbox = self.outbox.clone();
        // The welcome is queued (own replies wake nobody; the loop writes after each event).
        let mut want_write = true;
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        // Since when the socket has refused to take more (the client is not reading).
        let mut stalled_since: Option<Instant> = None;
        let mut keepalive_at = last_heard + self.state.config.keepalive.ping_interval;
        let mut timer = pin!(tokio::time::sleep_until(
            keepalive_at.min(self.next_deadline())
        ));
        // Created once and kept registered, rather than once per pass of the loop.
        let mut draining = pin!(crate::shutdown::draining(&mut drain));
        // Once the drain began: this connection's turn to close, waited for by `timer` rather
        // than by a second timer of its own (see `shutdown::turn_to_close`).
        let mut close_at: Option<Instant> = None;
        let mut overflowed = pin!(outbox.overflowed_signal());
        let mut ready = pin!(outbox.ready());

        loop {
            let event = std::future::poll_fn(|cx| {
                match close_at {
                    None if draining.as_mut().poll(cx).is_ready() => {
                        return Poll::Ready(Event::Drain);
                    }
                    Some(at) if Instant::now() >= at => {
                        return Poll::Ready(Event::Exit(Exit::Draining));
                    }
                    _ => {}
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
                                    let at = now + self.state.config.guard.write_timeout;
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
                if self.inflight < self.state.config.limits.max_inflight_forwards
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
                Event::Drain => {
                    let at = crate::shutdown::turn_to_close(self.state.config.drain_window);
                    if at <= Instant::now() {
                        return Exit::Draining;
                    }
                    close_at = Some(at);
                }
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
                    if close_at.is_some_and(|t| now >= t) {
                        return Exit::Draining;
                    }
                    let write_timeout = self.state.config.guard.write_timeout;
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
                        let keepalive = &self.state.config.keepalive;
                        let quiet_until = last_heard + keepalive.ping_interval;
                        if now >= quiet_until {
                            let ping = socket.send(Message::Ping(bytes::Bytes::new()));
                            // Boxed for the same reason as the closing path.
                            let pong_timeout = keepalive.pong_timeout;
                            let ping = Box::pin(tokio::time::timeout(pong_timeout, ping));
                            if !matches!(ping.await, Ok(Ok(()))) {
                                return Exit::KeepaliveTimeout;
                            }
                            ping_sent = Some(now);
                            keepalive_at = now + pong_timeout;
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
            // A new session moves the deadlines (authentication, refresh); a drain adds one.
            let mut next = self.next_deadline();
            if let Some(t) = close_at {
                next = next.min(t);
            }
            if next < timer.deadline() {
                timer.as_mut().reset(next);
            }
        }
    }

    /// Closes the connection the way `exit` calls for, then forgets it.
    async fn finish(mut self, exit: Exit, socket: &mut Socket) {
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
                    code: code.into(),
                    reason: Utf8Bytes::from(reason),
                };
                let outbox = &self.outbox;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    if socket.send(Message::Close(Some(frame))).await.is_ok()
                        && pump(socket, outbox).await.is_ok()
                    {
                        // Wait for the client's close frame, which ends the stream.
                        while let Some(Ok(_)) = socket.next().await {}
                    }
                })
                .await;
            }
            None => {
                // Completes the close handshake the client started: tungstenite frames the
                // reply while reading, the outbox writes it.
                let outbox = &self.outbox;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    while let Some(Ok(_)) = socket.next().await {}
                    let _ = pump(socket, outbox).await;
                })
                .await;
            }
        }
        debug!(connection_id = %id, reason = ?exit, "connection closed");
    }
}

/// Writes everything queued in the outbox (with what tungstenite framed itself).
async fn pump(socket: &mut Socket, outbox: &Outbox) -> Result<(), tungstenite::Error> {
    std::future::poll_fn(|cx| poll_pump(socket, outbox, cx)).await
}

/// One step of [`pump`]: what tungstenite holds (a pong to a ping it read) into the outbox,
/// then the outbox into the socket. Cancel-safe: neither waits once it has started a write.
fn poll_pump(
    socket: &mut Socket,
    outbox: &Outbox,
    cx: &mut Context<'_>,
) -> Poll<Result<(), tungstenite::Error>> {
    std::task::ready!(socket.poll_flush_unpin(cx))?;
    outbox.poll_flush(cx).map_err(tungstenite::Error::Io)
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

fn read_error(e: tungstenite::Error) -> Exit {
    match e {
        tungstenite::Error::Utf8(_) => Exit::InvalidUtf8,
        tungstenite::Error::Capacity(_) => Exit::TooBig,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            Exit::ClientGone
        }
        tungstenite::Error::Io(_) => Exit::ClientGone,
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => Exit::ClientGone,
        other => Exit::ReadError(other.to_string()),
    }
}
