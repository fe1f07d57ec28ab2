//! The frames waiting to be written to one client, and the writing.
//!
//! Publishers never wait on a client. [`Outbox::push`] writes the frame straight into the
//! socket when nothing waits before it (one non-blocking `send` from the publisher's thread:
//! no wake-up of the connection's task, no copy into another buffer), and queues it when the
//! socket has no room or frames already wait; only then is the connection's task woken, to
//! write the queue as the socket drains ([`Outbox::poll_flush`]). Order holds by construction:
//! every write happens under the outbox's lock, and anything queued makes later frames queue
//! behind it. The queue is bounded in frames and bytes: a push that finds it full marks the
//! client as too slow; its connection then closes it (1008) and the outbox refuses
//! everything after but the close frame itself. An empty queue holds no allocation, which
//! keeps idle connections small.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

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

/// Frames up to this size (header included) are written from a buffer on the stack in one
/// `send`; larger ones are written as header and payload (`writev`), and a queue is written up
/// to this much per system call.
const STACK_FRAME_BYTES: usize = 16 * 1024;

#[derive(Debug)]
enum Frame {
    /// A text frame's payload (shared by every subscriber of an update), framed when written.
    Text(Utf8Bytes),
    /// Bytes already framed: tungstenite's own frames, or what is left of a frame the socket
    /// took part of.
    Raw(Bytes),
}

impl Frame {
    fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Raw(b) => b.len(),
        }
    }

    /// Appends the frame's bytes to `out`; false (and nothing appended) if they do not fit.
    fn encode_into(&self, out: &mut Cursor<'_>) -> bool {
        match self {
            Frame::Raw(b) => out.put(b),
            Frame::Text(t) => {
                let mut header = [0u8; 10];
                let n = text_header(t.len(), &mut header);
                if out.room() < n + t.len() {
                    return false;
                }
                out.put(&header[..n]) && out.put(t.as_bytes())
            }
        }
    }
}

/// The header of an unmasked, final text frame of `len` bytes, in `out`; returns its length.
fn text_header(len: usize, out: &mut [u8; 10]) -> usize {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let mut w = &mut out[..];
    // Cannot fail: the longest header (10 bytes) fits.
    let _ = header.format(len as u64, &mut w);
    10 - w.len()
}

/// A stack buffer being filled.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    fn put(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.room() {
            return false;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        true
    }
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<Frame>,
    /// Bytes of the frames in `queue`.
    bytes: usize,
    state: State,
    /// Room above `capacity` granted to a replay (see [`Outbox::push_replay`]); never more than
    /// what is queued, so it shrinks as the client reads.
    extra: usize,
    /// The same allowance above `max_bytes`, in bytes.
    extra_bytes: usize,
    /// The first queued frame was partly written: it must be finished before anything else
    /// (even a close frame) goes out, and is kept when the queue is dropped.
    head_started: bool,
    /// The socket's write half once the connection is upgraded; without it (the queue's own
    /// tests) frames only queue.
    wire: Option<OwnedWriteHalf>,
    /// A write failed: the client is gone, nothing more is written.
    broken: bool,
}

impl Inner {
    /// Writes `frame` now if the socket takes it; returns what must wait (the whole frame,
    /// or the rest of it).
    fn write_now(&mut self, frame: Frame) -> Option<Frame> {
        let Some(wire) = self.wire.as_ref().filter(|_| !self.broken) else {
            return Some(frame);
        };
        let mut stack = [0u8; STACK_FRAME_BYTES];
        let mut out = Cursor {
            buf: &mut stack,
            len: 0,
        };
        let fits = frame.encode_into(&mut out);
        let len = out.len;
        let written = if fits {
            wire.try_write(&stack[..len])
        } else {
            // Larger than the stack buffer: header and payload as they are.
            match &frame {
                Frame::Raw(b) => wire.try_write(b),
                Frame::Text(t) => {
                    let mut header = [0u8; 10];
                    let n = text_header(t.len(), &mut header);
                    let parts = [
                        io::IoSlice::new(&header[..n]),
                        io::IoSlice::new(t.as_bytes()),
                    ];
                    return match wire.try_write_vectored(&parts) {
                        Ok(w) if w == n + t.len() => None,
                        Ok(w) => {
                            self.head_started = w > 0;
                            Some(rest_of(&header[..n], t.as_bytes(), w))
                        }
                        Err(e) => self.failed(e, frame),
                    };
                }
            }
        };
        let total = frame_bytes(&frame);
        match written {
            Ok(w) if w == total => None,
            Ok(w) => {
                self.head_started = w > 0;
                Some(Frame::Raw(Bytes::copy_from_slice(
                    &stack_or_raw(&frame, &stack)[w..total],
                )))
            }
            Err(e) => self.failed(e, frame),
        }
    }

