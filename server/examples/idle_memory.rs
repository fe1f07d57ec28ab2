//! Rough measurement of server memory per idle WebSocket connection.
//!
//! Opens COUNT connections to a running ws-server (each reads its welcome and then stays idle),
//! and reports the growth of the server's resident memory (VmRSS from /proc/PID/status) divided
//! by COUNT. Loopback only.
//!
//!   cargo run --release -p server --example idle_memory -- ws://127.0.0.1:8080/ws PID 5000

use std::time::Duration;

use futures_util::StreamExt;

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, pid, count] = args.as_slice() else {
        anyhow::bail!("usage: idle_memory WS_URL SERVER_PID COUNT");
    };
    if !url.starts_with("ws://127.") {
        anyhow::bail!("loopback only: the URL must start with ws://127.");
    }
    let count: usize = count.parse()?;
    let before = rss_kib(pid);
    let mut clients = Vec::with_capacity(count);
    for chunk in 0..count.div_ceil(100) {
        let n = 100.min(count - chunk * 100);
        let batch = futures_util::future::try_join_all((0..n).map(|_| async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
            ws.next().await; // welcome
            anyhow::Ok(ws)
        }))
        .await?;
        clients.extend(batch);
    }
    // Let the server settle (allocator, timers) before reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before) as f64) * 1024.0 / count as f64;
    println!("connections: {count}");
    println!("server VmRSS before: {before} KiB, with connections idle: {after} KiB");
    println!("growth per idle connection: {per:.0} bytes");
    drop(clients);
    Ok(())
}
