//! Opening WebSocket connections to the server: from many loopback source addresses (127.0.0.2
//! and up) so ephemeral ports do not run out at tens of thousands of connections, and with small
//! read buffers so the generator's own memory stays flat. With `LOADGEN_TOKEN` set, every
//! upgrade carries `Authorization: Bearer <token>` (a server that checks tokens).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::target::Target;
use crate::wire;

pub type Ws = WebSocketStream<TcpStream>;

/// How long one connection may take to open (TCP and upgrade) or a reply to come.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands out source addresses: `per_source` connections from 127.0.0.2, then 127.0.0.3, ...
pub struct Sources {
    next: AtomicUsize,
    per_source: usize,
}

impl Sources {
    pub fn new(per_source: usize) -> Self {
        Sources {
            next: AtomicUsize::new(0),
            per_source: per_source.max(1),
        }
    }

    /// The source for the next connection to `target`; none for IPv6, whose loopback is one address.
    pub fn next_for(&self, target: &Target) -> Option<IpAddr> {
        if !target.addr.is_ipv4() {
            return None;
        }
        Some(IpAddr::V4(source_v4(
            self.next.fetch_add(1, Relaxed),
            self.per_source,
        )))
    }
}

fn source_v4(i: usize, per_source: usize) -> Ipv4Addr {
    // 127.0.0.2 up to 127.255.255.254; past that (16 million sources) the last one repeats.
    let n = (i / per_source).min(0x00ff_fffc) as u32 + 2;
    Ipv4Addr::from(0x7f00_0000 + n)
}

fn client_config() -> WebSocketConfig {
    // tungstenite reads in chunks of read_buffer_size (128 KiB by default, per connection).
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// The token every upgrade sends, from `LOADGEN_TOKEN`.
fn token() -> Option<&'static str> {
    static TOKEN: OnceLock<Option<String>> = OnceLock::new();
    TOKEN
        .get_or_init(|| {
            std::env::var("LOADGEN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        })
        .as_deref()
}

/// Open a WebSocket to `path` (e.g. `/ws?project_id=x`) on the target, from `source` if given.
pub async fn connect(target: &Target, path: &str, source: Option<IpAddr>) -> Result<Ws> {
    connect_as(target, path, source, token()).await
}

/// [`connect`] with an explicit token (`None`: no `Authorization` header).
pub async fn connect_as(
    target: &Target,
    path: &str,
    source: Option<IpAddr>,
    token: Option<&str>,
) -> Result<Ws> {
    let addr = target.addr;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating a socket (out of file descriptors? raise `ulimit -n`)")?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding source address {ip}"))?;
    }
    let stream = timeout(REPLY_TIMEOUT, socket.connect(addr))
        .await
        .with_context(|| format!("TCP connect to {addr} timed out"))?
        .with_context(|| format!("TCP connect to {addr}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let url = target.ws_url(path);
    let mut request = url.as_str().into_client_request()?;
    if let Some(t) = token {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {t}")
                .parse()
                .context("LOADGEN_TOKEN is not a valid header value")?,
        );
    }
    let (ws, _) = timeout(
        REPLY_TIMEOUT,
        client_async_with_config(request, stream, Some(client_config())),
    )
    .await
    .with_context(|| format!("WebSocket upgrade of {url} timed out"))?
    .with_context(|| format!("WebSocket upgrade of {url}"))?;
    Ok(ws)
}

/// Read until a text message of type `want` arrives and return it; an error reply, a close or
/// silence for REPLY_TIMEOUT is an error.
pub async fn expect(ws: &mut Ws, want: &str) -> Result<String> {
    loop {
        let msg = timeout(REPLY_TIMEOUT, ws.next())
            .await
            .with_context(|| format!("no `{want}` from the server within {REPLY_TIMEOUT:?}"))?;
        match msg {
            Some(Ok(Message::Text(text))) => match wire::msg_type(&text) {
                Some(t) if t == want => return Ok(text.to_string()),
                Some("error") => bail!(
                    "server answered an error instead of `{want}`: {}",
                    wire::describe_error(&text)
                ),
                _ => {}
            },
            Some(Ok(Message::Close(frame))) => {
                bail!("server closed the connection waiting for `{want}`: {frame:?}")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).with_context(|| format!("reading `{want}`")),
            None => bail!("connection ended waiting for `{want}`"),
        }
    }
}

/// Connect, wait for the welcome and, if `project` is given, subscribe and wait for the
/// confirmation, so no message published afterwards can be missed.
pub async fn connect_subscribed(
    target: &Target,
    project: Option<&str>,
    source: Option<IpAddr>,
) -> Result<Ws> {
    let mut ws = connect(target, "/ws", source).await?;
    expect(&mut ws, "welcome").await?;
    if let Some(project) = project {
        ws.send(Message::text(wire::subscribe(project)))
            .await
            .context("sending subscribe")?;
        expect(&mut ws, "subscribed").await?;
    }
    Ok(ws)
}

/// The next text message, skipping control frames; a close, an error, the end of the stream or
/// REPLY_TIMEOUT of silence is described as the reason the client stops.
pub async fn next_text(ws: &mut Ws) -> Result<Utf8Bytes, String> {
    loop {
        match timeout(REPLY_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(format!("server closed the connection: {frame:?}"));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("reading a reply: {e}")),
            Ok(None) => return Err("connection ended".to_string()),
            Err(_) => return Err(format!("no reply within {REPLY_TIMEOUT:?}")),
        }
    }
}

/// One ping round trip: proves the connection is alive.
pub async fn ping(ws: &mut Ws) -> Result<()> {
    ws.send(Message::text(wire::PING))
        .await
        .context("sending ping")?;
    expect(ws, "pong").await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_sources_over_loopback() {
        assert_eq!(source_v4(0, 10_000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_v4(9_999, 10_000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_v4(10_000, 10_000), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(source_v4(300 * 10, 10), Ipv4Addr::new(127, 0, 1, 46));
        assert!(source_v4(usize::MAX / 2, 1).is_loopback());
        let s = Sources::new(2);
        let v4: Target = "127.0.0.1:9".parse().expect("target");
        let got: Vec<_> = (0..5).map(|_| s.next_for(&v4)).collect();
        let want = [2, 2, 3, 3, 4].map(|n| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))));
        assert_eq!(got, want);
        let v6: Target = "[::1]:9".parse().expect("target");
        assert_eq!(s.next_for(&v6), None);
    }

    #[tokio::test]
    async fn binds_the_source_address_it_is_given() {
        // A plain TCP listener on port 0 shows which source the connection came from.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let target: Target = listener
            .local_addr()
            .expect("addr")
            .to_string()
            .parse()
            .expect("target");
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
        let client = tokio::spawn(async move { connect(&target, "/ws", Some(source)).await });
        let (_sock, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), source);
        drop(_sock);
        let err = client
            .await
            .expect("join")
            .expect_err("no WebSocket server there");
        assert!(format!("{err:#}").contains("WebSocket upgrade"), "{err:#}");
    }
}
