//! Who a connection is: the session it has once authenticated, what it still has to do
//! before that, and the deadlines both run to (the authentication timeout, the expiry warning
//! and the expiry), which the connection loop's timer waits for.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Conn, Exit};
use crate::auth::Identity;
use crate::metrics::incr;
use crate::protocol::{ErrorCode, Reply, RequestError};

/// Who the connection is, once authenticated.
pub(super) struct Session {
    pub(super) identity: Identity,
    /// Whether the client was warned of the expiry (`identity.expires_at`).
    pub(super) warned: bool,
}

/// What a connection still has to do to authenticate. Boxed in [`Conn`]: connections that
/// authenticated on the upgrade never need it, and it is freed once they authenticate.
pub(super) struct Pending {
    /// When it is closed if it has not authenticated.
    pub(super) deadline: Instant,
    /// `?project_id=` of the connect URL: subscribed on authentication, if granted.
    pub(super) project: Option<String>,
}

impl Conn {
    /// The earliest of the authentication deadline, the expiry warning and the expiry.
    pub(super) fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        match (&self.session, &self.pending) {
            (None, Some(p)) => p.deadline,
            (Some(s), _) => match s.identity.expires_at {
                Some(exp) => {
                    let left = until_unix(exp);
                    if s.warned {
                        now + left
                    } else {
                        now + left.saturating_sub(self.state.config.auth.expiry_warning)
                    }
                }
                None => now + Duration::from_secs(86_400 * 365),
            },
            (None, None) => now,
        }
    }

    /// Closes an unauthenticated connection past its deadline and an expired session; warns
    /// shortly before the expiry.
    pub(super) fn check_deadlines(&mut self, now: Instant) -> Option<Exit> {
        let warning = self.state.config.auth.expiry_warning;
        let Some(session) = &mut self.session else {
            let late = self.pending.as_ref().is_none_or(|p| now >= p.deadline);
            return late.then_some(Exit::AuthTimeout);
        };
        let exp = session.identity.expires_at?;
        let left = until_unix(exp);
        if left.is_zero() {
            return Some(Exit::TokenExpired);
        }
        if !session.warned && left <= warning {
            session.warned = true;
            self.send(&Reply::TokenExpiring {
                expires_at: exp,
                seconds_left: left.as_secs(),
            });
        }
        None
    }

    /// Starts (or, on refresh, replaces) the session: the hub learns the user, and the
    /// subscriptions follow the grants.
    ///
    /// Returns the `?project_id=` to hand the hub once the reply that reports the session is
    /// queued (its `subscribed` follows that reply), or the refusal of one the token does not
    /// grant, to be sent after that reply.
    pub(super) async fn start_session(
        &mut self,
        identity: Identity,
    ) -> Result<Option<Arc<str>>, RequestError> {
        let hub = &self.state.hub;
        match self.session.take() {
            None => hub.join(self.id, self.outbox.clone()),
            Some(old) if old.identity.user_id != identity.user_id => {
                hub.leave_user(&old.identity.user_id, self.id);
            }
            Some(_) => {}
        }
        let user_ready = hub.join_user(&identity.user_id, self.id, &self.outbox);
        // Subscriptions the new grants do not cover end now.
        let grants = identity.grants.clone();
        self.subscriptions.retain(|p| {
            let keep = grants.project(p);
            if !keep {
                hub.unsubscribe(p, self.id);
            }
            keep
        });
        self.session = Some(Session {
            identity,
            warned: false,
        });
        // With the broker, the user's channel is subscribed before the client hears it is
        // authenticated, so a publish for the user after that reply reaches it. Bounded, in
        // case the broker stops answering right then (the hub does not wait while it is down).
        let _ = tokio::time::timeout(crate::broker::BROKER_TIMEOUT, user_ready).await;
        let Some(p) = self.pending.take().and_then(|p| p.project) else {
            return Ok(None);
        };
        if grants.project(&p) {
            let p: Arc<str> = Arc::from(p);
            self.subscriptions.push(p.clone());
            return Ok(Some(p));
        }
        incr(&self.state.metrics.forbidden);
        Err(RequestError::new(
            ErrorCode::Forbidden,
            "the token does not grant the project_id of the connect URL; not subscribed",
        ))
    }
}

/// Time left until the unix time `at` (zero once it has passed).
fn until_unix(at: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(at).saturating_sub(now)
}
