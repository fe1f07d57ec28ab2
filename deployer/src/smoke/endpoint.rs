//! Where the smoke test connects: the stack's endpoint output (the load balancer), or the
//! `--endpoint` given instead (a server started locally in tests, a DNS name covered by the
//! certificate). The WebSocket URL and the `/publish` URL are the same host.

use url::Url;

use crate::exit::{Exit, fail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host/ws` or `wss://host/ws`.
    pub websocket: Url,
    /// `http://host/publish` or `https://host/publish`.
    pub publish: Url,
}

impl Endpoint {
    /// From `ws://`, `wss://`, `http://` or `https://` URLs, with or without the `/ws` path.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| {
            fail(
                Exit::Usage,
                format!(
                    "endpoint {text:?} {why}: give the server's URL, e.g. ws://127.0.0.1:8080/ws \
                     or https://ws.example.com"
                ),
            )
        };
        let url = Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        let (ws, http) = match url.scheme() {
            "ws" | "http" => ("ws", "http"),
            "wss" | "https" => ("wss", "https"),
            _ => return Err(bad("is neither ws(s):// nor http(s)://")),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("has no host"));
        }
        let mut websocket = url.clone();
        websocket.set_query(None);
        websocket.set_fragment(None);
        let _ = websocket.set_scheme(ws);
        if matches!(websocket.path(), "" | "/") {
            websocket.set_path("/ws");
        }
        let mut publish = websocket.clone();
        let _ = publish.set_scheme(http);
        publish.set_path("/publish");
        Ok(Self { websocket, publish })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_outputs_and_bare_hosts_name_both_urls() {
        let alb = Endpoint::parse("ws://agenticai-alb-dev-1.us-east-1.elb.amazonaws.com/ws")
            .expect("stack output");
        assert_eq!(
            alb.websocket.as_str(),
            "ws://agenticai-alb-dev-1.us-east-1.elb.amazonaws.com/ws"
        );
        assert_eq!(
            alb.publish.as_str(),
            "http://agenticai-alb-dev-1.us-east-1.elb.amazonaws.com/publish"
        );
        let local = Endpoint::parse("http://127.0.0.1:8080").expect("local");
        assert_eq!(local.websocket.as_str(), "ws://127.0.0.1:8080/ws");
        assert_eq!(local.publish.as_str(), "http://127.0.0.1:8080/publish");
        let tls = Endpoint::parse("https://ws.example.com/").expect("tls");
        assert_eq!(tls.websocket.as_str(), "wss://ws.example.com/ws");
        assert_eq!(tls.publish.as_str(), "https://ws.example.com/publish");
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused_by_name() {
        for bad in ["ftp://x/ws", "127.0.0.1:8080", "not a url"] {
            let err = Endpoint::parse(bad).expect_err(bad);
            assert_eq!(crate::exit::classify(&err), Exit::Usage);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