    fn failed(&mut self, e: io::Error, frame: Frame) -> Option<Frame> {
        if e.kind() != io::ErrorKind::WouldBlock {
            self.broken = true;
        }
        Some(frame)
    }

    fn enqueue(&mut self, frame: Frame) {
        self.bytes += frame.len();
        self.queue.push_back(frame);
    }

    /// Drops what waits, but the rest of a frame already started.
    fn drop_queue(&mut self) {
        let head = if self.head_started {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue = VecDeque::new();
        self.bytes = 0;
        if let Some(h) = head {
            self.enqueue(h);
        }
    }

    /// Takes `n` written bytes off the front of the queue.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.pop_front() else {
                break;
            };
            let len = frame_bytes(&front);
            if n >= len {
                n -= len;
                self.bytes -= front.len();
                self.head_started = false;
                continue;
            }
            let rest = match &front {
                Frame::Raw(b) => b.slice(n..),
                Frame::Text(t) => {
                    let mut header = [0u8; 10];
                    let h = text_header(t.len(), &mut header);
                    match rest_of(&header[..h], t.as_bytes(), n) {
                        Frame::Raw(b) => b,
                        Frame::Text(_) => unreachable!("rest_of returns raw bytes"),
                    }
                }
            };
            self.bytes -= front.len();
            self.bytes += rest.len();
            self.queue.push_front(Frame::Raw(rest));
            self.head_started = true;
            break;
        }
        self.extra = self.extra.min(self.queue.len());
        self.extra_bytes = self.extra_bytes.min(self.bytes);
        if self.queue.is_empty() {
            // An idle connection holds no queue memory (an allocation per burst is cheap).
            self.queue = VecDeque::new();
        }
    }
}

/// The bytes of `frame` on the wire.
fn frame_bytes(frame: &Frame) -> usize {
    match frame {
        Frame::Raw(b) => b.len(),
        Frame::Text(t) => {
            let mut header = [0u8; 10];
            text_header(t.len(), &mut header) + t.len()
        }
    }
}

fn stack_or_raw<'a>(frame: &'a Frame, stack: &'a [u8]) -> &'a [u8] {
    match frame {
        Frame::Raw(b) => b,
        Frame::Text(_) => stack,
    }
}

/// What is left of header + payload after `written` bytes went out.
fn rest_of(header: &[u8], payload: &[u8], written: usize) -> Frame {
    let mut rest = Vec::with_capacity(header.len() + payload.len() - written);
    if written < header.len() {
        rest.extend_from_slice(&header[written..]);
        rest.extend_from_slice(payload);
    } else {
        rest.extend_from_slice(&payload[written - header.len()..]);
    }
    Frame::Raw(rest.into())
}

#[derive(Debug)]
/// What waits to be written to one client: bounded in frames and bytes.
pub struct Outbox {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Bound on the bytes waiting; a single frame larger than it is still taken when nothing
    /// else waits (the connection refuses such replies itself, see `reply_too_large`).
    max_bytes: usize,
    /// Woken when frames start to wait for the socket.
    ready: Notify,
    /// Woken when the queue overflows.
    overflow: Notify,
}

impl Outbox {
    /// An outbox of at most `capacity` frames and `max_bytes` bytes, with no socket yet.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                state: State::Open,
                extra: 0,
                extra_bytes: 0,
                head_started: false,
                wire: None,
                broken: false,
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

    /// Gives the outbox the socket to write to (once the connection is upgraded).
    pub fn attach(&self, wire: OwnedWriteHalf) {
        self.lock().wire = Some(wire);
    }

