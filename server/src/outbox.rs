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

use std::cell::RefCell;
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

/// Frames up to this size (header included) are framed into the thread's scratch buffer and
/// written with one `send`; larger ones as header and payload (`writev`). A queue is written up
/// to this much per system call.
const BATCH_BYTES: usize = 16 * 1024;

thread_local! {
    /// Where frames are framed before a write: one buffer per thread, reused, so a delivery
    /// allocates and zeroes nothing.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(BATCH_BYTES));
}

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

    /// The frame on the wire: its header (framed in `header`; none for raw bytes) and body.
    fn parts<'a>(&'a self, header: &'a mut [u8; 10]) -> (&'a [u8], &'a [u8]) {
        match self {
            Frame::Raw(b) => (&[], b),
            Frame::Text(t) => {
                let n = text_header(t.len(), header);
                (&header[..n], t.as_bytes())
            }
        }
    }

    /// Appends the frame's bytes to `out`; false (and nothing appended) if `out` would grow
    /// past [`BATCH_BYTES`].
    fn encode_into(&self, out: &mut Vec<u8>) -> bool {
        let mut header = [0u8; 10];
        let (head, body) = self.parts(&mut header);
        if out.len() + head.len() + body.len() > BATCH_BYTES {
            return false;
        }
        out.extend_from_slice(head);
        out.extend_from_slice(body);
        true
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
        let mut header = [0u8; 10];
        let (head, body) = frame.parts(&mut header);
        // The kernel's own non-blocking `send`, not tokio's `try_write`: that first reads the
        // registration's readiness, a separate allocation per connection that is cold when a
        // publish walks 200 connections (a cache miss per delivery, 4% of the server's CPU in
        // the fan-out profile). The socket is non-blocking, so a full one answers `EAGAIN`
        // here; tokio learns it on the connection task's next write, which waits for room.
        let socket = socket2::SockRef::from(wire.as_ref());
        let written = SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            buf.clear();
            if frame.encode_into(&mut buf) {
                socket.send(&buf)
            } else {
                // Larger than the scratch buffer: header and payload as they are.
                socket.send_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])
            }
        });
        match written {
            Ok(w) if w == head.len() + body.len() => None,
            Ok(w) => {
                self.head_started = w > 0;
                Some(Frame::Raw(rest_of(head, body, w)))
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
                Frame::Text(_) => {
                    let mut header = [0u8; 10];
                    let (head, body) = front.parts(&mut header);
                    rest_of(head, body, n)
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
    let mut header = [0u8; 10];
    let (head, body) = frame.parts(&mut header);
    head.len() + body.len()
}

/// What is left of header + payload after `written` bytes went out.
fn rest_of(header: &[u8], payload: &[u8], written: usize) -> Bytes {
    let mut rest = Vec::with_capacity(header.len() + payload.len() - written);
    if written < header.len() {
        rest.extend_from_slice(&header[written..]);
        rest.extend_from_slice(payload);
    } else {
        rest.extend_from_slice(&payload[written - header.len()..]);
    }
    rest.into()
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
            let inner = &mut *inner;
            let Some(wire) = inner.wire.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let batched = SCRATCH.with(|scratch| {
                let mut buf = scratch.borrow_mut();
                buf.clear();
                for frame in &inner.queue {
                    if !frame.encode_into(&mut buf) {
                        break;
                    }
                }
                (!buf.is_empty()).then(|| Pin::new(&mut *wire).poll_write(cx, &buf))
            });
            let written = match batched {
                Some(w) => w,
                // The first frame alone is larger than the buffer.
                None => match inner.queue.front() {
                    Some(Frame::Raw(b)) => Pin::new(wire).poll_write(cx, b),
                    Some(text) => {
                        let mut header = [0u8; 10];
                        let (head, body) = text.parts(&mut header);
                        let parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
                        Pin::new(wire).poll_write_vectored(cx, &parts)
                    }
                    None => return Poll::Ready(Ok(())),
                },
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

/// The writing itself, through a real loopback socket whose reader stops and resumes.
#[cfg(test)]
mod socket_tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// An outbox attached to one end of a loopback connection; the other end is returned.
    async fn attached(capacity: usize, max_bytes: usize) -> (Arc<Outbox>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let outbox = Arc::new(Outbox::new(capacity, max_bytes));
        outbox.attach(server.into_split().1);
        (outbox, client)
    }

    /// Splits what the client read into frames: (opcode, payload). Panics on a torn frame.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let opcode = bytes[0] & 0x0f;
            assert_eq!(bytes[0] & 0x80, 0x80, "every frame is final");
            let (len, head) = match bytes[1] {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().expect("8")) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            assert!(bytes.len() >= head + len, "a frame was cut short");
            out.push((opcode, bytes[head..head + len].to_vec()));
            bytes = &bytes[head + len..];
        }
        out
    }

    /// What the connection's task does: writes the queue whenever the socket has room.
    fn flusher(outbox: &Arc<Outbox>) -> tokio::task::JoinHandle<()> {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            while std::future::poll_fn(|cx| outbox.poll_flush(cx))
                .await
                .is_ok()
            {
                outbox.ready().await;
            }
        })
    }

    /// Reads until `total` bytes came.
    async fn read_all(client: &mut TcpStream, total: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < total {
            let n = client.read(&mut buf).await.expect("read");
            assert!(n > 0, "the socket closed early");
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    fn wire_len(body: usize) -> usize {
        body + match body {
            0..126 => 2,
            126..65536 => 4,
            _ => 10,
        }
    }

    #[tokio::test]
    async fn frames_sent_at_once_or_queued_arrive_whole_and_in_order() {
        let (outbox, mut client) = attached(100_000, 1 << 30).await;
        // Frames of mixed sizes (short, 16-bit and 64-bit lengths, over the scratch buffer)
        // until the socket refuses: the first ones are sent at once, the rest queue.
        let sizes = [5usize, 300, 70_000, 20_000, 1];
        let mut sent = Vec::new();
        let mut i = 0;
        while outbox.is_empty() || sent.len() < 2_000 {
            let body = format!("{i:08}").repeat(sizes[i % sizes.len()] / 8 + 1);
            outbox.push(Utf8Bytes::from(body.clone())).expect("room");
            sent.push(body);
            i += 1;
        }
        assert!(!outbox.is_empty(), "the socket stopped taking frames");
        let total = sent.iter().map(|b| wire_len(b.len())).sum();
        let flushing = flusher(&outbox);
        let got = frames(&read_all(&mut client, total).await);
        flushing.abort();
        let texts: Vec<String> = got
            .into_iter()
            .map(|(op, b)| {
                assert_eq!(op, 1, "text frames");
                String::from_utf8(b).expect("utf-8")
            })
            .collect();
        assert_eq!(texts, sent);
    }

    #[tokio::test]
    async fn an_overflow_keeps_the_frame_already_started_and_the_close_follows_it() {
        let (outbox, mut client) = attached(50, 1 << 30).await;
        let body = "x".repeat(60_000);
        while outbox.push(Utf8Bytes::from(body.clone())).is_ok() {}
        assert!(outbox.overflowed());
        assert_eq!(outbox.push("late".into()), Err(PushError::Closed));
        // The close frame tungstenite would write (1008).
        outbox
            .push_raw(Bytes::from_static(&[0x88, 0x02, 0x03, 0xf0]))
            .expect("raw frames are taken after an overflow");
        let flushing = flusher(&outbox);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while !got.ends_with(&[0x88, 0x02, 0x03, 0xf0]) {
            let n = client.read(&mut buf).await.expect("read");
            assert!(n > 0, "the socket closed early");
            got.extend_from_slice(&buf[..n]);
        }
        flushing.abort();
        let frames = frames(&got);
        let (last, data) = frames.split_last().expect("frames");
        assert_eq!(last, &(8, vec![0x03, 0xf0]), "the close frame comes last");
        assert!(!data.is_empty());
        assert!(data.iter().all(|(op, b)| *op == 1 && b.len() == body.len()));
    }
}
