//! Fan-out: who is connected, who follows which project, the positions of updates, and their
//! delivery.
//!
//! Connections and `/publish` talk only to the [`Hub`] trait. Two hubs implement it:
//! [`LocalHub`] (in-process, right for exactly one task) and the cross-task broker
//! ([`crate::broker::RedisHub`]). Both keep this task's connections in a [`Registry`], which
//! owns the one delicate part, merging a recovery replay with live updates (no gap, no
//! duplicate); the hubs differ only in where positions and history live and how an update
//! reaches every task.
//!
//! Targets: a project (subscribers of it), a user (every connection authenticated as that
//! `sub`; the registry maps users to their local connections, filled on authentication, and
//! the broker has one pub/sub channel per user with local connections), or every connection.
//! Updates to a user or to everyone are live-only (no position, no history).

pub(crate) mod registry;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::protocol::{Reply, Since, positioned};
pub use registry::{Delivery, Outcome, Registry, Update};

/// A connection's id (its `connection_id`).
pub type ConnId = Uuid;

/// Who a publish is for.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Every connection subscribed to this project.
    Project(&'a str),
    /// Every connection authenticated as this user (`POST /publish` with `user_id`);
    /// live-only.
    User(&'a str),
    /// Every connection; live-only (no position, no history).
    All,
}

impl<'a> Target<'a> {
    /// The project, if it is for one.
    pub fn project(self) -> Option<&'a str> {
        match self {
            Target::Project(p) => Some(p),
            Target::User(_) | Target::All => None,
        }
    }

    /// The text of the update frame for this target without its position (see
    /// [`positioned`]; only a project's updates get one).
    pub fn frame(self, data: &RawValue) -> String {
        match self {
            Target::User(user_id) => Reply::UserUpdate { user_id, data }.to_text(),
            Target::Project(p) => update_base(Some(p), data),
            Target::All => update_base(None, data),
        }
    }
}

/// Resolves once a user's updates reach a connection that just joined (with the broker: once
/// the user's channel is subscribed on this task).
pub type UserReady = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A project's position: what the update frames and `subscribed` replies carry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// The update's offset in its project.
    pub offset: u64,
    #[serde(serialize_with = "as_str")]
    /// The project's epoch (a new one when its history was lost).
    pub epoch: Arc<str>,
}

fn as_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// What `POST /publish` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    /// Where the update landed in its project; `None` when it has no position.
    pub position: Option<Position>,
    /// The `Idempotency-Key` was seen: this is the first publish's answer, nothing was sent.
    pub duplicate: bool,
    /// Counts of this task (the in-process hub only; with a broker delivery is on every task).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub local: Option<Delivery>,
}

#[derive(Debug, thiserror::Error)]
/// Why a publish was not done.
pub enum PublishError {
    #[error("the broker is unavailable: {0}")]
    /// The broker cannot be reached; the publish may be retried.
    BrokerUnavailable(String),
}

/// A connection starting to follow a project (a `subscribe`, or `?project_id=` on connect).
pub struct SubscribeRequest {
    /// The project to follow.
    pub project: Arc<str>,
    /// The connection that follows it.
    pub id: ConnId,
    /// Where its `subscribed` and updates are queued.
    pub outbox: Arc<Outbox>,
    /// Its last position, to replay what it missed.
    pub since: Option<Since>,
    /// Echoed in the `subscribed` reply; `None` for `?project_id=`.
    pub request_id: Option<Box<RawValue>>,
}

/// The broker's state, for `/health`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerStatus {
    /// `local` (one task) or `redis`.
    pub mode: &'static str,
    /// `up` or `down`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// How long the broker has been unreachable.
    pub down_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The broker's last error.
    pub error: Option<String>,
}

/// What a publish returns when it is done (or refused).
pub type PublishFuture = Pin<Box<dyn Future<Output = Result<Published, PublishError>> + Send>>;

