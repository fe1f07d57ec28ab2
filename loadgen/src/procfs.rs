//! What the server process costs, read from /proc: resident memory (VmRSS) and CPU time
//! (utime + stime, in clock ticks). Also the generator's own CPU, so a report shows whether the
//! generator or the server ran out of core first (they share the machine).

use std::time::Instant;

use anyhow::{Context, Result};

/// Resident memory of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is process {pid} running?)"))?;
    parse_vmrss(&text).with_context(|| format!("no VmRSS line in {path}"))
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// User and system CPU time of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is process {pid} running?)"))?;
    parse_stat_ticks(&text).with_context(|| format!("unexpected format of {path}"))
}

/// User and system CPU time summed over `pids`, in clock ticks.
fn cpu_ticks_sum(pids: &[u32]) -> Result<(u64, u64)> {
    pids.iter().try_fold((0, 0), |(u, s), &pid| {
        let (pu, ps) = cpu_ticks(pid)?;
        Ok((u + pu, s + ps))
    })
}

/// Fields 14 and 15 (utime, stime) of /proc/PID/stat. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after `)`
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Clock ticks per second from `getconf CLK_TCK`; 100 (Linux's usual value) when that fails, and
/// then the report says it was assumed.
#[derive(Debug, Clone, Copy)]
pub struct ClockTicks {
    pub per_sec: u64,
    pub assumed: bool,
}

impl ClockTicks {
    pub fn detect() -> Self {
        let asked = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&t| t > 0);
        match asked {
            Some(per_sec) => ClockTicks {
                per_sec,
                assumed: false,
            },
            None => ClockTicks {
                per_sec: 100,
                assumed: true,
            },
        }
    }
}

/// The soft limit on open files of this process, from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU used by one process, or summed over several (every task behind a balancer), over a
/// window of wall time.
pub struct CpuMeter {
    pids: Vec<u32>,
    ticks: (u64, u64),
    started: Instant,
    clock: ClockTicks,
}

#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// CPU time used in the window, in milliseconds.
    pub cpu_ms: f64,
    /// The part of it spent in the kernel (system calls, and on loopback much of the TCP path).
    pub system_ms: f64,
    /// The window's wall time, in seconds.
    pub wall_s: f64,
    pub clock: ClockTicks,
}

impl CpuUse {
    /// Share of one core over the window (1.0 = a full core).
    pub fn cores(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.cpu_ms / 1000.0 / self.wall_s
        } else {
            0.0
        }
    }

    /// The share of the CPU time spent in the kernel.
    pub fn kernel_share(&self) -> f64 {
        if self.cpu_ms > 0.0 {
            self.system_ms / self.cpu_ms
        } else {
            0.0
        }
    }

    /// CPU milliseconds per 1,000 units of work.
    pub fn ms_per_1000(&self, units: u64) -> Option<f64> {
        (units > 0).then(|| self.cpu_ms * 1000.0 / units as f64)
    }
}

impl CpuMeter {
    pub fn start(pids: &[u32], clock: ClockTicks) -> Result<Self> {
        Ok(CpuMeter {
            pids: pids.to_vec(),
            ticks: cpu_ticks_sum(pids)?,
            started: Instant::now(),
            clock,
        })
    }

    pub fn stop(&self) -> Result<CpuUse> {
        let (user, system) = cpu_ticks_sum(&self.pids)?;
        let user = user.saturating_sub(self.ticks.0);
        let system = system.saturating_sub(self.ticks.1);
        let tick_ms = 1000.0 / self.clock.per_sec as f64;
        Ok(CpuUse {
            cpu_ms: (user + system) as f64 * tick_ms,
            system_ms: system as f64 * tick_ms,
            wall_s: self.started.elapsed().as_secs_f64(),
            clock: self.clock,
        })
    }
}

/// The share of the machine's CPU time the hypervisor gave to others while this VM had work
/// ("steal", from the first line of /proc/stat) over a window. On a shared host it delays
/// every wake-up, so latency figures are to be read with it.
pub struct StealMeter {
    start: Option<(u64, u64)>,
}

impl StealMeter {
    pub fn start() -> Self {
        StealMeter {
            start: machine_ticks(),
        }
    }

    /// Percent of the window's CPU time stolen; `None` where /proc/stat has no such figure.
    pub fn stop(&self) -> Option<f64> {
        let (steal0, total0) = self.start?;
        let (steal1, total1) = machine_ticks()?;
        let total = total1.checked_sub(total0).filter(|&t| t > 0)?;
        Some(100.0 * steal1.saturating_sub(steal0) as f64 / total as f64)
    }
}

/// (steal, total) ticks of all CPUs.
fn machine_ticks() -> Option<(u64, u64)> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `cpu` line: user nice system idle iowait irq softirq steal [guest guest_nice]; guest
/// time is already counted in user and nice, so the total is the first eight.
fn parse_proc_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    (fields.len() == 8).then(|| (fields[7], fields.iter().sum()))
}

/// Round to `digits` decimals for the JSON report.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_steal_and_the_total_from_the_cpu_line() {
        let stat = "cpu  275529 0 51926 182366 1370 0 13089 8399 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(
            parse_proc_stat(stat),
            Some((8399, 275529 + 51926 + 182366 + 1370 + 13089 + 8399))
        );
        // An older kernel without the steal field: no figure rather than a wrong one.
        assert_eq!(parse_proc_stat("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(parse_proc_stat("intr 1 2\n"), None);
    }

    #[test]
    fn parses_stat_with_spaces_and_parens_in_the_name() {
        let stat = "4242 (ws server (x)) S 1 4242 4242 0 -1 4194560 3012 0 0 0 1234 567 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat_ticks(stat), Some((1234, 567)));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tws-server\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vmrss(status), Some(12345 * 1024));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[test]
    fn sums_the_cpu_of_several_processes() {
        let me = std::process::id();
        let total = |t: (u64, u64)| t.0 + t.1;
        let before = total(cpu_ticks(me).expect("ticks"));
        let both = total(cpu_ticks_sum(&[me, me]).expect("sum"));
        let after = total(cpu_ticks(me).expect("ticks"));
        assert!(
            2 * before <= both && both <= 2 * after,
            "{before} {both} {after}"
        );
        assert!(
            cpu_ticks_sum(&[u32::MAX]).is_err(),
            "a PID that does not exist is an error"
        );
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).expect("rss") > 0);
        let clock = ClockTicks::detect();
        assert!(clock.per_sec > 0);
        let meter = CpuMeter::start(&[me], clock).expect("meter");
        // Burn a little CPU so the meter has something to see.
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(150);
        while Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = meter.stop().expect("stop");
        assert!(used.cpu_ms > 0.0 && used.cores() <= 2.5, "{used:?}");
        assert!(open_files_limit().expect("limit") > 0);
    }

    #[test]
    fn cost_per_thousand() {
        let u = CpuUse {
            cpu_ms: 500.0,
            system_ms: 100.0,
            wall_s: 2.0,
            clock: ClockTicks {
                per_sec: 100,
                assumed: false,
            },
        };
        assert_eq!(u.ms_per_1000(250_000), Some(2.0));
        assert_eq!(u.ms_per_1000(0), None);
        assert!((u.cores() - 0.25).abs() < 1e-9);
        assert!((u.kernel_share() - 0.2).abs() < 1e-9);
        assert_eq!(round(1.23456, 2), 1.23);
    }
}
