//! What every scenario shares: the server's address and PID, meters on the server process, the
//! generator's own CPU, and opening many connections at once with progress on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::net::{self, Sources, Ws};
use crate::procfs::{self, ClockTicks, CpuMeter, CpuUse, StealMeter};
use crate::target::Target;
use crate::wire;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The server, HOST:PORT on loopback (127.0.0.0/8 or ::1 only)
    #[arg(long, default_value = "127.0.0.1:8080", env = "LOADGEN_SERVER")]
    pub server: Target,
    /// PID of the server process: its memory and CPU are read from /proc/PID. Several,
    /// comma-separated (every task behind a balancer): memory and CPU are summed over them
    #[arg(long, env = "LOADGEN_SERVER_PID", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
}

/// The server under load and how to measure it.
pub struct Server {
    pub target: Target,
    pub pids: Vec<u32>,
    pub clock: ClockTicks,
}

impl Server {
    pub fn new(args: &ServerArgs) -> Result<Self> {
        for &pid in &args.server_pid {
            // Fail now, not after minutes of load, if a PID is wrong.
            procfs::rss_bytes(pid)?;
        }
        Ok(Server {
            target: args.server,
            pids: args.server_pid.clone(),
            clock: ClockTicks::detect(),
        })
    }

    pub fn rss(&self) -> Result<Option<u64>> {
        if self.pids.is_empty() {
            return Ok(None);
        }
        let each: Result<Vec<u64>> = self.pids.iter().map(|&p| procfs::rss_bytes(p)).collect();
        Ok(Some(each?.into_iter().sum()))
    }

    /// Meters on the server (if its PID is known) and on this process.
    pub fn meters(&self) -> Result<Meters> {
        Ok(Meters {
            server: (!self.pids.is_empty())
                .then(|| CpuMeter::start(&self.pids, self.clock))
                .transpose()?,
            loadgen: CpuMeter::start(&[std::process::id()], self.clock)?,
            steal: StealMeter::start(),
        })
    }
}

pub struct Meters {
    server: Option<CpuMeter>,
    loadgen: CpuMeter,
    steal: StealMeter,
}

pub struct CpuReport {
    pub server: Option<CpuUse>,
    pub loadgen: CpuUse,
    /// Percent of the machine's CPU time the hypervisor took (none outside a VM's /proc/stat).
    pub steal: Option<f64>,
}

impl Meters {
    pub fn stop(&self) -> Result<CpuReport> {
        Ok(CpuReport {
            server: self.server.as_ref().map(CpuMeter::stop).transpose()?,
            loadgen: self.loadgen.stop()?,
            steal: self.steal.stop(),
        })
    }
}

impl CpuReport {
    /// The CPU figures for the JSON result, with the cost per 1,000 `units`.
    pub fn to_json(&self, units: u64) -> serde_json::Value {
        let server = self.server.as_ref();
        serde_json::json!({
            "server_cpu_ms": server.map(|s| procfs::round(s.cpu_ms, 1)),
            "server_system_cpu_ms": server.map(|s| procfs::round(s.system_ms, 1)),
            "server_cpu_ms_per_1000": server.and_then(|s| s.ms_per_1000(units)).map(|v| procfs::round(v, 3)),
            "server_cores": server.map(|s| procfs::round(s.cores(), 3)),
            "loadgen_cores": procfs::round(self.loadgen.cores(), 3),
            "steal_percent": self.steal.map(|p| procfs::round(p, 1)),
            "clk_tck": self.loadgen.clock.per_sec,
            "clk_tck_assumed": self.loadgen.clock.assumed,
        })
    }

    /// One line for the summary, e.g. "server CPU 0.41 core, 1.92 ms per 1,000 deliveries".
    pub fn describe(&self, units: u64, what: &str) -> String {
        let mut own = format!("loadgen {:.2} core", self.loadgen.cores());
        if let Some(p) = self.steal.filter(|&p| p >= 0.5) {
            own.push_str(&format!("; the host took {p:.0}% of the CPU time (steal)"));
        }
        match self.server.as_ref() {
            Some(s) => match s.ms_per_1000(units) {
                Some(per) => format!(
                    "server CPU {:.2} core ({:.0}% in the kernel), {per:.2} ms per 1,000 {what}; {own}",
                    s.cores(),
                    s.kernel_share() * 100.0
                ),
                None => format!(
                    "server CPU {:.2} core ({:.0}% in the kernel); {own}",
                    s.cores(),
                    s.kernel_share() * 100.0
                ),
            },
            None => format!("server CPU not measured (no --server-pid); {own}"),
        }
    }
}

/// Refuse to start a run that would run out of file descriptors half way.
pub fn ensure_fds(connections: u64) -> Result<()> {
    let needed = connections + 64;
    match procfs::open_files_limit() {
        Some(limit) if limit < needed => bail!(
            "{connections} connections need about {needed} open files but the limit is {limit}: \
             raise it with `ulimit -n {needed}` (at most the hard limit, `ulimit -Hn`)"
        ),
        _ => Ok(()),
    }
}

/// How a new connection joins its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// `/ws?project_id=X`: subscribed on connect.
    Query,
    /// `/ws`, then `{"action":"subscribe"}`, waiting for `subscribed`.
    Action,
    /// `/ws` and no subscription.
    None,
}

pub struct OpenPlan {
    pub connections: u64,
    pub projects: u64,
    pub join: Join,
    pub concurrency: u64,
    pub per_source: u64,
    /// Attempts not started by then are skipped.
    pub deadline: Instant,
}

