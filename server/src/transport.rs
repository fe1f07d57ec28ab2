//! The WebSocket handshake on `/ws`, and the socket of a connection after it.
//!
//! Done here rather than by axum's `WebSocketUpgrade`, which hides the TCP socket inside
//! tungstenite's stream: the fan-out writes an update straight into the socket from the
//! publisher's thread (see [`crate::outbox`]), and that needs the socket's write half itself.
//! tungstenite still reads and parses the client's frames from the read half; what it writes
//! itself (a pong to a ping, the keepalive ping, the close) goes through the outbox like every
//! other frame, so it keeps its place between whole frames.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::admission::refuse;
use crate::outbox::Outbox;

/// A connection's WebSocket: tungstenite over the read half of the socket (its writes go to
/// the outbox).
pub type Socket = WebSocketStream<Duplex>;

/// A valid WebSocket opening handshake (RFC 6455, section 4.2.1), waiting to be answered.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request to `/ws` is not a WebSocket handshake: its stable code and what to do.
pub struct NotWebSocket(&'static str, &'static str);

impl IntoResponse for NotWebSocket {
    fn into_response(self) -> Response {
        let status = match self.0 {
            // The request was a handshake; what is in between cannot pass it on.
            NOT_UPGRADABLE => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        refuse(status, self.0, self.1)
    }
}

const NOT_UPGRADABLE: &str = "not_upgradable";

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = NotWebSocket;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, NotWebSocket> {
        let h = &parts.headers;
        if parts.method != Method::GET {
            return Err(NotWebSocket(
                "not_websocket",
                "a WebSocket handshake is a GET",
            ));
        }
        if !has_token(h, header::CONNECTION, "upgrade")
            || !has_token(h, header::UPGRADE, "websocket")
        {
            return Err(NotWebSocket(
                "not_websocket",
                "/ws takes WebSocket connections (Connection: upgrade, Upgrade: websocket)",
            ));
        }
        if h.get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(NotWebSocket(
                "websocket_version",
                "only WebSocket version 13 is supported (Sec-WebSocket-Version: 13)",
            ));
        }
        let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(NotWebSocket(
                "not_websocket",
                "Sec-WebSocket-Key is missing",
            ));
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(NotWebSocket(
                NOT_UPGRADABLE,
                "this connection cannot be upgraded to a WebSocket",
            ));
        };
        Ok(Self { key, on_upgrade })
    }
}

impl Handshake {
    /// Answers 101 and, once hyper hands the socket over, runs `connection` on it in a task of
    /// its own. The outbox is made first: the socket's writes go through it.
    pub fn accept<F, Fut>(
        self,
        config: WebSocketConfig,
        outbox: Arc<Outbox>,
        connection: F,
    ) -> Response
    where
        F: FnOnce(Socket, Arc<Outbox>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            // The server's connections are `TokioIo<TcpStream>` (see `http::serve`).
            let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
                tracing::error!("an upgraded connection is not a TCP stream");
                return;
            };
            let (read, write) = parts.io.into_inner().into_split();
            outbox.attach(write);
            // Bytes hyper read past the handshake (rare: a client waits for the 101). An empty
            // one is dropped, not kept: it would hold hyper's whole read buffer for the
            // connection's life.
            let early = if parts.read_buf.is_empty() {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(&parts.read_buf)
            };
            drop(parts.read_buf);
            let duplex = Duplex {
                read,
                early,
                outbox: outbox.clone(),
            };
            let socket = WebSocketStream::from_raw_socket(duplex, Role::Server, Some(config)).await;
            connection(socket, outbox).await;
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(self.key.as_bytes()),
            )
            .body(axum::body::Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// What tungstenite reads from and writes to: the socket's read half (after any bytes hyper
/// had already read past the handshake), and the outbox.
pub struct Duplex {
    read: OwnedReadHalf,
    early: Bytes,
    outbox: Arc<Outbox>,
}

impl AsyncRead for Duplex {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early.split_to(n));
            if this.early.is_empty() {
                this.early = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    /// tungstenite's own frames (pong, ping, close), already framed: queued behind whole
    /// frames, written by the outbox.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.outbox.push_raw(Bytes::copy_from_slice(buf)) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection loop writes the outbox after each event.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the connection's task drops it.
        Poll::Ready(Ok(()))
    }
}