/// The fan-out component. Everything but `publish` is local bookkeeping that never blocks; a
/// subscribe's reply (and its replay) is queued on the connection's outbox by the hub, possibly
/// later, because the position may come from the broker.
pub trait Hub: Send + Sync + 'static {
    /// A connection opened: it receives broadcasts.
    fn join(&self, id: ConnId, outbox: Arc<Outbox>);
    /// A connection closed: forget it everywhere, given the projects it followed.
    fn leave(&self, id: ConnId, projects: &[Arc<str>]);
    /// Follows a project: queues `subscribed` (with the position), the replay after
    /// `since`, then live updates.
    fn subscribe(&self, req: SubscribeRequest);
    /// Stops delivering `project` to `id`.
    fn unsubscribe(&self, project: &str, id: ConnId);
    /// A connection authenticated as `user`: it receives that user's updates.
    fn join_user(&self, user: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>) -> UserReady;
    /// The connection closed (or its user changed): forget it for `user`.
    fn leave_user(&self, user: &str, id: ConnId);
    /// Assigns the update its position, stores and delivers it. `data` is a JSON object.
    fn publish(
        &self,
        target: Target<'_>,
        data: &RawValue,
        idempotency_key: Option<&str>,
    ) -> PublishFuture;
    /// The broker's state, for `/health`.
    fn status(&self) -> BrokerStatus;
}

/// The text of an update frame without its position (see [`positioned`]).
pub fn update_base(project: Option<&str>, data: &RawValue) -> String {
    Reply::Update {
        project_id: project,
        data,
    }
    .to_text()
}

/// A fresh epoch: 16 lowercase hex digits.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The in-process hub: one task. Offsets count per project from the start of the process,
/// whose epoch is new at every start; no history is kept, so only a client that missed
/// nothing recovers.
pub struct LocalHub {
    registry: Registry,
    epoch: Arc<str>,
    /// Top offset per project, each under its own lock, held while delivering so one
    /// project's updates go out in offset order while other projects' publishes run beside.
    tops: Mutex<HashMap<Arc<str>, Arc<Mutex<u64>>>>,
    /// Idempotency keys of the last 5 minutes, with the answer they got.
    seen: Mutex<HashMap<String, (std::time::Instant, Published)>>,
}

const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

