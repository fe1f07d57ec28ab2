//! This task's connections, the projects each follows, and how far each has been sent.
//!
//! The delicate part of recovery lives here, once for both hubs: while a subscription's replay
//! is being read (from the broker's history), its live updates wait in a buffer; when the
//! replay arrives, the reply, the replay and the buffered updates go out as one batch, in
//! offset order, each offset at most once. Every member remembers the last offset it was sent,
//! so a hole in the live stream (pub/sub lost messages while the broker connection was down)
//! is noticed and repaired from history, or the client is told to reload.
//!
//! Users (per-user delivery, live-only like broadcasts) are a plain map from the `sub` a
//! connection authenticated as to its outboxes: no positions, nothing to merge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::ConnId;
use crate::outbox::{Outbox, PushError};
use crate::protocol::{Reply, Since};

/// What a publish reached on this task.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Connections that got the update queued.
    pub delivered: usize,
    /// Connections that were too slow and are being closed instead.
    pub dropped: usize,
}

/// One update of a project with its position and its frame text (shared by every recipient).
#[derive(Debug, Clone)]
pub struct Update {
    /// Its offset in the project.
    pub offset: u64,
    /// The epoch of that offset.
    pub epoch: Arc<str>,
    /// The frame as sent.
    pub frame: Utf8Bytes,
}

/// What reading a project's position (and history) found.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// No `since`: the current position.
    Fresh {
        /// The project's latest offset.
        top: u64,
        /// The project's epoch.
        epoch: Arc<str>,
    },
    /// Every update after the member's position, up to `top`, in order.
    Recovered {
        /// The project's latest offset.
        top: u64,
        /// The project's epoch.
        epoch: Arc<str>,
        /// The updates after the client's position, oldest first.
        entries: Vec<Update>,
    },
    /// The gap cannot be filled: the client must reload; its position is now `top`.
    Lost {
        /// The project's latest offset, the client's new position.
        top: u64,
        /// The project's epoch.
        epoch: Arc<str>,
    },
}

/// Why a recovery ran: a client's subscribe (answered with `subscribed`), or a repair of a live
/// subscription (silent when it succeeds).
#[derive(Debug, Clone, Copy)]
pub enum Finish<'a> {
    Subscribe { request_id: Option<&'a RawValue> },
    Repair,
}

/// A recovery to run for members of one project that share a position.
#[derive(Debug)]
pub struct Repair {
    pub project: Arc<str>,
    pub since: Since,
    /// Member and the ticket of its recovery.
    pub members: Vec<(ConnId, u64)>,
}

/// A subscription just begun.
#[derive(Debug, Clone, Copy)]
pub struct Begun {
    pub ticket: u64,
    /// The project had no member on this task before (the broker subscribes its channel).
    pub first: bool,
}

struct Member {
    outbox: Arc<Outbox>,
    /// Last offset sent (or the client's position), in `epoch`.
    last: u64,
    epoch: Option<Arc<str>>,
    /// Live updates waiting while a recovery runs.
    pending: Option<Vec<Update>>,
    /// Identifies the recovery in flight; a newer one makes an older one's result void.
    ticket: u64,
}

type Members = HashMap<ConnId, Member>;
/// Connections without positions (a user's).
type Outboxes = HashMap<ConnId, Arc<Outbox>>;

#[derive(Default)]
/// The connections on this task: who follows which project, who is which user.
pub struct Registry {
    all: RwLock<HashMap<ConnId, Arc<Outbox>>>,
    /// Connections by the user they authenticated as.
    users: RwLock<HashMap<Arc<str>, Outboxes>>,
    /// The members of each project, each project under a lock of its own: a delivery writes
    /// into its members' sockets while holding its project's lock (which keeps the project's
    /// updates in order and merged with recoveries), so two projects deliver at once on two
    /// workers. Adding or removing a project takes the map's write lock.
    projects: RwLock<HashMap<Arc<str>, Mutex<Members>>>,
    tickets: AtomicU64,
}

