//! `fanout`: N subscribers over K projects, a publisher posting to `POST /publish` at a fixed
//! rate with its send time in each payload. Reports loss (expected versus delivered), deliveries
//! per second, latency percentiles and the server's CPU per 1,000 deliveries.
//!
//! `--saturate` runs steps of rising rate over the same subscribers until a step loses a message,
//! its p99 passes the limit, or the publisher cannot keep the rate, and reports the highest rate
//! that held. Each payload names its step, so a late message is never counted in the next one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::value_parser;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, CpuReport, Join, OpenPlan, Report, Server, ServerArgs};
use crate::histogram::{Histogram, Percentiles};
use crate::net::Ws;
use crate::pacing::Pacer;
use crate::procfs::{CpuMeter, CpuUse, round};
use crate::wire;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Subscribers (one connection each)
    #[arg(short = 'n', long, default_value_t = 2000, value_parser = value_parser!(u64).range(1..=20_000))]
    subscribers: u64,
    /// Projects the subscribers are spread over; publishes go round-robin over them
    #[arg(short = 'k', long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=10_000))]
    projects: u64,
    /// Publishes per second (the first step's rate with --saturate)
    #[arg(short = 'r', long, default_value_t = 200, value_parser = value_parser!(u64).range(1..=100_000))]
    rate: u64,
    /// Seconds of publishing
    #[arg(short = 'd', long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Size in bytes of each payload's `data` object
    #[arg(long, default_value_t = 256, value_parser = value_parser!(u64).range(64..=65_536))]
    payload_bytes: u64,
    /// The server's PUBLISH_TOKEN
    #[arg(long, env = "PUBLISH_TOKEN", hide_env_values = true)]
    token: String,
    /// Publish requests in flight at once; past that the publisher falls behind its rate
    #[arg(long, default_value_t = 64, value_parser = value_parser!(u64).range(1..=1024))]
    max_in_flight: u64,
    /// Raise the rate step by step until loss appears or p99 passes --p99-limit-ms
    #[arg(long)]
    saturate: bool,
    /// Seconds per saturation step
    #[arg(long, default_value_t = 3, value_parser = value_parser!(u64).range(1..=30))]
    step_duration: u64,
    /// Rate multiplier from one saturation step to the next
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// At most this many saturation steps
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=MAX_STEPS as u64))]
    max_steps: u64,
    /// A saturation step holds while its p99 latency stays at or under this
    #[arg(long, default_value_t = 50.0)]
    p99_limit_ms: f64,
    /// Connection attempts in flight at once while subscribing
    #[arg(long, default_value_t = 256, value_parser = value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// PID of the broker (redis-server): its CPU per 1,000 publishes is reported too
    #[arg(long)]
    broker_pid: Option<u32>,
}

const MAX_STEPS: usize = 16;
/// How long to wait after the last publish for deliveries still on their way.
const DRAIN: Duration = Duration::from_secs(2);

/// What the subscribers saw in one step.
#[derive(Default)]
struct StepSeen {
    latency: Histogram,
    delivered: AtomicU64,
    /// Microseconds since the epoch of the last delivery.
    last_us: AtomicU64,
}

struct Shared {
    epoch: Instant,
    steps: Vec<StepSeen>,
    closed: AtomicU64,
    close_reason: Mutex<Option<String>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// The `/publish` body: `data` is exactly `payload_bytes` long, padded with `x`.
fn publish_body(project: &str, step: usize, seq: u64, ts_us: u64, payload_bytes: usize) -> String {
    let mut data = format!(r#"{{"lg_ts":{ts_us},"lg_step":{step},"lg_seq":{seq},"pad":""#);
    let pad = payload_bytes.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    format!(r#"{{"project_id":"{project}","data":{data}}}"#)
}

/// Read one subscriber's messages until the connection ends or the task is aborted.
async fn subscriber(mut ws: Ws, shared: Arc<Shared>) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                let Some(ts) = wire::u64_field(&text, "lg_ts") else {
                    continue;
                };
                let now = shared.now_us();
                let step = wire::u64_field(&text, "lg_step").unwrap_or(0) as usize;
                if let Some(seen) = shared.steps.get(step) {
                    seen.latency.record(now.saturating_sub(ts));
                    seen.delivered.fetch_add(1, Relaxed);
                    seen.last_us.fetch_max(now, Relaxed);
                }
            }
            Ok(Message::Close(frame)) => {
                let mut reason = shared.close_reason.lock().await;
                reason.get_or_insert_with(|| format!("server closed a subscriber: {frame:?}"));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                let mut reason = shared.close_reason.lock().await;
                reason.get_or_insert_with(|| format!("subscriber connection failed: {e}"));
                break;
            }
        }
    }
    shared.closed.fetch_add(1, Relaxed);
}

