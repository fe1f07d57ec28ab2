//! The HTTP server under the routes: axum's router on hyper's HTTP/1.1 connections, with the
//! timeouts `axum::serve` does not let one set.
//!
//! Written out (about 40 lines) because `axum::serve` has no header-read timeout: a client
//! sending its headers a byte a second (slowloris) held a socket forever, and enough of them
//! starve `accept` and `/health`. Here hyper closes a connection whose request head has not
//! arrived within `WS_HTTP_HEADER_TIMEOUT_SECONDS`; since hyper starts that clock whenever it
//! waits for a request head, it also bounds an idle keep-alive connection. Upgraded WebSockets
//! leave this loop at the upgrade and are drained by [`crate::shutdown`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` until `stop` resolves (it keeps accepting until then, so `/health` can
/// answer 503 during a drain), then closes idle HTTP connections, lets requests in progress
/// finish, and returns when every HTTP connection is gone.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    // Every connection task holds a receiver; `closed()` resolves when the last one is gone.
    let (stopping, stop_rx) = watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Replies are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(req)
        });
        let conn = http1
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stopping.send(true);
    stopping.closed().await;
    Ok(())
}
