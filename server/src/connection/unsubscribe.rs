//! `unsubscribe`: the connection stops following a project.

use serde_json::value::RawValue;

use super::Conn;
use crate::protocol::Reply;

impl Conn {
    /// An `unsubscribe` request. Always answered `unsubscribed`, also for a project the
    /// connection did not follow, so a client can repeat it safely.
    pub(super) fn unsubscribe(&mut self, rid: Option<&RawValue>, project_id: &str) {
        if let Some(i) = self.subscriptions.iter().position(|s| **s == *project_id) {
            self.subscriptions.swap_remove(i);
            self.state.hub.unsubscribe(project_id, self.id);
        }
        self.send(&Reply::Unsubscribed {
            request_id: rid,
            project_id,
        });
    }
}