struct Publisher {
    client: reqwest::Client,
    url: String,
    token: String,
    projects: Vec<String>,
    /// Live subscribers per project, by index.
    subscribers: Vec<u64>,
    payload_bytes: usize,
    /// The broker's PID, metered like the server's.
    broker_pid: Option<u32>,
    in_flight: Arc<Semaphore>,
    max_in_flight: u32,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct PublishCounts {
    ok: AtomicU64,
    failed: AtomicU64,
    expected: AtomicU64,
    server_delivered: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct StepResult {
    rate: u64,
    seconds: u64,
    sent: u64,
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    publish_s: f64,
    expected: u64,
    delivered: u64,
    server_delivered: u64,
    closed: u64,
    latency: Percentiles,
    deliveries_per_s: f64,
    cpu: CpuReport,
    broker: Option<CpuUse>,
}

impl StepResult {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }

    fn achieved_rate(&self) -> f64 {
        self.sent as f64 / self.publish_s.max(1e-9)
    }

    /// Why this step did not hold, if it did not.
    fn failure(&self, p99_limit_ms: f64) -> Option<String> {
        if self.failed > 0 {
            return Some(format!("{} publishes failed", self.failed));
        }
        if self.lost() > 0 {
            return Some(format!(
                "{} of {} deliveries lost",
                self.lost(),
                self.expected
            ));
        }
        if self.closed > 0 {
            return Some(format!("{} subscribers were closed", self.closed));
        }
        if crate::histogram::ms(self.latency.p99) > p99_limit_ms {
            return Some(format!(
                "p99 {:.2} ms over {p99_limit_ms} ms",
                crate::histogram::ms(self.latency.p99)
            ));
        }
        if self.achieved_rate() < 0.95 * self.rate as f64 {
            return Some(format!(
                "publisher reached only {:.0} of {} publishes/s (loadgen at {:.2} core)",
                self.achieved_rate(),
                self.rate,
                self.cpu.loadgen.cores()
            ));
        }
        None
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "rate": self.rate,
            "duration_s": self.seconds,
            "published": self.sent,
            "publish_ok": self.ok,
            "publish_failed": self.failed,
            "publish_error": self.first_error,
            "achieved_rate": round(self.achieved_rate(), 1),
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost(),
            "server_reported_delivered": self.server_delivered,
            "subscribers_closed": self.closed,
            "deliveries_per_s": round(self.deliveries_per_s, 1),
            "latency_ms": self.latency.to_json_ms(),
            "cpu": self.cpu.to_json(self.delivered),
            "broker_cpu_ms": self.broker.map(|b| round(b.cpu_ms, 1)),
            "broker_cpu_ms_per_1000_publishes": self.broker.and_then(|b| b.ms_per_1000(self.ok)).map(|v| round(v, 3)),
        })
    }

    fn describe(&self) -> String {
        let broker = match self.broker.and_then(|b| b.ms_per_1000(self.ok)) {
            Some(per) => format!("\nfanout:   broker CPU {per:.2} ms per 1,000 publishes"),
            None => String::new(),
        };
        format!(
            "fanout: {} publishes/s for {} s: {} of {} delivered ({} lost), {:.0} deliveries/s\n\
             fanout:   latency {}\n\
             fanout:   {}{broker}",
            self.rate,
            self.seconds,
            self.delivered,
            self.expected,
            self.lost(),
            self.deliveries_per_s,
            self.latency.describe(),
            self.cpu.describe(self.delivered, "deliveries"),
        )
    }
}

