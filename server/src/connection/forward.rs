//! `forward`: the client's `data` goes to an agent's SQS queue (sent by
//! [`crate::forward::Forwarder`]). Sends run as tasks of the connection, at most
//! `WS_MAX_INFLIGHT_FORWARDS` at once (the loop stops reading while that many are in flight);
//! each one's reply is queued when it finishes, in whatever order they finish.

use serde_json::value::RawValue;
use tokio::task::JoinSet;

use super::Conn;
use crate::auth::Identity;
use crate::forward::Forward;
use crate::metrics::incr;
use crate::protocol::{ErrorCode, QueueKind, Reply, RequestError};

/// What a forward task returns: its queue and `request_id` (for the reply) and the SQS
/// MessageId or the refusal.
pub(super) type ForwardResult = (
    QueueKind,
    Option<Box<RawValue>>,
    Result<String, RequestError>,
);

impl Conn {
    /// A `forward` request from `sender`: refused when the token does not grant the queue or
    /// the project it names, else started as a task whose result [`Conn::reply_forward`] answers.
    pub(super) fn forward(
        &mut self,
        request_id: Option<Box<RawValue>>,
        sender: &Identity,
        queue: QueueKind,
        project_id: Option<String>,
        data: Box<RawValue>,
    ) {
        let rid = request_id.as_deref();
        let grants = &sender.grants;
        if !grants.queue(queue) {
            return self.forbidden(rid, "the token does not grant this queue");
        }
        if let Some(p) = &project_id
            && !grants.project(p)
        {
            return self.forbidden(rid, "the token does not grant this project");
        }
        let f = Forward {
            queue,
            project_id,
            data,
            connection_id: self.id.to_string(),
            user_id: sender.user_id.to_string(),
            request_id,
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

    /// Answers a finished forward: `forwarded` with the MessageId, or the error.
    pub(super) fn reply_forward(&self, done: Result<ForwardResult, tokio::task::JoinError>) {
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
}
