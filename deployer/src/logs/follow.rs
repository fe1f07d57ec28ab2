//! Following a log group by polling FilterLogEvents, with no duplicates and no gaps.
//!
//! Each poll re-reads from a little before the newest event seen, because CloudWatch Logs
//! takes events in late (the awslogs driver batches, streams arrive independently) and
//! several events can share a millisecond. The ids of events inside that overlap are kept, so
//! an event is printed exactly once; ids older than the overlap are forgotten, since no later
//! query reaches back that far.

use std::collections::HashMap;

use super::Event;

/// How far back each poll re-reads before the newest event seen, in milliseconds.
pub const OVERLAP_MS: i64 = 15_000;

#[derive(Debug)]
pub struct Follower {
    /// Nothing before this is ever shown (`--since`).
    floor: i64,
    /// The newest timestamp seen.
    newest: i64,
    /// Event id -> timestamp, for the events inside the overlap.
    seen: HashMap<String, i64>,
}

impl Follower {
    pub fn new(start_ms: i64) -> Self {
        Self {
            floor: start_ms,
            newest: start_ms,
            seen: HashMap::new(),
        }
    }

    /// Where the next query starts (inclusive).
    pub fn next_start(&self) -> i64 {
        (self.newest - OVERLAP_MS).max(self.floor)
    }

    /// The events of a poll not shown before, in order; remembers them.
    pub fn admit(&mut self, events: Vec<Event>) -> Vec<Event> {
        let fresh: Vec<Event> = events
            .into_iter()
            .filter(|e| e.timestamp >= self.floor)
            .filter(|e| !self.seen.contains_key(&e.event_id))
            .collect();
        for event in &fresh {
            self.seen.insert(event.event_id.clone(), event.timestamp);
            self.newest = self.newest.max(event.timestamp);
        }
        let start = self.next_start();
        self.seen.retain(|_, ts| *ts >= start);
        fresh
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

    fn ids(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.event_id.as_str()).collect()
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
}
