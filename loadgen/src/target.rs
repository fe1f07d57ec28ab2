//! Where the load goes. Loopback only: a load generator must never be pointed at someone else's
//! host by a typo, so anything outside 127.0.0.0/8 and ::1 is refused before a socket opens.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// A ws-server address on loopback: `HOST:PORT` with HOST an IP literal or `localhost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
}

impl Target {
    /// The WebSocket URL of `path` (which starts with `/`) on this server.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The HTTP URL of `path` on this server.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bare = text
            .strip_prefix("ws://")
            .or_else(|| text.strip_prefix("http://"))
            .unwrap_or(text)
            .trim_end_matches('/');
        let addr = match bare.strip_prefix("localhost:") {
            Some(port) => port
                .parse::<u16>()
                .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
                .map_err(|_| format!("`{s}`: `{port}` is not a port number")),
            None => bare.parse::<SocketAddr>().map_err(|_| {
                format!("`{s}` is not HOST:PORT with HOST an IP address or localhost (e.g. 127.0.0.1:8080)")
            }),
        }?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "`{s}` is not a loopback address: loadgen only sends load to 127.0.0.0/8 or ::1"
            ));
        }
        if addr.port() == 0 {
            return Err(format!("`{s}`: port 0 is not a server's port"));
        }
        Ok(Target { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_addresses() {
        for ok in [
            "127.0.0.1:8080",
            "127.9.8.7:1",
            "[::1]:9000",
            "localhost:80",
            "ws://127.0.0.1:8080/",
        ] {
            let t: Target = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(t.addr.ip().is_loopback());
        }
        let t: Target = "localhost:8080".parse().expect("localhost");
        assert_eq!(
            t.ws_url("/ws?project_id=a"),
            "ws://127.0.0.1:8080/ws?project_id=a"
        );
        assert_eq!(t.http_url("/publish"), "http://127.0.0.1:8080/publish");
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        for bad in [
            "10.0.0.1:8080",
            "0.0.0.0:8080",
            "[::]:80",
            "192.168.1.1:80",
            "[2001:db8::1]:80",
        ] {
            let err = bad.parse::<Target>().expect_err(bad);
            assert!(err.contains("not a loopback address"), "{bad}: {err}");
        }
        for bad in [
            "example.com:80",
            "127.0.0.1",
            "localhost:http",
            "127.0.0.1:0",
        ] {
            let err = bad.parse::<Target>().expect_err(bad);
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
