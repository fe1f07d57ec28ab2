//! `authenticate` and `refresh`: a token is checked, then the session starts or is replaced
//! (see [`super::session`]). A failed `authenticate` closes the connection; a failed `refresh`
//! is answered and changes nothing.

use serde_json::value::RawValue;

use super::{Conn, Exit};
use crate::metrics::incr;
use crate::protocol::{ErrorCode, Reply, RequestError, SessionInfo};

/// A token to check, found by [`Conn::handle`] and checked by the loop (it may need a JWKS
/// fetch, so it is awaited there rather than in the synchronous request handler).
pub(super) struct TokenCheck {
    pub(super) token: String,
    /// `refresh` rather than `authenticate`.
    pub(super) refresh: bool,
    pub(super) request_id: Option<Box<RawValue>>,
}

impl Conn {
    /// Checks an `authenticate` or `refresh` token. `Err` closes the connection (a failed
    /// `authenticate`); a failed `refresh` only gets its error reply and changes nothing.
    pub(super) async fn check_token(&mut self, check: TokenCheck) -> Result<(), Exit> {
        let rid = check.request_id.as_deref();
        match (&self.session, check.refresh) {
            (Some(_), false) if !self.state.auth.is_disabled() => {
                self.send_error(
                    rid,
                    &RequestError::new(
                        ErrorCode::AlreadyAuthenticated,
                        "this connection is already authenticated; send refresh with a new token",
                    ),
                );
                return Ok(());
            }
            (None, true) => {
                self.send_error(
                    rid,
                    &RequestError::new(
                        ErrorCode::Unauthenticated,
                        "nothing to refresh: authenticate first",
                    ),
                );
                return Ok(());
            }
            _ => {}
        }
        let result = self.state.auth.verify(&check.token).await;
        let result = match (&self.session, result) {
            (Some(s), Ok(new)) if check.refresh && s.identity.user_id != new.user_id => {
                Err(crate::auth::TokenError::Invalid(format!(
                    "a refresh must be for the same user: this connection is {:?}",
                    crate::protocol::short(&s.identity.user_id)
                )))
            }
            (_, r) => r,
        };
        match result {
            Ok(identity) => {
                let pending = self.start_session(identity).await;
                let Some(session) = &self.session else {
                    return Ok(());
                };
                let i = &session.identity;
                let info = SessionInfo {
                    user_id: &i.user_id,
                    expires_at: i.expires_at,
                    projects: i.grants.projects_list(),
                    queues: i.grants.queues_list(),
                    subscriptions: self.subscriptions.iter().map(|s| &**s).collect(),
                };
                self.send(&if check.refresh {
                    Reply::Refreshed {
                        request_id: rid,
                        session: info,
                    }
                } else {
                    Reply::Authenticated {
                        request_id: rid,
                        session: info,
                    }
                });
                match pending {
                    Ok(Some(p)) => self.follow(p, None, None),
                    Ok(None) => {}
                    Err(e) => self.send_error(None, &e),
                }
                Ok(())
            }
            Err(e) => {
                incr(&self.state.metrics.auth_failures);
                self.send_error(rid, &e.to_request_error());
                if check.refresh {
                    Ok(())
                } else {
                    Err(Exit::AuthFailed(e.message()))
                }
            }
        }
    }
}
