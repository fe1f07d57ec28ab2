//! The bounded queue of frames waiting to be written to one client.
//!
//! Publishers never wait on a client: they push with [`Outbox::push`], which fails at once when
//! the queue is full. A full queue marks the client as too slow; its connection then closes it
//! (1008) and the queue refuses everything after. An empty queue holds no allocation, which keeps
//! idle connections small.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Why a frame was not queued.
pub enum PushError {
    /// The client fell behind; this push marked it for closing.
    Full,
    /// The connection is closing or closed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Overflowed,
    Closed,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<Utf8Bytes>,
    /// Bytes of the frames in `queue`.
    bytes: usize,
    state: State,
    /// Room above `capacity` granted to a replay (see [`Outbox::push_replay`]); never more than
    /// what is queued, so it shrinks as the client reads.
    extra: usize,
    /// The same allowance above `max_bytes`, in bytes.
    extra_bytes: usize,
}

#[derive(Debug)]
/// What waits to be written to one client: bounded in frames and bytes.
pub struct Outbox {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Bound on the bytes waiting; a single frame larger than it is still taken when nothing
    /// else waits (the connection refuses such replies itself, see `reply_too_large`).
    max_bytes: usize,
    /// Woken when the queue goes from empty to non-empty.
    ready: Notify,
    /// Woken when the queue overflows.
    overflow: Notify,
}

impl Outbox {
    /// An outbox of at most `capacity` frames and `max_bytes` bytes.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                state: State::Open,
                extra: 0,
                extra_bytes: 0,
            }),
            capacity,
            max_bytes,
            ready: Notify::new(),
            overflow: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting, and wakes the connection if the queue was empty.
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.push_and_wake(frame, true)
    }

    /// Queues a reply from the connection's own task, which writes its outbox right after
    /// handling a request: waking it would only cost an extra pass over an empty queue.
    pub fn push_own(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.push_and_wake(frame, false)
    }

    fn push_and_wake(&self, frame: Utf8Bytes, wake: bool) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.state != State::Open {
            return Err(PushError::Closed);
        }
        let too_many_bytes = !inner.queue.is_empty()
            && inner.bytes + frame.len() > self.max_bytes + inner.extra_bytes;
        if inner.queue.len() >= self.capacity + inner.extra || too_many_bytes {
            inner.state = State::Overflowed;
            inner.queue = VecDeque::new();
            inner.bytes = 0;
            drop(inner);
            self.overflow.notify_one();
            return Err(PushError::Full);
        }
        inner.bytes += frame.len();
        inner.queue.push_back(frame);
        let first = inner.queue.len() == 1;
        drop(inner);
        if first && wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Queues a recovery replay (at most `WS_RECOVERY_MAX` frames) as one batch that does not
    /// count against the capacity: a client that asked for missed updates is not "too slow"
    /// for receiving them, and live updates after the batch still have the whole capacity.
    pub fn push_replay(
        &self,
        frames: impl IntoIterator<Item = Utf8Bytes>,
    ) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.state != State::Open {
            return Err(PushError::Closed);
        }
        let was_empty = inner.queue.is_empty();
        let before = inner.queue.len();
        for frame in frames {
            inner.bytes += frame.len();
            inner.extra_bytes += frame.len();
            inner.queue.push_back(frame);
        }
        inner.extra += inner.queue.len() - before;
        let woke = was_empty && !inner.queue.is_empty();
        drop(inner);
        if woke {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The next frame to write, if any.
    pub fn pop(&self) -> Option<Utf8Bytes> {
        let mut inner = self.lock();
        let frame = inner.queue.pop_front();
        if let Some(f) = &frame {
            inner.bytes -= f.len();
        }
        inner.extra = inner.extra.min(inner.queue.len());
        inner.extra_bytes = inner.extra_bytes.min(inner.bytes);
        if inner.queue.is_empty() {
            // An idle connection holds no queue memory (an allocation per burst is cheap).
            inner.queue = VecDeque::new();
        }
        frame
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Whether a push found it full (the client is then closed as too slow).
    pub fn overflowed(&self) -> bool {
        self.lock().state == State::Overflowed
    }

    /// Refuses further pushes and drops what is queued.
    pub fn close(&self) {
        let mut inner = self.lock();
        if inner.state == State::Open {
            inner.state = State::Closed;
        }
        inner.queue = VecDeque::new();
        inner.bytes = 0;
    }

    /// The byte bound (`WS_OUTBOX_BYTES`).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Resolves when frames may be waiting (a permit is kept if nobody was waiting).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Resolves when the queue has overflowed.
    pub async fn overflowed_signal(&self) {
        self.overflow.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_closes_the_queue_and_frees_it() {
        let o = Outbox::new(2, 1024);
        assert_eq!(o.push("a".into()), Ok(()));
        assert_eq!(o.push("b".into()), Ok(()));
        assert_eq!(o.push("c".into()), Err(PushError::Full));
        assert!(o.overflowed());
        assert_eq!(o.pop(), None);
        assert_eq!(o.push("d".into()), Err(PushError::Closed));
    }

    #[test]
    fn the_byte_bound_overflows_too() {
        let o = Outbox::new(100, 10);
        assert_eq!(o.push("123456".into()), Ok(()));
        assert_eq!(o.push("1234".into()), Ok(()));
        assert_eq!(o.push("1".into()), Err(PushError::Full));
        // A lone frame over the bound is taken: it is the next thing written.
        let o = Outbox::new(100, 10);
        assert_eq!(o.push("x".repeat(50).into()), Ok(()));
        assert_eq!(o.pop().map(|f| f.len()), Some(50));
        assert_eq!(o.push("123456789".into()), Ok(()));
    }

    #[test]
    fn a_replay_does_not_count_against_the_capacity() {
        let o = Outbox::new(2, 1 << 20);
        o.push_replay((0..5).map(|i| Utf8Bytes::from(i.to_string())))
            .expect("open");
        assert_eq!(o.push("live1".into()), Ok(()));
        assert_eq!(o.push("live2".into()), Ok(()));
        assert_eq!(o.push("live3".into()), Err(PushError::Full));
        let o = Outbox::new(2, 1 << 20);
        o.push_replay((0..3).map(|i| Utf8Bytes::from(i.to_string())))
            .expect("open");
        for _ in 0..3 {
            o.pop();
        }
        // the replay was read: the allowance is gone
        assert_eq!(o.push("a".into()), Ok(()));
        assert_eq!(o.push("b".into()), Ok(()));
        assert_eq!(o.push("c".into()), Err(PushError::Full));
    }

    #[test]
    fn frames_come_out_in_order() {
        let o = Outbox::new(8, 1024);
        for s in ["1", "2", "3"] {
            o.push(s.into()).expect("room");
        }
        let got: Vec<String> = std::iter::from_fn(|| o.pop())
            .map(|b| b.to_string())
            .collect();
        assert_eq!(got, ["1", "2", "3"]);
        o.close();
        assert_eq!(o.push("4".into()), Err(PushError::Closed));
        assert!(!o.overflowed());
    }
}