/// A project's members, from the map's write lock (no locking needed).
fn members_mut(m: &mut Mutex<Members>) -> &mut Members {
    m.get_mut().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave a map half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Step {
    Sent,
    Skipped,
    Gap,
}

fn subscribed(
    project: &str,
    request_id: Option<&RawValue>,
    offset: u64,
    epoch: &str,
    recovered: Option<bool>,
) -> Utf8Bytes {
    Utf8Bytes::from(
        Reply::Subscribed {
            request_id,
            project_id: project,
            offset,
            epoch,
            recovered,
        }
        .to_text(),
    )
}

/// The live rule for one member: in order once, a hole is a gap, another epoch means the
/// history was lost under the subscription (the client is told to reload, then gets the update).
/// `emit` gets the member's outbox with each frame, so a delivery pushes without cloning it.
fn apply(
    project: &str,
    m: &mut Member,
    u: &Update,
    emit: &mut impl FnMut(&Outbox, Utf8Bytes),
) -> Step {
    match &m.epoch {
        Some(e) if **e == *u.epoch => {
            if u.offset <= m.last {
                Step::Skipped
            } else if u.offset == m.last + 1 {
                emit(&m.outbox, u.frame.clone());
                m.last = u.offset;
                Step::Sent
            } else {
                Step::Gap
            }
        }
        _ => {
            emit(
                &m.outbox,
                subscribed(project, None, u.offset - 1, &u.epoch, Some(false)),
            );
            emit(&m.outbox, u.frame.clone());
            m.epoch = Some(u.epoch.clone());
            m.last = u.offset;
            Step::Sent
        }
    }
}

impl Registry {
    fn read_projects(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, Mutex<Members>>> {
        self.projects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_projects(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Mutex<Members>>> {
        self.projects.write().unwrap_or_else(|e| e.into_inner())
    }

    fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds a connection.
    pub fn join(&self, id: ConnId, outbox: Arc<Outbox>) {
        self.all
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, outbox);
    }

    /// Forgets a connection; returns the projects that have no member left on this task.
    pub fn leave(&self, id: ConnId, projects: &[Arc<str>]) -> Vec<Arc<str>> {
        self.all
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        projects
            .iter()
            .filter(|p| self.remove(p, id))
            .cloned()
            .collect()
    }

    /// Connections registered.
    pub fn connection_count(&self) -> usize {
        self.all.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Queues a frame for every connection.
    pub fn broadcast(&self, frame: &Utf8Bytes) -> Delivery {
        let mut d = Delivery::default();
        for outbox in self.all.read().unwrap_or_else(|e| e.into_inner()).values() {
            count(&mut d, outbox.push(frame.clone()));
        }
        d
    }

    /// A connection authenticated as `user`; true when it is the user's first on this task
    /// (the broker subscribes the user's channel).
    pub fn join_user(&self, user: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>) -> bool {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let first = !users.contains_key(user);
        users
            .entry(user.clone())
            .or_default()
            .insert(id, outbox.clone());
        first
    }

    /// Forgets a connection for `user`; true when the user has no connection left here.
    pub fn leave_user(&self, user: &str, id: ConnId) -> bool {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let Some(members) = users.get_mut(user) else {
            return false;
        };
        members.remove(&id);
        if members.is_empty() {
            users.remove(user);
            true
        } else {
            false
        }
    }

    /// Queues a frame for every connection of `user` on this task.
    pub fn deliver_user(&self, user: &str, frame: &Utf8Bytes) -> Delivery {
        let mut d = Delivery::default();
        if let Some(members) = self
            .users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
        {
            for outbox in members.values() {
                count(&mut d, outbox.push(frame.clone()));
            }
        }
        d
    }

    /// Whether a connection of `user` is on this task.
    pub fn has_user(&self, user: &str) -> bool {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(user)
    }

    /// The users with a connection on this task.
    pub fn users(&self) -> Vec<Arc<str>> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Starts (or restarts) a subscription: live updates wait until [`Registry::finish`].
    pub fn begin(
        &self,
        project: &Arc<str>,
        id: ConnId,
        outbox: &Arc<Outbox>,
        since: Option<&Since>,
    ) -> Begun {
        let ticket = self.ticket();
        let mut map = self.write_projects();
        let first = !map.contains_key(project);
        members_mut(map.entry(project.clone()).or_default()).insert(
            id,
            Member {
                outbox: outbox.clone(),
                last: since.map_or(0, |s| s.offset),
                epoch: since.map(|s| Arc::from(s.epoch.as_str())),
                pending: Some(Vec::new()),
                ticket,
            },
        );
        Begun { ticket, first }
    }

    /// Ends a subscription; true when the project has no member left on this task.
    pub fn remove(&self, project: &str, id: ConnId) -> bool {
        let mut map = self.write_projects();
        match map.get_mut(project).map(members_mut) {
            Some(members) => {
                members.remove(&id);
                if members.is_empty() {
                    map.remove(project);
                    true
                } else {
                    false
                }
            }
            None => false,
        }
    }

    /// Whether a connection on this task follows `project`.
    pub fn has_members(&self, project: &str) -> bool {
        self.read_projects().contains_key(project)
    }

    /// The projects followed on this task.
    pub fn projects(&self) -> Vec<Arc<str>> {
        self.read_projects().keys().cloned().collect()
    }

    /// Whether a recovery's result is still wanted.
    pub fn is_current(&self, project: &str, id: ConnId, ticket: u64) -> bool {
        self.read_projects()
            .get(project)
            .is_some_and(|m| lock(m).get(&id).is_some_and(|m| m.ticket == ticket))
    }

    /// Delivers a live update to the project's members; returns the repairs that holes in the
    /// stream call for (empty unless messages were lost on the way).
    pub fn deliver(&self, project: &str, u: &Update) -> (Delivery, Vec<Repair>) {
        let mut d = Delivery::default();
        let mut gaps: Vec<(ConnId, u64)> = Vec::new();
        let map = self.read_projects();
        let Some((key, members)) = map.get_key_value(project) else {
            return (d, Vec::new());
        };
        let mut members = lock(members);
        for (id, m) in members.iter_mut() {
            if let Some(buf) = m.pending.as_mut() {
                buf.push(u.clone());
                d.delivered += 1;
                continue;
            }
            if let Step::Gap = apply(project, m, u, &mut |o, f| count(&mut d, o.push(f))) {
                gaps.push((*id, m.last));
            }
        }
        if gaps.is_empty() {
            return (d, Vec::new());
        }
        for (id, _) in &gaps {
            let ticket = self.ticket();
            if let Some(m) = members.get_mut(id) {
                m.pending = Some(vec![u.clone()]);
                m.ticket = ticket;
            }
        }
        let repairs = group(key, gaps.iter().map(|(id, _)| *id), &members);
        (d, repairs)
    }

    /// Applies a recovery's outcome to one member (if its ticket is still current): the reply,
    /// the replay, then the live updates that waited, as one batch. Returns a repair when the
    /// waiting updates themselves have a hole.
    pub fn finish(
        &self,
        project: &str,
        id: ConnId,
        ticket: u64,
        why: Finish<'_>,
        outcome: Outcome,
    ) -> Option<Repair> {
        let new_ticket = self.ticket();
        let map = self.read_projects();
        let (key, members) = map.get_key_value(project)?;
        let key = key.clone();
        let mut members = lock(members);
        let m = members.get_mut(&id)?;
        if m.ticket != ticket || m.pending.is_none() {
            return None;
        }
        let waiting = m.pending.take().unwrap_or_default();
        let rid = match why {
            Finish::Subscribe { request_id } => Some(request_id),
            Finish::Repair => None,
        };
        let mut batch = Vec::new();
        match outcome {
            Outcome::Fresh { top, epoch } => {
                batch.push(subscribed(project, rid.flatten(), top, &epoch, None));
                m.last = top;
                m.epoch = Some(epoch);
            }
            Outcome::Recovered {
                top,
                epoch,
                entries,
            } => {
                if let Some(rid) = rid {
                    batch.push(subscribed(project, rid, top, &epoch, Some(true)));
                }
                for e in entries.into_iter().filter(|e| e.offset > m.last) {
                    batch.push(e.frame);
                }
                m.last = top;
                m.epoch = Some(epoch);
            }
            Outcome::Lost { top, epoch } => {
                batch.push(subscribed(project, rid.flatten(), top, &epoch, Some(false)));
                m.last = top;
                m.epoch = Some(epoch);
            }
        }
        let mut rest = waiting.into_iter();
        let mut repair = None;
        while let Some(u) = rest.next() {
            if let Step::Gap = apply(project, m, &u, &mut |_, f| batch.push(f)) {
                let mut still = vec![u];
                still.extend(rest);
                m.pending = Some(still);
                m.ticket = new_ticket;
                repair = Some(Repair {
                    project: key.clone(),
                    since: Since {
                        offset: m.last,
                        epoch: m.epoch.as_deref().unwrap_or_default().to_owned(),
                    },
                    members: vec![(id, new_ticket)],
                });
                break;
            }
        }
        let _ = m.outbox.push_replay(batch);
        repair
    }

    /// After the broker connection came back: every live member may have missed updates, so
    /// each waits for a repair from its last offset (grouped by position).
    pub fn repair_all(&self) -> Vec<Repair> {
        let mut map = self.write_projects();
        let mut repairs = Vec::new();
        for (project, members) in map.iter_mut() {
            let members = members_mut(members);
            let mut ids = Vec::new();
            for (id, m) in members.iter_mut() {
                if m.pending.is_none() {
                    m.pending = Some(Vec::new());
                    m.ticket = self.ticket();
                    ids.push(*id);
                }
            }
            repairs.extend(group(project, ids.into_iter(), members));
        }
        repairs
    }
}

/// A position in a project's history: (last offset seen, epoch).
type Position = (u64, Arc<str>);

/// Members of one project grouped by their position: one history read per group.
fn group(project: &Arc<str>, ids: impl Iterator<Item = ConnId>, members: &Members) -> Vec<Repair> {
    let mut by: HashMap<Position, Vec<(ConnId, u64)>> = HashMap::new();
    for id in ids {
        if let Some(m) = members.get(&id) {
            let epoch = m.epoch.clone().unwrap_or_else(|| Arc::from(""));
            by.entry((m.last, epoch)).or_default().push((id, m.ticket));
        }
    }
    by.into_iter()
        .map(|((offset, epoch), members)| Repair {
            project: project.clone(),
            since: Since {
                offset,
                epoch: epoch.to_string(),
            },
            members,
        })
        .collect()
}

fn count(d: &mut Delivery, r: Result<(), PushError>) {
    match r {
        Ok(()) => d.delivered += 1,
        Err(PushError::Full) => d.dropped += 1,
        Err(PushError::Closed) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn up(offset: u64, epoch: &str) -> Update {
        Update {
            offset,
            epoch: Arc::from(epoch),
            frame: Utf8Bytes::from(format!("u{offset}")),
        }
    }

    fn texts(o: &Outbox) -> Vec<String> {
        std::iter::from_fn(|| o.pop())
            .map(|b| b.to_string())
            .map(|t| {
                if t.starts_with('{') {
                    serde_json::from_str::<serde_json::Value>(&t)
                        .map(|v| format!("sub:{}:{}", v["offset"], v["recovered"]))
                        .unwrap_or(t)
                } else {
                    t
                }
            })
            .collect()
    }

    #[test]
    fn a_replay_merges_with_live_updates_without_gap_or_duplicate() {
        let r = Registry::default();
        let p: Arc<str> = Arc::from("p");
        let id = Uuid::new_v4();
        let o = Arc::new(Outbox::new(4, 1 << 20));
        let since = Since {
            offset: 2,
            epoch: "e".into(),
        };
        let b = r.begin(&p, id, &o, Some(&since));
        assert!(b.first);
        // live updates race the history read: 5 was also read from history, 6 was not
        r.deliver("p", &up(5, "e"));
        r.deliver("p", &up(6, "e"));
        assert!(o.is_empty(), "nothing goes out before the reply");
        let outcome = Outcome::Recovered {
            top: 5,
            epoch: Arc::from("e"),
            entries: vec![up(3, "e"), up(4, "e"), up(5, "e")],
        };
        assert!(
            r.finish(
                "p",
                id,
                b.ticket,
                Finish::Subscribe { request_id: None },
                outcome
            )
            .is_none()
        );
        r.deliver("p", &up(6, "e"));
        r.deliver("p", &up(7, "e"));
        assert_eq!(texts(&o), ["sub:5:true", "u3", "u4", "u5", "u6", "u7"]);
    }

    #[test]
    fn a_hole_in_the_live_stream_asks_for_a_repair() {
        let r = Registry::default();
        let p: Arc<str> = Arc::from("p");
        let id = Uuid::new_v4();
        let o = Arc::new(Outbox::new(8, 1 << 20));
        let b = r.begin(&p, id, &o, None);
        r.finish(
            "p",
            id,
            b.ticket,
            Finish::Subscribe { request_id: None },
            Outcome::Fresh {
                top: 1,
                epoch: Arc::from("e"),
            },
        );
        r.deliver("p", &up(2, "e"));
        let (_, repairs) = r.deliver("p", &up(5, "e"));
        assert_eq!(repairs.len(), 1);
        assert_eq!(repairs[0].since.offset, 2);
        let (_, ticket) = repairs[0].members[0];
        r.deliver("p", &up(6, "e"));
        let entries = vec![up(3, "e"), up(4, "e")];
        // the history read saw top 4; 5 and 6 waited
        r.finish(
            "p",
            id,
            ticket,
            Finish::Repair,
            Outcome::Recovered {
                top: 4,
                epoch: Arc::from("e"),
                entries,
            },
        );
        assert_eq!(texts(&o), ["sub:1:null", "u2", "u3", "u4", "u5", "u6"]);
    }

    #[test]
    fn a_lost_gap_tells_the_client_and_replays_nothing() {
        let r = Registry::default();
        let p: Arc<str> = Arc::from("p");
        let id = Uuid::new_v4();
        let o = Arc::new(Outbox::new(8, 1 << 20));
        let since = Since {
            offset: 1,
            epoch: "old".into(),
        };
        let b = r.begin(&p, id, &o, Some(&since));
        r.deliver("p", &up(9, "new"));
        r.finish(
            "p",
            id,
            b.ticket,
            Finish::Subscribe { request_id: None },
            Outcome::Lost {
                top: 8,
                epoch: Arc::from("new"),
            },
        );
        assert_eq!(texts(&o), ["sub:8:false", "u9"]);
        // the epoch changes under a live subscription: reload, then the update
        r.deliver("p", &up(1, "newer"));
        assert_eq!(texts(&o), ["sub:0:false", "u1"]);
        assert!(r.remove("p", id));
    }
}
