//! `floor`: what the kernel alone charges for the system calls a WebSocket server cannot avoid, on
//! this machine, with no WebSocket, no JSON and no async runtime: a plain thread that writes
//! one small message per `send` to many loopback connections (the cost of one delivery), and one
//! that answers each request with 1 `recv` and 1 `send` (the cost of one round trip). The CPU
//! of that thread alone is read from /proc/thread-self/stat. Loopback charges the sender for the
//! receiver's TCP processing too, so these floors are what ws-server's figures are to be
//! compared with.
//!
//! The delivery floor's reader spins, so those sends never wake anyone. A second figure sends
//! the same messages as the fan-out does, in bursts (one per connection of a group of `-n`,
//! then a pause, as a publish reaches one project's subscribers) over `--sleepers` connections
//! whose readers sleep in epoll between bursts, as loadgen's subscribers and real clients do:
//! on loopback the sender then also pays for their wake-ups, and for 2,000 sockets' state
//! instead of 200 in the caches. The round-trip floor is a busy echo server (`echo.rs`).

mod echo;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::value_parser;
use serde_json::json;

use crate::common::{self, Report};
use crate::procfs::{ClockTicks, round};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sends in each delivery test (and round trips in the echo test)
    #[arg(short = 'm', long, default_value_t = 200_000, value_parser = value_parser!(u64).range(1000..=5_000_000))]
    messages: u64,
    /// Connections the delivery test spreads its sends over; also the size of one burst to
    /// the sleeping readers (one project's subscribers)
    #[arg(short = 'n', long, default_value_t = 200, value_parser = value_parser!(u64).range(1..=2000))]
    connections: u64,
    /// Connections of the sleeping readers, sent to a burst at a time (the fan-out's subscribers)
    #[arg(long, default_value_t = 2000, value_parser = value_parser!(u64).range(1..=20_000))]
    sleepers: u64,
    /// Clients of the echo test, each with one request in flight (the ping scenario's clients)
    #[arg(long, default_value_t = 500, value_parser = value_parser!(u64).range(1..=10_000))]
    echo_clients: u64,
    /// Bytes per delivered message (a 256-byte payload in an update frame is about 330)
    #[arg(long, default_value_t = 330, value_parser = value_parser!(u64).range(1..=65_536))]
    bytes: u64,
}

/// CPU ticks (user, system) of the calling thread.
fn thread_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")
        .context("reading /proc/thread-self/stat")?;
    let rest = &stat[stat
        .rfind(')')
        .context("unexpected /proc/thread-self/stat")?
        + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let mut next = || {
        f.next()
            .and_then(|v| v.parse::<u64>().ok())
            .context("unexpected /proc/thread-self/stat")
    };
    Ok((next()?, next()?))
}

/// Microseconds of this thread's CPU (total, system) per operation since `before`.
fn per_op(before: (u64, u64), ops: u64, clock: ClockTicks) -> Result<(f64, f64)> {
    let after = thread_ticks()?;
    let us = 1e6 / clock.per_sec as f64 / ops as f64;
    Ok((
        ((after.0 + after.1) - (before.0 + before.1)) as f64 * us,
        (after.1 - before.1) as f64 * us,
    ))
}

/// The sender's ends of `n` connections, with Nagle off (each message is sent at once).
fn accept(listener: &TcpListener, n: usize) -> Result<Vec<TcpStream>> {
    (0..n)
        .map(|_| {
            let (s, _) = listener.accept().context("accepting")?;
            s.set_nodelay(true)?;
            Ok(s)
        })
        .collect()
}

