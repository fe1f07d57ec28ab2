//! One request frame, from the socket to its action: binary and oversized frames are refused,
//! every frame counts against the connection's request rate, the JSON is parsed (see
//! [`crate::protocol`]), and everything but `authenticate` needs a session. Each action is
//! handled in its own module.

use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::authenticate::TokenCheck;
use super::{Conn, Exit};
use crate::limits::{RequestRate, Verdict};
use crate::metrics::incr;
use crate::protocol::{Action, ErrorCode, Reply, RequestError, parse_request};

/// What handling one frame calls for.
pub(super) enum Step {
    /// Handled; the loop goes on.
    Done,
    /// A token to check, which the loop awaits (see [`TokenCheck`]).
    Check(TokenCheck),
    /// The connection must close.
    Exit(Exit),
}

impl Conn {
    /// One frame from the client: checked (text, size, rate), parsed and handed to its
    /// action; everything the client is told is queued on the outbox.
    pub(super) fn handle(&mut self, msg: Message) -> Step {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                incr(&self.state.metrics.messages_received);
                return self.refuse_frame(RequestError::new(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not supported; send JSON as a text frame",
                ));
            }
            // Pings are answered by the WebSocket layer; pongs only prove liveness.
            _ => return Step::Done,
        };
        incr(&self.state.metrics.messages_received);
        let max = self.state.config.limits.max_frame_bytes;
        if text.len() > max {
            return self.refuse_frame(RequestError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes is over the limit of {max} bytes",
                    text.len()
                ),
            ));
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
        // Cloned (two reference counts) so the handlers may change the connection.
        let sender = session.identity.clone();
        match action {
            // Answered above, before the session is required.
            Action::Authenticate { .. } => {}
            Action::Ping => self.ping(rid),
            Action::Subscribe { project_id, since } => {
                self.subscribe(rid, &sender, project_id, since);
            }
            Action::Unsubscribe { project_id } => self.unsubscribe(rid, &project_id),
            Action::Forward {
                queue,
                project_id,
                data,
            } => self.forward(parsed.request_id, &sender, queue, project_id, data),
        }
        Step::Done
    }

    /// A frame refused before it is parsed (binary, oversized): it still counts against the
    /// rate, and its error has no `request_id` to echo.
    fn refuse_frame(&mut self, e: RequestError) -> Step {
        if let Some(step) = self.over_rate(None) {
            return step;
        }
        self.send_error(None, &e);
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

    /// Refuses a request the token does not grant (`forbidden`, counted).
    pub(super) fn forbidden(&self, rid: Option<&RawValue>, why: &str) {
        incr(&self.state.metrics.forbidden);
        self.send(&Reply::Error {
            request_id: rid,
            code: ErrorCode::Forbidden,
            message: why,
        });
    }
}