impl Publisher {
    /// Publish at `rate` for `seconds`, wait for the deliveries, and measure the step.
    async fn step(
        &self,
        server: &Server,
        step: usize,
        rate: u64,
        seconds: u64,
    ) -> Result<StepResult> {
        let counts = Arc::new(PublishCounts::default());
        let closed_before = self.shared.closed.load(Relaxed);
        let meters = server.meters()?;
        let broker = self
            .broker_pid
            .map(|pid| CpuMeter::start(&[pid], server.clock))
            .transpose()?;
        let start = Instant::now();
        let start_us = self.shared.now_us();
        let pacer = Pacer::new(start, rate, Duration::from_secs(seconds));
        for k in 0..pacer.total() {
            tokio::time::sleep_until(pacer.due(k).into()).await;
            let permit = self
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .context("publisher stopped")?;
            let p = (k % self.projects.len() as u64) as usize;
            let body = publish_body(
                &self.projects[p],
                step,
                k,
                self.shared.now_us(),
                self.payload_bytes,
            );
            let request = self
                .client
                .post(&self.url)
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .body(body);
            let (counts, subscribers) = (counts.clone(), self.subscribers[p]);
            tokio::spawn(async move {
                let outcome = match request.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        Ok(resp.text().await.unwrap_or_default())
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        Err(format!(
                            "POST /publish answered {status}: {}",
                            resp.text().await.unwrap_or_default()
                        ))
                    }
                    Err(e) => Err(format!("POST /publish failed: {e}")),
                };
                match outcome {
                    Ok(text) => {
                        counts.ok.fetch_add(1, Relaxed);
                        counts.expected.fetch_add(subscribers, Relaxed);
                        counts
                            .server_delivered
                            .fetch_add(wire::u64_field(&text, "delivered").unwrap_or(0), Relaxed);
                    }
                    Err(e) => {
                        counts.failed.fetch_add(1, Relaxed);
                        counts.first_error.lock().await.get_or_insert(e);
                    }
                }
                drop(permit);
            });
        }
        // Every request has answered once all permits are back.
        drop(
            self.in_flight
                .acquire_many(self.max_in_flight)
                .await
                .context("publisher stopped")?,
        );
        let publish_s = start.elapsed().as_secs_f64();
        let seen = &self.shared.steps[step];
        let expected = counts.expected.load(Relaxed);
        let drain_until = Instant::now() + DRAIN;
        while seen.delivered.load(Relaxed) < expected && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cpu = meters.stop()?;
        let broker = broker.as_ref().map(CpuMeter::stop).transpose()?;
        let delivered = seen.delivered.load(Relaxed);
        let active_s = seen.last_us.load(Relaxed).saturating_sub(start_us) as f64 / 1e6;
        let first_error = counts.first_error.lock().await.clone();
        Ok(StepResult {
            rate,
            seconds,
            sent: pacer.total(),
            ok: counts.ok.load(Relaxed),
            failed: counts.failed.load(Relaxed),
            first_error,
            publish_s,
            expected,
            delivered,
            server_delivered: counts.server_delivered.load(Relaxed),
            closed: self.shared.closed.load(Relaxed) - closed_before,
            latency: seen.latency.percentiles(),
            deliveries_per_s: if active_s > 0.0 {
                delivered as f64 / active_s
            } else {
                0.0
            },
            cpu,
            broker,
        })
    }
}

pub async fn run(args: Args) -> Result<Report> {
    if args.token.is_empty() {
        bail!("no publish token: pass --token or set PUBLISH_TOKEN to the server's PUBLISH_TOKEN");
    }
    if !(args.factor > 1.0 && args.factor <= 4.0) {
        bail!("--factor {} must be over 1 and at most 4", args.factor);
    }
    common::ensure_fds(args.subscribers + args.max_in_flight)?;
    let server = Server::new(&args.server)?;
    let plan = OpenPlan {
        connections: args.subscribers,
        projects: args.projects,
        join: Join::Action,
        concurrency: args.concurrency,
        per_source: 10_000,
        deadline: Instant::now() + Duration::from_secs(120),
    };
    let opened = common::open_many(server.target, &plan, "fanout").await;
    common::require_some(&opened, &server.target)?;
    let mut subscribers = vec![0u64; args.projects as usize];
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        steps: (0..MAX_STEPS).map(|_| StepSeen::default()).collect(),
        closed: AtomicU64::new(0),
        close_reason: Mutex::new(None),
    });
    let mut tasks = Vec::with_capacity(opened.conns.len());
    for (i, ws) in opened.conns {
        subscribers[(i % args.projects) as usize] += 1;
        tasks.push(tokio::spawn(subscriber(ws, shared.clone())));
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.max_in_flight as usize)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let publisher = Publisher {
        client,
        url: server.target.http_url("/publish"),
        token: args.token.clone(),
        projects: (0..args.projects).map(wire::project_name).collect(),
        subscribers,
        payload_bytes: args.payload_bytes as usize,
        broker_pid: args.broker_pid,
        in_flight: Arc::new(Semaphore::new(args.max_in_flight as usize)),
        max_in_flight: args.max_in_flight as u32,
        shared: shared.clone(),
    };
    let live = tasks.len() as u64;
    let outcome = if args.saturate {
        saturate(&args, &server, &publisher, live).await
    } else {
        let step = publisher.step(&server, 0, args.rate, args.duration).await?;
        let mut result = step.to_json();
        let fields = json!({
            "scenario": "fanout", "subscribers": args.subscribers, "subscribed": live,
            "projects": args.projects, "payload_bytes": args.payload_bytes,
        });
        merge(&mut result, fields);
        Ok((result, step.describe()))
    };
    let close_reason = shared.close_reason.lock().await.clone();
    for t in tasks {
        t.abort();
    }
    let (mut result, mut summary) = outcome?;
    if let Some(reason) = close_reason {
        summary.push_str(&format!("\nfanout: {reason}"));
        merge(&mut result, json!({ "close_reason": reason }));
    }
    Ok(Report { result, summary })
}

