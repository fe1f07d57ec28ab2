//! Following a log group with no duplicates and no gaps, from two sources: FilterLogEvents
//! polls and, where the API offers it, a live tail session.
//!
//! Each poll re-reads from a little before the newest event seen, because CloudWatch Logs
//! takes events in late (the awslogs driver batches, streams arrive independently) and
//! several events can share a millisecond. The ids of events inside that overlap are kept, so
//! an event is printed exactly once; ids older than the overlap are forgotten, since no later
//! query reaches back that far.
//!
//! Live tail events carry no id, and a poll that bridges a session's start (or a restart)
//! returns some of the events the session also pushes. Those are matched on their content
//! (stream, time, message), counted, so two identical lines in one millisecond both print.

use std::collections::HashMap;

use super::Event;

/// How far back each poll re-reads before the newest event seen, in milliseconds.
pub const OVERLAP_MS: i64 = 15_000;

/// What identifies a live tail event: it has no id.
type Content = (String, i64, String);

#[derive(Debug)]
pub struct Follower {
    /// Nothing before this is ever shown (`--since`).
    floor: i64,
    /// The newest timestamp seen.
    newest: i64,
    /// Event id -> timestamp, for the polled events inside the overlap.
    seen: HashMap<String, i64>,
    /// Polled events shown that a live session may push again, by content.
    polled: HashMap<Content, u32>,
    /// Live events shown that a poll may return again, by content.
    live: HashMap<Content, u32>,
}

impl Follower {
    pub fn new(start_ms: i64) -> Self {
        Self {
            floor: start_ms,
            newest: start_ms,
            seen: HashMap::new(),
            polled: HashMap::new(),
            live: HashMap::new(),
        }
    }

    /// Where the next query starts (inclusive).
    pub fn next_start(&self) -> i64 {
        (self.newest - OVERLAP_MS).max(self.floor)
    }

    /// The events of a poll not shown before, in order; remembers them.
    pub fn admit(&mut self, events: Vec<Event>) -> Vec<Event> {
        let mut fresh = Vec::new();
        for event in events {
            if event.timestamp < self.floor || self.seen.contains_key(&event.event_id) {
                continue;
            }
            self.seen.insert(event.event_id.clone(), event.timestamp);
            let key = content(&event);
            if !take(&mut self.live, &key) {
                *self.polled.entry(key).or_default() += 1;
                self.newest = self.newest.max(event.timestamp);
                fresh.push(event);
            }
        }
        self.forget();
        fresh
    }

    /// The events of a live tail update not shown before, in order; remembers them.
    pub fn admit_live(&mut self, events: Vec<Event>) -> Vec<Event> {
        let mut fresh = Vec::new();
        for event in events {
            let key = content(&event);
            if event.timestamp < self.floor || take(&mut self.polled, &key) {
                continue;
            }
            *self.live.entry(key).or_default() += 1;
            self.newest = self.newest.max(event.timestamp);
            fresh.push(event);
        }
        self.forget();
        fresh
    }

    /// Drops what no later poll can return.
    fn forget(&mut self) {
        let start = self.next_start();
        self.seen.retain(|_, ts| *ts >= start);
        self.polled.retain(|(_, ts, _), _| *ts >= start);
        self.live.retain(|(_, ts, _), _| *ts >= start);
    }
}

fn content(event: &Event) -> Content {
    (event.stream.clone(), event.timestamp, event.message.clone())
}

/// Takes one count of `key`; `false` when there is none.
fn take(counts: &mut HashMap<Content, u32>, key: &Content) -> bool {
    match counts.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        Some(_) => {
            counts.remove(key);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, timestamp: i64) -> Event {
        Event {
            timestamp,
            ingestion_time: timestamp,
            event_id: id.into(),
            stream: "ws/websocket/t1".into(),
            message: id.into(),
        }
    }

    /// A live tail event: no id of its own.
    fn live(message: &str, timestamp: i64) -> Event {
        Event {
            event_id: String::new(),
            ..event(message, timestamp)
        }
    }

    fn ids(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn overlapping_polls_print_each_event_once() {
        let mut follower = Follower::new(1_000_000);
        let first = follower.admit(vec![event("a", 1_000_100), event("b", 1_000_200)]);
        assert_eq!(ids(&first), ["a", "b"]);
        assert_eq!(follower.next_start(), 1_000_000, "never before --since");
        // Same millisecond as b, arriving a poll later; the query overlaps a and b.
        let second = follower.admit(vec![
            event("a", 1_000_100),
            event("b", 1_000_200),
            event("c", 1_000_200),
        ]);
        assert_eq!(ids(&second), ["c"]);
    }

    #[test]
    fn late_events_inside_the_overlap_are_not_lost() {
        let mut follower = Follower::new(0);
        follower.admit(vec![event("new", 100_000)]);
        assert_eq!(follower.next_start(), 100_000 - OVERLAP_MS);
        // Ingested late with an older timestamp: still inside the overlap, so still shown.
        let late = follower.admit(vec![event("late", 95_000), event("new", 100_000)]);
        assert_eq!(ids(&late), ["late"]);
    }

    #[test]
    fn forgets_ids_the_next_query_cannot_return() {
        let mut follower = Follower::new(0);
        follower.admit(vec![event("old", 1_000)]);
        follower.admit(vec![event("new", 1_000 + OVERLAP_MS + 5_000)]);
        assert!(!follower.seen.contains_key("old"));
        assert!(follower.seen.contains_key("new"));
        assert!(follower.next_start() > 1_000);
    }

    #[test]
    fn a_live_event_the_bridging_poll_printed_is_not_printed_again() {
        let mut follower = Follower::new(0);
        // The poll after the session started already returned x and y.
        follower.admit(vec![event("x", 10), event("y", 20)]);
        let pushed = follower.admit_live(vec![live("y", 20), live("z", 30)]);
        assert_eq!(ids(&pushed), ["z"]);
    }

    #[test]
    fn a_polled_event_the_live_session_printed_is_not_printed_again() {
        let mut follower = Follower::new(0);
        follower.admit_live(vec![live("p", 10), live("q", 20)]);
        // The session ended; the poll that bridges to the next one returns p and q again.
        let polled = follower.admit(vec![event("p", 10), event("q", 20), event("r", 25)]);
        assert_eq!(ids(&polled), ["r"]);
        // And a later overlapping poll does not bring p or q back either.
        let again = follower.admit(vec![event("p", 10), event("q", 20), event("r", 25)]);
        assert!(again.is_empty());
    }

    #[test]
    fn identical_lines_in_one_millisecond_all_print() {
        let mut follower = Follower::new(0);
        follower.admit(vec![event("dup", 10)]);
        // The session pushes the polled one and a second, identical line.
        let pushed = follower.admit_live(vec![live("dup", 10), live("dup", 10)]);
        assert_eq!(ids(&pushed), ["dup"]);
    }
}
