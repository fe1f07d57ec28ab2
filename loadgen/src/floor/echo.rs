//! The round-trip floor: what the kernel charges a busy server for one request and its reply.
//! One thread answers `clients` loopback connections through epoll (mio, edge-triggered): per
//! request one `recv` and one `send`, with `epoll_wait` shared by whatever became readable
//! together. Its clients run on another thread, each sending its next request when the reply
//! came (a closed loop, like the `ping` scenario), so the server's thread stays busy instead of
//! sleeping in a blocking `recv` for every round trip.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

use anyhow::{Context, Result, bail};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{accept, per_op, thread_ticks};
use crate::procfs::ClockTicks;

/// A request, as long as `{"action":"ping"}`.
const REQUEST: &[u8] = br#"{"action":"ping"}"#;
/// A reply, about as long as the server's `pong` frame.
const REPLY: [u8; 40] = [b'p'; 40];

/// CPU of the answering thread (total, system) per 1,000 of `trips` round trips.
pub fn round_trips(trips: u64, clients: usize, clock: ClockTicks) -> Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("listening on loopback")?;
    let addr = listener.local_addr()?;
    let client = thread::spawn(move || run_clients(addr, clients, trips));
    let conns = accept(&listener, clients)?;
    let mut poll = Poll::new().context("creating an epoll instance")?;
    let mut socks = Vec::with_capacity(clients);
    for (i, s) in conns.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut s = TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        socks.push(Some(s));
    }
    // Bytes of a request read so far, per connection (a read may end inside one).
    let mut partial = vec![0usize; clients];
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let (mut answered, mut open) = (0u64, clients);
    let mut cost = None;
    let before = thread_ticks()?;
    while open > 0 {
        poll.poll(&mut events, None).context("epoll_wait")?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(s) = socks[i].as_mut() else { continue };
            let got = read_records(s, &mut buf, &mut partial[i], REQUEST.len())
                .context("reading a request")?;
            for _ in 0..got.whole {
                s.write_all(&REPLY).context("answering")?;
                answered += 1;
                if answered == trips {
                    cost = Some(per_op(before, trips, clock)?);
                }
            }
            if got.closed {
                socks[i] = None;
                open -= 1;
            }
        }
    }
    client
        .join()
        .map_err(|_| anyhow::anyhow!("echo client thread panicked"))??;
    match cost {
        Some(c) => Ok(c),
        None => bail!("the echo clients stopped after {answered} of {trips} round trips"),
    }
}

/// `clients` connections, one request in flight on each, until `trips` replies came back;
/// then every connection closes.
fn run_clients(addr: SocketAddr, clients: usize, trips: u64) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut socks = Vec::with_capacity(clients);
    for i in 0..clients {
        let s = std::net::TcpStream::connect(addr).context("connecting an echo client")?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut s = TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        socks.push(s);
    }
    let mut sent = 0u64;
    for s in &mut socks {
        if sent < trips {
            s.write_all(REQUEST)?;
            sent += 1;
        }
    }
    let mut partial = vec![0usize; clients];
    let mut received = 0u64;
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while received < trips {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            let i = ev.token().0;
            let got = read_records(&mut socks[i], &mut buf, &mut partial[i], REPLY.len())?;
            for _ in 0..got.whole {
                received += 1;
                if sent < trips {
                    socks[i].write_all(REQUEST)?;
                    sent += 1;
                }
            }
            if got.closed && received < trips {
                bail!("the echo server closed a connection early");
            }
        }
    }
    Ok(())
}

/// What one readable event brought.
struct Records {
    /// Records of the given length completed by these reads.
    whole: usize,
    /// The peer closed the connection.
    closed: bool,
}

/// Reads what `s` has and counts the records of `len` bytes it completed (`partial` carries a
/// record's start over to the next event). A read that does not fill the buffer emptied the
/// socket (as tokio assumes): no second `recv` to hear EAGAIN.
fn read_records(
    s: &mut TcpStream,
    buf: &mut [u8],
    partial: &mut usize,
    len: usize,
) -> std::io::Result<Records> {
    let mut got = Records {
        whole: 0,
        closed: false,
    };
    loop {
        let n = match s.read(buf) {
            Ok(0) => {
                got.closed = true;
                return Ok(got);
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(got),
            Err(e) => return Err(e),
        };
        *partial += n;
        got.whole += *partial / len;
        *partial %= len;
        if n < buf.len() {
            return Ok(got);
        }
    }
}