/// The connections that opened, each with its index (connection i is in project i % projects).
pub struct Opened {
    pub conns: Vec<(u64, Ws)>,
    pub failed: u64,
    pub skipped: u64,
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

impl Opened {
    pub fn per_second(&self) -> f64 {
        self.conns.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

async fn open_one(
    target: &Target,
    i: u64,
    plan_projects: u64,
    join: Join,
    source: Option<std::net::IpAddr>,
) -> Result<Ws> {
    let project = wire::project_name(i % plan_projects.max(1));
    match join {
        Join::Query => {
            let mut ws = net::connect(target, &format!("/ws?project_id={project}"), source).await?;
            net::expect(&mut ws, "welcome").await?;
            Ok(ws)
        }
        Join::Action => net::connect_subscribed(target, Some(&project), source).await,
        Join::None => net::connect_subscribed(target, None, source).await,
    }
}

/// Open `plan.connections` connections, `plan.concurrency` at a time, over several tasks.
pub async fn open_many(target: Target, plan: &OpenPlan, label: &str) -> Opened {
    let started = Instant::now();
    let sources = Arc::new(Sources::new(plan.per_source as usize));
    let permits = Arc::new(Semaphore::new(plan.concurrency.max(1) as usize));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let progress = {
        let (done, failed, n, label) = (
            done.clone(),
            failed.clone(),
            plan.connections,
            label.to_string(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                eprintln!(
                    "{label}: {} of {n} open, {} failed",
                    done.load(Relaxed),
                    failed.load(Relaxed)
                );
            }
        })
    };
    let mut tasks = JoinSet::new();
    let mut skipped = 0;
    for i in 0..plan.connections {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        if Instant::now() >= plan.deadline {
            skipped = plan.connections - i;
            break;
        }
        let (sources, done, failed, errors) = (
            sources.clone(),
            done.clone(),
            failed.clone(),
            errors.clone(),
        );
        let (projects, join) = (plan.projects, plan.join);
        tasks.spawn(async move {
            let result = open_one(&target, i, projects, join, sources.next_for(&target)).await;
            drop(permit);
            match result {
                Ok(ws) => {
                    done.fetch_add(1, Relaxed);
                    Some((i, ws))
                }
                Err(e) => {
                    failed.fetch_add(1, Relaxed);
                    let mut errors = errors.lock().await;
                    let text = format!("{e:#}");
                    if errors.len() < 5 && !errors.contains(&text) {
                        errors.push(text);
                    }
                    None
                }
            }
        });
    }
    let mut conns = Vec::with_capacity(plan.connections as usize);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Some(c)) = joined {
            conns.push(c);
        }
    }
    progress.abort();
    let elapsed = started.elapsed();
    conns.sort_unstable_by_key(|(i, _)| *i);
    let errors = errors.lock().await.clone();
    let opened = Opened {
        failed: failed.load(Relaxed),
        skipped,
        errors,
        elapsed,
        conns,
    };
    eprintln!(
        "{label}: {} open in {:.2} s ({:.0}/s), {} failed, {} skipped",
        opened.conns.len(),
        elapsed.as_secs_f64(),
        opened.per_second(),
        opened.failed,
        opened.skipped
    );
    for e in &opened.errors {
        eprintln!("{label}: error: {e}");
    }
    opened
}

/// Fail the run when not a single connection opened: nothing else can be measured.
pub fn require_some(opened: &Opened, target: &Target) -> Result<()> {
    if opened.conns.is_empty() {
        let why = opened
            .errors
            .first()
            .map(String::as_str)
            .unwrap_or("no attempt made");
        bail!("could not open any connection to {target}: {why}");
    }
    Ok(())
}

/// What a closed-loop run (each client sends, waits for the reply, sends again) came to.
pub struct ClosedLoop {
    pub connected: u64,
    pub stopped: u64,
    pub first_failure: Option<String>,
    pub window_s: f64,
    pub cpu: CpuReport,
}

/// Open `clients` plain connections, then run `client(index, connection, until)` on each for
/// `duration` while the meters run. A client returns the reason it stopped early, if it did.
pub async fn closed_loop<F, Fut>(
    server: &Server,
    clients: u64,
    duration: Duration,
    label: &str,
    client: F,
) -> Result<ClosedLoop>
where
    F: Fn(u64, Ws, Instant) -> Fut,
    Fut: std::future::Future<Output = Option<String>> + Send + 'static,
{
    ensure_fds(clients)?;
    let plan = OpenPlan {
        connections: clients,
        projects: 1,
        join: Join::None,
        concurrency: 256,
        per_source: 10_000,
        deadline: Instant::now() + Duration::from_secs(60),
    };
    let opened = open_many(server.target, &plan, label).await;
    require_some(&opened, &server.target)?;
    let connected = opened.conns.len() as u64;
    let meters = server.meters()?;
    let start = Instant::now();
    let until = start + duration;
    let tasks: Vec<_> = opened
        .conns
        .into_iter()
        .map(|(i, ws)| tokio::spawn(client(i, ws, until)))
        .collect();
    let mut stopped = 0;
    let mut first_failure = None;
    for t in tasks {
        if let Ok(Some(e)) = t.await {
            stopped += 1;
            first_failure.get_or_insert(e);
        }
    }
    let window_s = start.elapsed().as_secs_f64();
    Ok(ClosedLoop {
        connected,
        stopped,
        first_failure,
        window_s,
        cpu: meters.stop()?,
    })
}

/// What a scenario found: one JSON line for scripts, a summary for people.
pub struct Report {
    pub result: serde_json::Value,
    pub summary: String,
}

impl Report {
    /// Print the result: the JSON line on stdout, the summary on stderr.
    pub fn emit(&self) {
        eprintln!("{}", self.summary);
        println!("{}", self.result);
    }
}