async fn saturate(
    args: &Args,
    server: &Server,
    publisher: &Publisher,
    live: u64,
) -> Result<(serde_json::Value, String)> {
    let mut steps = Vec::new();
    let mut summary = Vec::new();
    let mut best: Option<(u64, f64)> = None;
    let mut stop_reason = format!("reached --max-steps {}", args.max_steps);
    let mut rate = args.rate as f64;
    for step in 0..args.max_steps as usize {
        let r = rate.round() as u64;
        let result = publisher.step(server, step, r, args.step_duration).await?;
        summary.push(result.describe());
        steps.push(result.to_json());
        match result.failure(args.p99_limit_ms) {
            Some(why) => {
                stop_reason = format!("{r} publishes/s did not hold: {why}");
                break;
            }
            None => best = Some((r, result.deliveries_per_s)),
        }
        rate *= args.factor;
        if rate > 100_000.0 {
            stop_reason = "reached 100,000 publishes/s".to_string();
            break;
        }
    }
    let result = json!({
        "scenario": "fanout-saturate", "subscribers": args.subscribers, "subscribed": live,
        "projects": args.projects, "payload_bytes": args.payload_bytes,
        "p99_limit_ms": args.p99_limit_ms,
        "highest_ok_rate": best.map(|b| b.0),
        "highest_ok_deliveries_per_s": best.map(|b| round(b.1, 1)),
        "stop_reason": stop_reason,
        "steps": steps,
    });
    summary.push(match best {
        Some((r, d)) => format!("fanout: saturation: highest rate that held {r} publishes/s ({d:.0} deliveries/s); stopped: {stop_reason}"),
        None => format!("fanout: saturation: not even the first rate held; stopped: {stop_reason}"),
    });
    Ok((result, summary.join("\n")))
}

/// Add `extra`'s fields to the object `into`.
fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_the_requested_size_and_reads_back() {
        for size in [64usize, 256, 1000] {
            let body = publish_body("lg-p3", 2, 12345, 987_654_321, size);
            let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
            assert_eq!(v["project_id"], "lg-p3");
            assert_eq!(v["data"].to_string().len(), size, "{body}");
            // As the server would relay it to a subscriber:
            let update =
                json!({"type": "update", "project_id": "lg-p3", "data": v["data"]}).to_string();
            assert_eq!(wire::u64_field(&update, "lg_ts"), Some(987_654_321));
            assert_eq!(wire::u64_field(&update, "lg_step"), Some(2));
        }
    }

    fn step(expected: u64, delivered: u64, p99_us: u64, sent: u64) -> StepResult {
        let clock = crate::procfs::ClockTicks {
            per_sec: 100,
            assumed: false,
        };
        let use_ = crate::procfs::CpuUse {
            cpu_ms: 100.0,
            system_ms: 50.0,
            wall_s: 1.0,
            clock,
        };
        StepResult {
            rate: 100,
            seconds: 1,
            sent,
            ok: sent,
            failed: 0,
            first_error: None,
            publish_s: 1.0,
            expected,
            delivered,
            server_delivered: delivered,
            closed: 0,
            latency: Percentiles {
                p50: 1000,
                p90: 2000,
                p99: p99_us,
                max: p99_us,
            },
            deliveries_per_s: delivered as f64,
            cpu: CpuReport {
                server: Some(use_),
                loadgen: use_,
                steal: Some(12.5),
            },
            broker: None,
        }
    }

    #[test]
    fn a_step_holds_only_without_loss_slowness_or_a_lagging_publisher() {
        assert_eq!(step(1000, 1000, 40_000, 100).failure(50.0), None);
        assert!(
            step(1000, 999, 1000, 100)
                .failure(50.0)
                .expect("loss")
                .contains("1 of 1000 deliveries lost")
        );
        assert!(
            step(1000, 1000, 50_001, 100)
                .failure(50.0)
                .expect("slow")
                .contains("p99 50.00 ms")
        );
        assert!(
            step(1000, 1000, 1000, 90)
                .failure(50.0)
                .expect("lag")
                .contains("publisher reached only 90")
        );
        let j = step(1000, 990, 1000, 100).to_json();
        assert_eq!(j["lost"], 10);
        assert_eq!(j["cpu"]["server_cpu_ms_per_1000"], 101.01);
        assert_eq!(j["cpu"]["steal_percent"], 12.5);
    }
}
