//! Broadcast: who is connected, who follows which project, and delivery of updates to them.
//!
//! Connections and `/publish` talk only to the [`Hub`] trait, so a cross-task broker (Redis or
//! NATS pub/sub feeding each task's local hub) can replace [`LocalHub`] without touching the
//! connection code. An update is serialized once by the publisher; every subscriber gets a
//! cheap reference-counted clone of the same bytes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::extract::ws::Utf8Bytes;
use uuid::Uuid;

use crate::outbox::{Outbox, PushError};

pub type ConnId = Uuid;

/// What a publish reached.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Connections that got the update queued.
    pub delivered: usize,
    /// Connections that were too slow and are being closed instead.
    pub dropped: usize,
}

/// The broadcast component. Methods other than `publish` are local bookkeeping and never block
/// for long; `publish` returns a future so a networked broker can await its round trip.
pub trait Hub: Send + Sync + 'static {
    /// A connection opened: it receives broadcasts (updates without a project).
    fn join(&self, id: ConnId, outbox: Arc<Outbox>);
    /// A connection closed: forget it everywhere, given the projects it followed.
    fn leave(&self, id: ConnId, projects: &[Arc<str>]);
    fn subscribe(&self, project: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>);
    fn unsubscribe(&self, project: &str, id: ConnId);
    /// Delivers `frame` to the subscribers of `project`, or to every connection when `None`.
    fn publish(
        &self,
        project: Option<&str>,
        frame: Utf8Bytes,
    ) -> Pin<Box<dyn Future<Output = Delivery> + Send + 'static>>;

    // ---- per-user delivery: the third target, beside a project and everyone ----

    /// A connection authenticated as `user`: it receives that user's updates.
    fn join_user(&self, user: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>);
    /// The connection closed (or its user changed): forget it for `user`.
    fn leave_user(&self, user: &str, id: ConnId);
    /// Delivers `frame` to every connection authenticated as `user`.
    fn publish_user(
        &self,
        user: &str,
        frame: Utf8Bytes,
    ) -> Pin<Box<dyn Future<Output = Delivery> + Send + 'static>>;
}

type Members = HashMap<ConnId, Arc<Outbox>>;

/// The in-process hub: one task's connections.
#[derive(Default)]
pub struct LocalHub {
    all: RwLock<Members>,
    projects: RwLock<HashMap<Arc<str>, Members>>,
    /// Connections by the `sub` they authenticated as.
    users: RwLock<HashMap<Arc<str>, Members>>,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl LocalHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `frame` for each member, counting who was too slow.
    fn deliver(members: &Members, frame: &Utf8Bytes) -> Delivery {
        let mut d = Delivery::default();
        for outbox in members.values() {
            match outbox.push(frame.clone()) {
                Ok(()) => d.delivered += 1,
                Err(PushError::Full) => d.dropped += 1,
                Err(PushError::Closed) => {}
            }
        }
        d
    }

    /// Delivers synchronously; what [`Hub::publish`] does for this hub.
    pub fn deliver_now(&self, project: Option<&str>, frame: &Utf8Bytes) -> Delivery {
        match project {
            None => Self::deliver(&read(&self.all), frame),
            Some(p) => read(&self.projects)
                .get(p)
                .map(|m| Self::deliver(m, frame))
                .unwrap_or_default(),
        }
    }

    /// Delivers synchronously to one user's connections.
    pub fn deliver_to_user(&self, user: &str, frame: &Utf8Bytes) -> Delivery {
        read(&self.users)
            .get(user)
            .map(|m| Self::deliver(m, frame))
            .unwrap_or_default()
    }

    pub fn connection_count(&self) -> usize {
        read(&self.all).len()
    }
}

impl Hub for LocalHub {
    fn join(&self, id: ConnId, outbox: Arc<Outbox>) {
        write(&self.all).insert(id, outbox);
    }

    fn leave(&self, id: ConnId, projects: &[Arc<str>]) {
        write(&self.all).remove(&id);
        if !projects.is_empty() {
            let mut map = write(&self.projects);
            for p in projects {
                remove_member(&mut map, p, id);
            }
        }
    }

