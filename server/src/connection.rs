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
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tracing::{debug, info};
use uuid::Uuid;

use crate::AppState;
use crate::forward::Forward;
use crate::hub::SubscribeRequest;
use crate::metrics::incr;
use crate::outbox::Outbox;
use crate::protocol::{
    Action, ErrorCode, QueueKind, Reply, RequestError, Since, parse_request, valid_project_id,
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
    Query(query): Query<ConnectQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if state.drain.is_draining() {
        incr(&state.metrics.connections_refused);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "server is shutting down; connect again",
        );
    }
    if let Some(p) = &query.project_id
        && !valid_project_id(p)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "project_id must be a non-empty string of at most 256 bytes without control characters",
        );
    }
    if state.connect_rate.check().is_err() {
        incr(&state.metrics.connections_refused);
        return connect_rate_refusal();
    }
    let limits = &state.config.limits;
    let Some(slot) = state.drain.try_open(limits.max_connections) else {
        incr(&state.metrics.connections_refused);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection limit of this task reached; connect again",
        );
    };
    let hard = limits.hard_frame_bytes();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * limits.max_frame_bytes + 4096)
        .max_frame_size(hard)
        .max_message_size(hard)
        .on_upgrade(move |socket| run(socket, state, slot, query.project_id))
}

/// A reconnect wave beyond `WS_CONNECT_RATE`: try again shortly (a client adds jitter).
fn connect_rate_refusal() -> Response {
    let body = serde_json::json!({
        "code": "connect_rate",
        "error": "too many connections are being opened on this task; connect again after a random delay",
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        axum::Json(body),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
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

struct Conn {
    id: Uuid,
    state: AppState,
    outbox: Arc<Outbox>,
    subscriptions: Vec<Arc<str>>,
    /// Created on the first forward; most connections never forward.
    forwards: Option<JoinSet<ForwardResult>>,
    inflight: usize,
}

async fn run(socket: WebSocket, state: AppState, slot: ConnectionSlot, project: Option<String>) {
    let id = Uuid::new_v4();
    let outbox = Arc::new(Outbox::new(state.config.limits.outbox_messages));
    state.hub.join(id, outbox.clone());
    let mut conn = Conn {
        id,
        state,
        outbox,
        subscriptions: Vec::new(),
        forwards: None,
        inflight: 0,
    };
    let p: Option<Arc<str>> = project.map(Arc::from);
    let subs: Vec<String> = p.iter().map(|s| s.to_string()).collect();
    let id_text = id.to_string();
    let limits = &conn.state.config.limits;
    conn.send(&Reply::Welcome {
        connection_id: &id_text,
        server_version: crate::VERSION,
        subscriptions: &subs,
        max_frame_bytes: limits.max_frame_bytes,
        max_subscriptions: limits.max_subscriptions,
        ping_interval_seconds: conn.state.config.keepalive.ping_interval.as_secs(),
    });
    drop(subs);
    // After the welcome: the hub queues its `subscribed` (with the position) behind it.
    if let Some(p) = p {
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
}

impl Conn {
    /// Queues a reply. A client whose queue is full is closed by the loop (overflow signal).
    fn send(&self, reply: &Reply<'_>) {
        let _ = self.outbox.push_own(Utf8Bytes::from(reply.to_text()));
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
        let mut drain = self.state.drain.watch();
        let outbox = self.outbox.clone();
        // The welcome is queued (own replies wake nobody; the loop writes after each event).
        let mut want_write = true;
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let mut timer = pin!(tokio::time::sleep(keepalive.ping_interval));
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
                            Poll::Ready(Ok(())) => want_write = false,
                            Poll::Ready(Err(_)) => {
                                return Poll::Ready(Event::Exit(Exit::ClientGone));
                            }
                            Poll::Pending => break,
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
                    match msg {
                        None => return Exit::ClientGone,
                        Some(Err(e)) => return read_error(e),
                        Some(Ok(Message::Close(_))) => return Exit::ClientClosed,
                        Some(Ok(m)) => self.handle(m),
                    }
                    // Also flushes what the WebSocket layer queued itself (a pong to a ping).
                    want_write = true;
                }
                Event::Timer => {
                    let now = Instant::now();
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
                        timer.as_mut().reset(now + keepalive.pong_timeout);
                    } else {
                        timer.as_mut().reset(quiet_until);
                    }
                }
            }
        }
    }

    fn handle(&mut self, msg: Message) {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                incr(&self.state.metrics.messages_received);
                return self.send_error(
                    None,
                    &RequestError::new(
                        ErrorCode::BinaryNotSupported,
                        "binary frames are not supported; send JSON as a text frame",
                    ),
                );
            }
            // Pings are answered by the WebSocket layer; pongs only prove liveness.
            _ => return,
        };
        incr(&self.state.metrics.messages_received);
        let max = self.state.config.limits.max_frame_bytes;
        if text.len() > max {
            return self.send_error(
                None,
                &RequestError::new(
                    ErrorCode::FrameTooLarge,
                    format!(
                        "frame of {} bytes is over the limit of {max} bytes",
                        text.len()
                    ),
                ),
            );
        }
        let parsed = parse_request(&text);
        let rid = parsed.request_id.as_deref();
        match parsed.action {
            Err(e) => self.send_error(rid, &e),
            Ok(Action::Ping) => self.send(&Reply::Pong {
                request_id: rid,
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
            Ok(Action::Subscribe { project_id, since }) => self.subscribe(rid, project_id, since),
            Ok(Action::Unsubscribe { project_id }) => {
                if let Some(i) = self.subscriptions.iter().position(|s| **s == *project_id) {
                    self.subscriptions.swap_remove(i);
                    self.state.hub.unsubscribe(&project_id, self.id);
                }
                self.send(&Reply::Unsubscribed {
                    request_id: rid,
                    project_id: &project_id,
                });
            }
            Ok(Action::Forward {
                queue,
                project_id,
                data,
            }) => {
                let f = Forward {
                    queue,
                    project_id,
                    data,
                    connection_id: self.id.to_string(),
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
                    "server shutting down; connect again",
                ))
            }
            Exit::TooSlow => {
                incr(&self.state.metrics.slow_clients_closed);
                info!(connection_id = %id, "closing a client that fell behind (outbound queue full)");
                Some((close_code::POLICY, "too slow: outbound queue overflowed"))
            }
            Exit::KeepaliveTimeout => {
                incr(&self.state.metrics.keepalive_timeouts);
                info!(connection_id = %id, "closing a client that stopped answering pings");
                Some((close_code::POLICY, "keepalive timeout: no answer to ping"))
            }
            Exit::TooBig => Some((close_code::TOO_BIG, "frame far over the size limit")),
            Exit::ReadError(e) => {
                debug!(connection_id = %id, error = %e, "read error");
                Some((close_code::PROTOCOL_ERROR, "protocol error"))
            }
            Exit::ClientClosed | Exit::ClientGone => None,
        };
        // Whatever the client left in flight still reaches its queue.
        if let Some(set) = self.forwards.as_mut() {
            set.detach_all();
        }
        self.outbox.close();
        self.state.hub.leave(id, &self.subscriptions);
        match close {
            Some((code, reason)) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
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

fn read_error(e: axum::Error) -> Exit {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
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