impl Default for LocalHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalHub {
    /// A hub for one task, with no broker.
    pub fn new() -> Self {
        Self {
            registry: Registry::default(),
            epoch: Arc::from(new_epoch()),
            tops: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Connections known to the hub.
    pub fn connection_count(&self) -> usize {
        self.registry.connection_count()
    }

    /// The lock of `project`'s top offset.
    fn top_of(&self, project: &str) -> Arc<Mutex<u64>> {
        let mut tops = registry::lock(&self.tops);
        match tops.get(project) {
            Some(t) => t.clone(),
            None => tops.entry(Arc::from(project)).or_default().clone(),
        }
    }

    fn top(&self, project: &str) -> u64 {
        *registry::lock(&self.top_of(project))
    }

    /// Publishes synchronously; what [`Hub::publish`] does for this hub.
    pub fn publish_now(&self, target: Target<'_>, data: &RawValue, key: Option<&str>) -> Published {
        // A publish with an `Idempotency-Key` holds the key table to its end, so that a retry
        // racing the first waits for its answer; publishes without a key take no global lock.
        let mut seen = key.map(|_| registry::lock(&self.seen));
        if let Some(seen) = seen.as_mut() {
            seen.retain(|_, (at, _)| at.elapsed() < IDEMPOTENCY_WINDOW);
        }
        let scoped = key.map(|k| match target {
            Target::Project(p) => format!("p:{p}:{k}"),
            Target::User(u) => format!("u:{u}:{k}"),
            Target::All => format!("all:{k}"),
        });
        if let (Some(seen), Some(k)) = (seen.as_ref(), scoped.as_ref())
            && let Some((_, first)) = seen.get(k)
        {
            let mut again = first.clone();
            again.duplicate = true;
            again.local = None;
            return again;
        }
        let published = match target {
            Target::All => {
                let frame = update_base(None, data);
                Published {
                    position: None,
                    duplicate: false,
                    local: Some(self.registry.broadcast(&frame.into())),
                }
            }
            Target::User(u) => Published {
                position: None,
                duplicate: false,
                local: Some(self.registry.deliver_user(u, &target.frame(data).into())),
            },
            Target::Project(p) => {
                let top = self.top_of(p);
                let mut top = registry::lock(&top);
                *top += 1;
                let frame = positioned(&update_base(Some(p), data), *top, &self.epoch);
                let update = Update {
                    offset: *top,
                    epoch: self.epoch.clone(),
                    frame: frame.into(),
                };
                // No history: a gap cannot be repaired here, and cannot happen (delivery is
                // in-process and in order), so repairs are not expected.
                let (delivery, _repairs) = self.registry.deliver(p, &update);
                Published {
                    position: Some(Position {
                        offset: update.offset,
                        epoch: self.epoch.clone(),
                    }),
                    duplicate: false,
                    local: Some(delivery),
                }
            }
        };
        if let (Some(seen), Some(k)) = (seen.as_mut(), scoped) {
            seen.insert(k, (std::time::Instant::now(), published.clone()));
        }
        published
    }
}

impl Hub for LocalHub {
    fn join(&self, id: ConnId, outbox: Arc<Outbox>) {
        self.registry.join(id, outbox);
    }

    fn leave(&self, id: ConnId, projects: &[Arc<str>]) {
        self.registry.leave(id, projects);
    }

    fn subscribe(&self, req: SubscribeRequest) {
        let ticket = self
            .registry
            .begin(&req.project, req.id, &req.outbox, req.since.as_ref());
        let top = self.top(&req.project);
        let outcome = match &req.since {
            None => Outcome::Fresh {
                top,
                epoch: self.epoch.clone(),
            },
            Some(s) if *s.epoch == *self.epoch && s.offset == top => Outcome::Recovered {
                top,
                epoch: self.epoch.clone(),
                entries: Vec::new(),
            },
            Some(_) => Outcome::Lost {
                top,
                epoch: self.epoch.clone(),
            },
        };
        self.registry.finish(
            &req.project,
            req.id,
            ticket.ticket,
            registry::Finish::Subscribe {
                request_id: req.request_id.as_deref(),
            },
            outcome,
        );
    }

    fn unsubscribe(&self, project: &str, id: ConnId) {
        self.registry.remove(project, id);
    }

    fn join_user(&self, user: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>) -> UserReady {
        self.registry.join_user(user, id, outbox);
        Box::pin(std::future::ready(()))
    }

    fn leave_user(&self, user: &str, id: ConnId) {
        self.registry.leave_user(user, id);
    }

    fn publish(
        &self,
        target: Target<'_>,
        data: &RawValue,
        idempotency_key: Option<&str>,
    ) -> PublishFuture {
        let p = self.publish_now(target, data, idempotency_key);
        Box::pin(std::future::ready(Ok(p)))
    }

    fn status(&self) -> BrokerStatus {
        BrokerStatus {
            mode: "local",
            state: "up",
            down_seconds: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Box<RawValue> {
        RawValue::from_string(r#"{"n":1}"#.into()).expect("json")
    }

    fn texts(o: &Outbox) -> Vec<String> {
        std::iter::from_fn(|| o.pop())
            .map(|b| b.to_string())
            .collect()
    }

    fn sub(hub: &LocalHub, id: ConnId, o: &Arc<Outbox>, since: Option<Since>) {
        hub.subscribe(SubscribeRequest {
            project: Arc::from("p1"),
            id,
            outbox: o.clone(),
            since,
            request_id: None,
        });
    }

    #[test]
    fn publish_reaches_exactly_the_subscribers_with_positions() {
        let hub = LocalHub::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (oa, ob) = (
            Arc::new(Outbox::new(4, 1024)),
            Arc::new(Outbox::new(4, 1024)),
        );
        hub.join(a, oa.clone());
        hub.join(b, ob.clone());
        sub(&hub, a, &oa, None);
        assert!(texts(&oa)[0].contains(r#""offset":0"#));

        let p = hub.publish_now(Target::Project("p1"), &data(), None);
        assert_eq!(p.position.as_ref().map(|p| p.offset), Some(1));
        assert_eq!(p.local.map(|d| d.delivered), Some(1));
        let got = texts(&oa);
        assert!(
            got[0].ends_with(&format!(r#""offset":1,"epoch":"{}"}}"#, hub.epoch)),
            "{got:?}"
        );
        assert!(ob.is_empty());

        let p = hub.publish_now(Target::All, &data(), None);
        assert_eq!(p.local.map(|d| d.delivered), Some(2));
        assert!(p.position.is_none());

        hub.unsubscribe("p1", a);
        let p = hub.publish_now(Target::Project("p1"), &data(), None);
        assert_eq!(p.local.map(|d| d.delivered), Some(0));
        hub.leave(a, &[]);
        hub.leave(b, &[]);
        assert_eq!(hub.connection_count(), 0);
    }

    #[test]
    fn a_user_publish_reaches_only_that_users_connections() {
        let hub = LocalHub::new();
        let (a1, a2, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let o: Vec<Arc<Outbox>> = (0..3).map(|_| Arc::new(Outbox::new(4, 1024))).collect();
        let (alice, bob): (Arc<str>, Arc<str>) = (Arc::from("alice"), Arc::from("bob"));
        drop(hub.join_user(&alice, a1, &o[0]));
        drop(hub.join_user(&alice, a2, &o[1]));
        drop(hub.join_user(&bob, b, &o[2]));
        let p = hub.publish_now(Target::User("alice"), &data(), None);
        assert_eq!(p.local.map(|d| d.delivered), Some(2));
        assert!(p.position.is_none());
        assert_eq!(
            texts(&o[0]),
            [r#"{"type":"update","user_id":"alice","data":{"n":1}}"#]
        );
        assert!(o[2].is_empty());
        hub.leave_user("alice", a1);
        hub.leave_user("alice", a2);
        let p = hub.publish_now(Target::User("alice"), &data(), None);
        assert_eq!(p.local.map(|d| d.delivered), Some(0));
        assert!(!hub.registry.has_user("alice"));
    }

    #[test]
    fn a_retried_publish_with_the_same_key_is_not_sent_again() {
        let hub = LocalHub::new();
        let first = hub.publish_now(Target::Project("p1"), &data(), Some("k1"));
        let again = hub.publish_now(Target::Project("p1"), &data(), Some("k1"));
        assert!(again.duplicate && !first.duplicate);
        assert_eq!(first.position, again.position);
        let other = hub.publish_now(Target::Project("p1"), &data(), Some("k2"));
        assert_eq!(other.position.map(|p| p.offset), Some(2));
    }

    #[test]
    fn only_a_client_that_missed_nothing_recovers_locally() {
        let hub = LocalHub::new();
        hub.publish_now(Target::Project("p1"), &data(), None);
        let epoch = hub.epoch.to_string();
        let id = Uuid::new_v4();
        let o = Arc::new(Outbox::new(8, 1 << 20));
        hub.join(id, o.clone());
        sub(
            &hub,
            id,
            &o,
            Some(Since {
                offset: 1,
                epoch: epoch.clone(),
            }),
        );
        assert!(texts(&o)[0].contains(r#""recovered":true"#));
        sub(&hub, id, &o, Some(Since { offset: 0, epoch }));
        assert!(texts(&o)[0].contains(r#""recovered":false"#));
    }
}