    fn subscribe(&self, project: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>) {
        write(&self.projects)
            .entry(project.clone())
            .or_default()
            .insert(id, outbox.clone());
    }

    fn unsubscribe(&self, project: &str, id: ConnId) {
        remove_member(&mut write(&self.projects), project, id);
    }

    fn publish(
        &self,
        project: Option<&str>,
        frame: Utf8Bytes,
    ) -> Pin<Box<dyn Future<Output = Delivery> + Send + 'static>> {
        let d = self.deliver_now(project, &frame);
        Box::pin(std::future::ready(d))
    }

    fn join_user(&self, user: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>) {
        write(&self.users)
            .entry(user.clone())
            .or_default()
            .insert(id, outbox.clone());
    }

    fn leave_user(&self, user: &str, id: ConnId) {
        remove_member(&mut write(&self.users), user, id);
    }

    fn publish_user(
        &self,
        user: &str,
        frame: Utf8Bytes,
    ) -> Pin<Box<dyn Future<Output = Delivery> + Send + 'static>> {
        let d = self.deliver_to_user(user, &frame);
        Box::pin(std::future::ready(d))
    }
}

fn remove_member(map: &mut HashMap<Arc<str>, Members>, project: &str, id: ConnId) {
    if let Some(members) = map.get_mut(project) {
        members.remove(&id);
        if members.is_empty() {
            map.remove(project);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_exactly_the_subscribers() {
        let hub = LocalHub::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (oa, ob) = (
            Arc::new(Outbox::new(4, 1024)),
            Arc::new(Outbox::new(4, 1024)),
        );
        hub.join(a, oa.clone());
        hub.join(b, ob.clone());
        let p: Arc<str> = Arc::from("p1");
        hub.subscribe(&p, a, &oa);

        let d = hub.deliver_now(Some("p1"), &Utf8Bytes::from("u1"));
        assert_eq!(
            d,
            Delivery {
                delivered: 1,
                dropped: 0
            }
        );
        assert_eq!(oa.pop().as_deref(), Some("u1"));
        assert!(ob.is_empty());

        let d = hub.deliver_now(None, &Utf8Bytes::from("all"));
        assert_eq!(d.delivered, 2);

        hub.unsubscribe("p1", a);
        assert_eq!(
            hub.deliver_now(Some("p1"), &Utf8Bytes::from("u2"))
                .delivered,
            0
        );
        hub.leave(a, &[p]);
        hub.leave(b, &[]);
        assert_eq!(hub.connection_count(), 0);
        assert!(read(&hub.projects).is_empty());
    }

    #[test]
    fn a_user_publish_reaches_only_that_users_connections() {
        let hub = LocalHub::new();
        let (a1, a2, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let o: Vec<Arc<Outbox>> = (0..3).map(|_| Arc::new(Outbox::new(4, 1024))).collect();
        let (alice, bob): (Arc<str>, Arc<str>) = (Arc::from("alice"), Arc::from("bob"));
        hub.join_user(&alice, a1, &o[0]);
        hub.join_user(&alice, a2, &o[1]);
        hub.join_user(&bob, b, &o[2]);
        assert_eq!(
            hub.deliver_to_user("alice", &Utf8Bytes::from("j"))
                .delivered,
            2
        );
        assert!(o[2].is_empty());
        hub.leave_user("alice", a1);
        hub.leave_user("alice", a2);
        assert_eq!(
            hub.deliver_to_user("alice", &Utf8Bytes::from("j"))
                .delivered,
            0
        );
        assert!(!read(&hub.users).contains_key("alice"));
    }

    #[test]
    fn a_full_outbox_counts_as_dropped() {
        let hub = LocalHub::new();
        let id = Uuid::new_v4();
        let o = Arc::new(Outbox::new(1, 1024));
        hub.join(id, o.clone());
        assert_eq!(hub.deliver_now(None, &Utf8Bytes::from("1")).delivered, 1);
        assert_eq!(hub.deliver_now(None, &Utf8Bytes::from("2")).dropped, 1);
        assert!(o.overflowed());
    }
}