/// One `send` per message, round-robin over `n` connections whose reader drains them.
fn deliveries(args: &Args, clock: ClockTicks) -> Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("listening on loopback")?;
    let addr = listener.local_addr()?;
    let n = args.connections as usize;
    let reader = thread::spawn(move || -> Result<()> {
        let mut conns = (0..n)
            .map(|_| TcpStream::connect(addr))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut buf = vec![0u8; 64 * 1024];
        // Round-robin reads keep every receive buffer from filling.
        loop {
            let mut open = 0;
            for c in &mut conns {
                c.set_nonblocking(true)?;
                match c.read(&mut buf) {
                    Ok(0) => {}
                    Ok(_) => open += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            if open == 0 {
                return Ok(());
            }
        }
    });
    let mut conns = accept(&listener, n)?;
    let msg = vec![b'x'; args.bytes as usize];
    let before = thread_ticks()?;
    for k in 0..args.messages as usize {
        conns[k % n].write_all(&msg).context("sending")?;
    }
    let cost = per_op(before, args.messages, clock)?;
    drop(conns);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    Ok(cost)
}

/// The same sends as the fan-out makes them: bursts of one per connection of a group of `-n`,
/// the groups in turn, 5 ms apart (200 publishes/s), over `--sleepers` connections whose
/// readers sleep in epoll (a tokio task per connection on one thread) until data comes.
fn deliveries_to_sleepers(args: &Args, clock: ClockTicks) -> Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("listening on loopback")?;
    let addr = listener.local_addr()?;
    let n = args.sleepers as usize;
    let burst = (args.connections as usize).min(n);
    let reader = thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async move {
            let mut readers = tokio::task::JoinSet::new();
            for _ in 0..n {
                let mut c = tokio::net::TcpStream::connect(addr).await?;
                readers.spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0u8; 8192];
                    while c.read(&mut buf).await? > 0 {}
                    std::io::Result::Ok(())
                });
            }
            while let Some(done) = readers.join_next().await {
                done??;
            }
            Ok(())
        })
    });
    let mut conns = accept(&listener, n)?;
    let msg = vec![b'x'; args.bytes as usize];
    let before = thread_ticks()?;
    let bursts = (args.messages as usize).div_ceil(burst);
    let mut next = 0;
    for _ in 0..bursts {
        for _ in 0..burst {
            conns[next % n].write_all(&msg).context("sending")?;
            next += 1;
        }
        // Long enough for the readers to drain and go back to sleep.
        thread::sleep(std::time::Duration::from_millis(5));
    }
    let cost = per_op(before, next as u64, clock)?;
    drop(conns);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    Ok(cost)
}

pub async fn run(args: Args) -> Result<Report> {
    let clock = ClockTicks::detect();
    // Both ends of every connection of the largest test are in this process.
    let widest = args.connections.max(args.sleepers).max(args.echo_clients);
    common::ensure_fds(2 * widest)?;
    let started = Instant::now();
    let (sleepers, burst, echo_clients) = (
        args.sleepers,
        args.connections.min(args.sleepers),
        args.echo_clients,
    );
    let (d, r, w) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((
            deliveries(&args, clock)?,
            echo::round_trips(args.messages, args.echo_clients as usize, clock)?,
            deliveries_to_sleepers(&args, clock)?,
        ))
    })
    .await
    .context("floor threads")??;
    if d.0 <= 0.0 || r.0 <= 0.0 || w.0 <= 0.0 {
        bail!(
            "too few messages to measure CPU at {} ticks a second: raise --messages",
            clock.per_sec
        );
    }
    let result = json!({
        "scenario": "floor",
        "delivery_cpu_ms_per_1000": round(d.0, 3),
        "delivery_system_cpu_ms_per_1000": round(d.1, 3),
        "delivery_to_sleepers_cpu_ms_per_1000": round(w.0, 3),
        "delivery_to_sleepers_system_cpu_ms_per_1000": round(w.1, 3),
        "sleepers": sleepers,
        "burst": burst,
        "echo_cpu_ms_per_1000": round(r.0, 3),
        "echo_system_cpu_ms_per_1000": round(r.1, 3),
        "echo_clients": echo_clients,
        "clk_tck": clock.per_sec,
        "clk_tck_assumed": clock.assumed,
    });
    let summary = format!(
        "floor: one send of a small message to one of many loopback connections: {:.2} ms CPU per 1,000 ({:.0}% kernel)\n\
         floor: the same sends in bursts of {} to {} readers that sleep in epoll: {:.2} ms CPU per 1,000 ({:.0}% kernel)\n\
         floor: one recv + one send round trip, {} clients in epoll: {:.2} ms CPU per 1,000 ({:.0}% kernel)  [{:.1} s]",
        d.0,
        100.0 * d.1 / d.0,
        burst,
        sleepers,
        w.0,
        100.0 * w.1 / w.0,
        echo_clients,
        r.0,
        100.0 * r.1 / r.0,
        started.elapsed().as_secs_f64()
    );
    Ok(Report { result, summary })
}