    /// Writes or queues a frame without waiting; wakes the connection if it must wait.
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.push_frame(Frame::Text(frame), true)
    }

    /// A reply from the connection's own task, which writes its outbox right after handling a
    /// request: waking it would only cost an extra pass over the queue.
    pub fn push_own(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.push_frame(Frame::Text(frame), false)
    }

    /// A frame tungstenite made itself (from the connection's own task). Taken after the
    /// outbox closed too: the close frame is the last thing written.
    pub fn push_raw(&self, bytes: Bytes) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.broken {
            return Err(PushError::Closed);
        }
        if !inner.queue.is_empty() {
            // Not bounded: tungstenite writes little of its own (a pong, a ping, the close).
            inner.enqueue(Frame::Raw(bytes));
        } else if let Some(rest) = inner.write_now(Frame::Raw(bytes)) {
            inner.enqueue(rest);
        }
        Ok(())
    }

    fn push_frame(&self, frame: Frame, wake: bool) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.state != State::Open {
            return Err(PushError::Closed);
        }
        if inner.queue.is_empty() {
            let Some(rest) = inner.write_now(frame) else {
                return Ok(());
            };
            inner.enqueue(rest);
            drop(inner);
            if wake {
                self.ready.notify_one();
            }
            return Ok(());
        }
        let too_many_bytes = inner.bytes + frame.len() > self.max_bytes + inner.extra_bytes;
        if inner.queue.len() >= self.capacity + inner.extra || too_many_bytes {
            inner.state = State::Overflowed;
            inner.drop_queue();
            drop(inner);
            self.overflow.notify_one();
            return Err(PushError::Full);
        }
        // Frames already wait: the connection's task knows, and writes this one after them.
        inner.enqueue(frame);
        Ok(())
    }

    /// Queues a recovery replay (at most `WS_RECOVERY_MAX` frames) as one batch that does not
    /// count against the capacity: a client that asked for missed updates is not "too slow"
    /// for receiving them, and live updates after the batch still have the whole capacity.
    /// The connection's task writes it, several frames per system call.
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
            inner.extra_bytes += frame.len();
            inner.enqueue(Frame::Text(frame));
        }
        inner.extra += inner.queue.len() - before;
        let woke = was_empty && !inner.queue.is_empty();
        drop(inner);
        if woke {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Writes what waits, several frames per system call. Ready when the queue is empty,
    /// pending while the socket has no room (the task is woken when it has), an error when
    /// the client is gone.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.lock();
        loop {
            if inner.queue.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if inner.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let mut stack = [0u8; STACK_FRAME_BYTES];
            let mut out = Cursor {
                buf: &mut stack,
                len: 0,
            };
            for frame in &inner.queue {
                if !frame.encode_into(&mut out) {
                    break;
                }
            }
            let len = out.len;
            let inner = &mut *inner;
            let Some(wire) = inner.wire.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let written = if len > 0 {
                Pin::new(wire).poll_write(cx, &stack[..len])
            } else {
                // The first frame alone is larger than the buffer.
                match inner.queue.front() {
                    Some(Frame::Raw(b)) => Pin::new(wire).poll_write(cx, b),
                    Some(Frame::Text(t)) => {
                        let mut header = [0u8; 10];
                        let n = text_header(t.len(), &mut header);
                        let parts = [
                            io::IoSlice::new(&header[..n]),
                            io::IoSlice::new(t.as_bytes()),
                        ];
                        Pin::new(wire).poll_write_vectored(cx, &parts)
                    }
                    None => return Poll::Ready(Ok(())),
                }
            };
            match written {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    inner.broken = true;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => inner.consume(n),
                Poll::Ready(Err(e)) => {
                    inner.broken = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// The next frame's payload, taken off the queue (the queue's own tests read it this way).
    #[cfg(test)]
    pub fn pop(&self) -> Option<Utf8Bytes> {
        let mut inner = self.lock();
        let frame = inner.queue.pop_front()?;
        inner.bytes -= frame.len();
        inner.extra = inner.extra.min(inner.queue.len());
        inner.extra_bytes = inner.extra_bytes.min(inner.bytes);
        match frame {
            Frame::Text(t) => Some(t),
            Frame::Raw(b) => Some(Utf8Bytes::try_from(b).unwrap_or_else(|_| "<raw>".into())),
        }
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Whether a push found it full (the client is then closed as too slow).
    pub fn overflowed(&self) -> bool {
        self.lock().state == State::Overflowed
    }

    /// Refuses further pushes and drops what is queued (but the rest of a frame the socket
    /// took part of, so that the close frame after it starts on a frame boundary).
    pub fn close(&self) {
        let mut inner = self.lock();
        if inner.state == State::Open {
            inner.state = State::Closed;
        }
        inner.drop_queue();
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
