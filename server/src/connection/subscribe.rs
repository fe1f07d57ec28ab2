//! `subscribe`: the connection follows a project's updates. The hub answers `subscribed` (with
//! the project's position) and replays what the client missed after `since`.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::Conn;
use crate::auth::Identity;
use crate::hub::SubscribeRequest;
use crate::protocol::{ErrorCode, RequestError, Since};

impl Conn {
    /// A `subscribe` request from `sender`: refused when the token does not grant the project or the
    /// connection already follows as many projects as it may; a repeat is answered again.
    pub(super) fn subscribe(
        &mut self,
        rid: Option<&RawValue>,
        sender: &Identity,
        project_id: String,
        since: Option<Since>,
    ) {
        if !sender.grants.project(&project_id) {
            return self.forbidden(rid, "the token does not grant this project");
        }
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
    pub(super) fn follow(
        &mut self,
        p: Arc<str>,
        since: Option<Since>,
        request_id: Option<Box<RawValue>>,
    ) {
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
}
