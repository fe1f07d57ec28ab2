//! `ping`: an application-level liveness check answered with the server's clock (WebSocket
//! pings are answered by the WebSocket layer and never reach here).

use serde_json::value::RawValue;

use super::Conn;
use crate::protocol::Reply;

impl Conn {
    /// A `ping` request: answered `pong` with the server's time in RFC 3339, milliseconds.
    pub(super) fn ping(&self, rid: Option<&RawValue>) {
        self.send(&Reply::Pong {
            request_id: rid,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
    }
}
