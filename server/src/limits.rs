//! Limits that keep one client from hurting the others (see `docs/protocol.md`, Connecting and
//! Requests): connections per client IP, the allowed browser origins, the request rate of one
//! connection, and the settings of the HTTP timeouts and the outbox's byte bound.
//!
//! The token buckets are the `governor` crate's (GCRA, one atomic word each); this module only
//! wires them to the protocol's replies and close codes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::Reader;

/// The limits' settings, read with the rest of the configuration.
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// `WS_MAX_CONNECTIONS_PER_IP`.
    pub max_per_ip: usize,
    /// `WS_TRUST_FORWARDED_FOR`: the client IP is the rightmost `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
    /// `WS_ALLOWED_ORIGINS`, normalized (lower case, no trailing slash); `None` allows all.
    pub allowed_origins: Option<Vec<String>>,
    /// `WS_RATE_PER_SECOND` and `WS_RATE_BURST`.
    pub rate_per_second: u32,
    /// Requests a connection may send at once above the rate.
    pub rate_burst: u32,
    /// `WS_OUTBOX_BYTES`: bytes queued for one client before it is closed as too slow.
    pub outbox_bytes: usize,
    /// `WS_WRITE_TIMEOUT_SECONDS`: a client that reads nothing this long while frames wait
    /// for it is closed as too slow, whatever else it sends.
    pub write_timeout: Duration,
    /// `WS_HTTP_HEADER_TIMEOUT_SECONDS`: time to send a request head; also how long an idle
    /// keep-alive connection waits for its next request.
    pub header_timeout: Duration,
    /// `WS_HTTP_BODY_TIMEOUT_SECONDS`: time to send a `/publish` body.
    pub body_timeout: Duration,
}

impl GuardConfig {
    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let trust_forwarded_for = match r.optional("WS_TRUST_FORWARDED_FOR").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                r.problem(format!(
                    "WS_TRUST_FORWARDED_FOR={other:?} is not valid: expected true (behind a load balancer that sets X-Forwarded-For) or false"
                ));
                false
            }
        };
        let allowed_origins = r.optional("WS_ALLOWED_ORIGINS").map(|v| {
            let list: Vec<String> = v
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect();
            if let Some(bad) = list
                .iter()
                .find(|o| !(o.starts_with("https://") || o.starts_with("http://")))
            {
                r.problem(format!(
                    "WS_ALLOWED_ORIGINS has {bad:?}: expected origins such as https://app.example.com, separated by commas"
                ));
            }
            list
        });
        Self {
            max_per_ip: r.number("WS_MAX_CONNECTIONS_PER_IP", 1000, 1, 10_000_000),
            trust_forwarded_for,
            allowed_origins,
            rate_per_second: r.number("WS_RATE_PER_SECOND", 20, 1, 1_000_000),
            rate_burst: r.number("WS_RATE_BURST", 50, 1, 1_000_000),
            outbox_bytes: r.number("WS_OUTBOX_BYTES", 1024 * 1024, 4096, 1 << 30),
            write_timeout: Duration::from_secs(r.number("WS_WRITE_TIMEOUT_SECONDS", 30, 1, 3600)),
            header_timeout: Duration::from_secs(r.number(
                "WS_HTTP_HEADER_TIMEOUT_SECONDS",
                10,
                1,
                3600,
            )),
            body_timeout: Duration::from_secs(r.number(
                "WS_HTTP_BODY_TIMEOUT_SECONDS",
                10,
                1,
                3600,
            )),
        }
    }

    /// Whether a browser's `Origin` may open a WebSocket. Requests without `Origin` come from
    /// services and CLIs (browsers always send it on a WebSocket upgrade) and are allowed.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let (Some(list), Some(origin)) = (&self.allowed_origins, headers.get(header::ORIGIN))
        else {
            return true;
        };
        let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
        list.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The client IP: the TCP peer, or behind a trusted proxy the rightmost `X-Forwarded-For`
    /// entry (the address the proxy itself saw; entries to its left are the client's word).
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        if self.trust_forwarded_for
            && let Some(last) = headers.get_all("x-forwarded-for").iter().next_back()
            && let Ok(text) = last.to_str()
            && let Some(entry) = text.rsplit(',').next()
            && let Ok(ip) = entry.trim().parse::<IpAddr>()
        {
            return ip;
        }
        peer.ip()
    }
}

/// Open WebSocket connections per client IP.
#[derive(Default)]
pub struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its IP's count; gives it back when dropped.
pub struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for `ip`, or `None` when it already has `max` connections open.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

type Bucket =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// What the rate limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under the rate: process it.
    Allowed,
    /// Over the rate: answer `rate_limited`, do not process.
    Refused,
    /// Kept sending over the rate: close the connection.
    Abusive,
}

/// The request rate of one connection: a bucket for requests and one for refusals, so a
/// burst over the rate is answered and only sustained abuse closes the connection.
pub struct RequestRate {
    requests: Bucket,
    refusals: Bucket,
}

impl RequestRate {
    /// A fresh bucket at `WS_RATE_PER_SECOND`, burst `WS_RATE_BURST`.
    pub fn new(g: &GuardConfig) -> Self {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let requests = Quota::per_second(nz(g.rate_per_second)).allow_burst(nz(g.rate_burst));
        // Refusals refill at half the request rate, with room for two bursts.
        let refill = Duration::from_secs_f64(2.0 / f64::from(g.rate_per_second.max(1)));
        let refusals = Quota::with_period(refill)
            .unwrap_or(requests)
            .allow_burst(nz(g.rate_burst.saturating_mul(2)));
        Self {
            requests: RateLimiter::direct_with_clock(requests, MonotonicClock),
            refusals: RateLimiter::direct_with_clock(refusals, MonotonicClock),
        }
    }

    /// Takes one request from the bucket.
    pub fn check(&self) -> Verdict {
        if self.requests.check().is_ok() {
            Verdict::Allowed
        } else if self.refusals.check().is_ok() {
            Verdict::Refused
        } else {
            Verdict::Abusive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(vars: &[(&str, &str)]) -> GuardConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = |k: &str| vars.get(k).cloned();
        let mut r = Reader::new(&lookup);
        let g = GuardConfig::read(&mut r);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        g
    }

    #[test]
    fn the_rightmost_forwarded_entry_counts_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 10.0.0.7".parse().expect("header"),
        );
        let peer: SocketAddr = "10.1.1.1:4000".parse().expect("addr");
        assert_eq!(guard(&[]).client_ip(&h, peer), peer.ip());
        let trusted = guard(&[("WS_TRUST_FORWARDED_FOR", "true")]);
        assert_eq!(
            trusted.client_ip(&h, peer),
            "10.0.0.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn a_burst_is_refused_then_sustained_abuse_is_abusive() {
        let rate = RequestRate::new(&guard(&[
            ("WS_RATE_PER_SECOND", "1"),
            ("WS_RATE_BURST", "3"),
        ]));
        let verdicts: Vec<Verdict> = (0..12).map(|_| rate.check()).collect();
        assert_eq!(&verdicts[..3], [Verdict::Allowed; 3]);
        assert_eq!(&verdicts[3..9], [Verdict::Refused; 6]);
        assert_eq!(verdicts[9], Verdict::Abusive);
    }

    #[test]
    fn per_ip_slots_are_given_back() {
        let per_ip = Arc::new(PerIp::default());
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let a = per_ip.try_open(ip, 2).expect("first");
        let _b = per_ip.try_open(ip, 2).expect("second");
        assert!(per_ip.try_open(ip, 2).is_none());
        drop(a);
        assert!(per_ip.try_open(ip, 2).is_some());
    }
}
