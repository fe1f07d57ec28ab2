//! Configuration from the environment, with the names of the original deployment
//! (`SQS_QUEUE_URL_*`, `WEBSOCKET_PORT`, ...) plus the limits of this server.
//!
//! Every variable is read and checked before anything starts, and all problems are reported
//! together, so an operator fixes a task definition in one round instead of one per restart.
//! The variables and their defaults are documented in `docs/protocol.md`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::protocol::QueueKind;

/// SQS refuses messages over 256 KiB (body plus attributes); keep room for the attributes.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
const ATTRIBUTE_ROOM: usize = 4 * 1024;

/// The whole server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `WEBSOCKET_HOST`: the address to listen on.
    pub host: IpAddr,
    /// `WEBSOCKET_PORT`.
    pub port: u16,
    /// `AWS_REGION`, default `us-east-1` as in the original server.
    pub aws_region: String,
    /// `DYNAMODB_TABLE_NAME`: accepted for compatibility with the original task definition;
    /// this version keeps no state in DynamoDB.
    pub dynamodb_table: Option<String>,
    /// `SQS_QUEUE_URL_*`: where forwards go.
    pub queues: QueueUrls,
    /// `PUBLISH_TOKEN`; `None` turns `POST /publish` off.
    pub publish_token: Option<String>,
    /// Bounds on memory and work (`WS_MAX_*`).
    pub limits: Limits,
    /// `WS_PING_INTERVAL_SECONDS`, `WS_PONG_TIMEOUT_SECONDS`.
    pub keepalive: Keepalive,
    /// `ENVIRONMENT`: the dimension of the metrics (prod, staging, ...).
    pub environment: String,
    /// `WS_METRICS_INTERVAL_SECONDS`: how often the EMF line is written.
    pub metrics_interval: Duration,
    /// `WS_SHUTDOWN_TIMEOUT_SECONDS`: the longest a drain may take before the process exits.
    pub shutdown_timeout: Duration,
    /// `WS_SQS_TIMEOUT_SECONDS`: bound on one forward, retries included.
    pub sqs_timeout: Duration,
    /// Tokens and grants (`WS_JWT_*`, `WS_AUTH*`).
    pub auth: crate::auth::AuthConfig,
    /// Abuse limits (per IP, origin, rate, HTTP timeouts, outbox bytes).
    pub guard: crate::limits::GuardConfig,
    /// `WS_REDIS_*`: the cross-task broker, off when no URL is set.
    pub broker: BrokerConfig,
    /// `WS_DRAIN_SECONDS`: the drain spreads its closes over this window.
    pub drain_window: Duration,
    /// `WS_CONNECT_RATE`: upgrades admitted per second (and burst).
    pub connect_rate: u32,
}

/// The cross-task broker (`WS_REDIS_*`, `WS_HISTORY_*`, ...); `url: None` is the in-process hub.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `WS_REDIS_URL`, holding a password maybe: never log it.
    pub url: Option<String>,
    /// `WS_REDIS_CLUSTER`: route commands by slot (cluster-mode endpoints).
    pub cluster: bool,
    /// `WS_HISTORY_SIZE`: updates kept per project for replay.
    pub history_size: u64,
    /// `WS_HISTORY_TTL_SECONDS`: how long an idle project's history is kept.
    pub history_ttl: Duration,
    /// `WS_POSITION_TTL_SECONDS`: how long an idle project's position is kept.
    pub position_ttl: Duration,
    /// `WS_RECOVERY_MAX`: the most updates one resubscribe replays.
    pub recovery_max: u64,
}

/// One URL per agent queue, in the order of [`QueueKind::ALL`]; an unset queue is disabled
/// (forwards to it get an error).
#[derive(Clone, Debug, Default)]
pub struct QueueUrls([Option<String>; QueueKind::ALL.len()]);

impl QueueUrls {
    /// The URL of `kind`'s queue, `None` when it is not configured.
    pub fn get(&self, kind: QueueKind) -> Option<&str> {
        self.0[kind as usize].as_deref()
    }

    /// The queues that have a URL, in the order of [`QueueKind::ALL`].
    pub fn configured(&self) -> impl Iterator<Item = QueueKind> + '_ {
        QueueKind::ALL
            .into_iter()
            .filter(|q| self.get(*q).is_some())
    }
}

/// Limits that bound memory and work per connection and per task.
#[derive(Clone, Debug)]
pub struct Limits {
    /// `WS_MAX_FRAME_BYTES`: largest request frame processed, also the largest publish body.
    pub max_frame_bytes: usize,
    /// `WS_MAX_SUBSCRIPTIONS`: projects one connection may subscribe to.
    pub max_subscriptions: usize,
    /// `WS_MAX_CONNECTIONS`: open WebSocket connections per task; more are refused with 503.
    pub max_connections: usize,
    /// `WS_OUTBOX_MESSAGES`: messages queued for one client before it counts as too slow.
    pub outbox_messages: usize,
    /// `WS_MAX_INFLIGHT_FORWARDS`: forwards one connection may have waiting on SQS; while at the
    /// limit the server stops reading that connection (backpressure, nothing is dropped).
    pub max_inflight_forwards: usize,
}

impl Limits {
    /// Frames above this size are refused by the WebSocket layer itself and close the
    /// connection (1009); frames between `max_frame_bytes` and this get an error reply.
    pub fn hard_frame_bytes(&self) -> usize {
        self.max_frame_bytes.saturating_mul(4)
    }
}

#[derive(Clone, Debug)]
/// The keepalive: a ping after this much silence, and how long the pong may take.
pub struct Keepalive {
    /// `WS_PING_INTERVAL_SECONDS`: a connection quiet this long gets a ping.
    pub ping_interval: Duration,
    /// `WS_PONG_TIMEOUT_SECONDS`: a pinged connection silent this long is closed.
    pub pong_timeout: Duration,
}

/// Every problem found in the environment, reported at once.
#[derive(Debug)]
pub struct ConfigError {
    /// Every invalid variable, each named with what is expected.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        write!(f, "see docs/protocol.md, section Configuration")
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests can build a configuration without touching
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(&lookup);

        let host = r.parsed(
            "WEBSOCKET_HOST",
            "0.0.0.0".parse().ok(),
            "an IP address such as 0.0.0.0",
        );
        let port = r.number("WEBSOCKET_PORT", 8080u16, 0, u16::MAX as u64);
        let aws_region = r
            .optional("AWS_REGION")
            .unwrap_or_else(|| "us-east-1".to_owned());
        let dynamodb_table = r.optional("DYNAMODB_TABLE_NAME");
        let queues = QueueUrls(QueueKind::ALL.map(|q| r.queue_url(&q.url_variable())));
        let publish_token = r.optional("PUBLISH_TOKEN");
        if let Some(t) = &publish_token
            && t.len() < 16
        {
            r.problems.push(format!(
                "PUBLISH_TOKEN is {} characters long; use at least 16 random characters, or unset it to turn POST /publish off",
                t.len()
            ));
        }
        let max_frame_limit = SQS_MAX_MESSAGE_BYTES - ATTRIBUTE_ROOM;
        let limits = Limits {
            max_frame_bytes: r.number("WS_MAX_FRAME_BYTES", 64 * 1024, 256, max_frame_limit as u64),
            max_subscriptions: r.number("WS_MAX_SUBSCRIPTIONS", 100, 1, 100_000),
            max_connections: r.number("WS_MAX_CONNECTIONS", 20_000, 1, 10_000_000),
            outbox_messages: r.number("WS_OUTBOX_MESSAGES", 256, 1, 1_000_000),
            max_inflight_forwards: r.number("WS_MAX_INFLIGHT_FORWARDS", 8, 1, 1_000),
        };
        let keepalive = Keepalive {
            ping_interval: Duration::from_secs(r.number("WS_PING_INTERVAL_SECONDS", 20, 1, 3600)),
            pong_timeout: Duration::from_secs(r.number("WS_PONG_TIMEOUT_SECONDS", 20, 1, 3600)),
        };
        let environment = r
            .optional("ENVIRONMENT")
            .unwrap_or_else(|| "local".to_owned());
        let metrics_interval =
            Duration::from_secs(r.number("WS_METRICS_INTERVAL_SECONDS", 60, 1, 3600));
        let shutdown_timeout =
            Duration::from_secs(r.number("WS_SHUTDOWN_TIMEOUT_SECONDS", 20, 1, 600));
        let sqs_timeout = Duration::from_secs(r.number("WS_SQS_TIMEOUT_SECONDS", 10, 1, 300));
        let auth = crate::auth::AuthConfig::read(&mut r);
        let guard = crate::limits::GuardConfig::read(&mut r);
        let broker = r.broker();
        let drain_window = Duration::from_secs(r.number("WS_DRAIN_SECONDS", 10, 0, 600));
        if drain_window + Duration::from_secs(5) > shutdown_timeout {
            r.problems.push(format!(
                "WS_DRAIN_SECONDS={} leaves less than 5 s of WS_SHUTDOWN_TIMEOUT_SECONDS={} for the last connections to close; lower it",
                drain_window.as_secs(),
                shutdown_timeout.as_secs()
            ));
        }
        let connect_rate = r.number("WS_CONNECT_RATE", 500u32, 1, 1_000_000);

        if r.problems.is_empty() {
            Ok(Config {
                host: host.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                port,
                aws_region,
                dynamodb_table,
                queues,
                publish_token,
                limits,
                keepalive,
                environment,
                metrics_interval,
                shutdown_timeout,
                sqs_timeout,
                auth,
                guard,
                broker,
                drain_window,
                connect_rate,
            })
        } else {
            Err(ConfigError {
                problems: r.problems,
            })
        }
    }
}

/// Reads variables and collects what is wrong with them instead of stopping at the first.
pub(crate) struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) problems: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    pub(crate) fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    /// The trimmed value, `None` when unset; set-but-blank is a problem (it is always a typo).
    pub(crate) fn optional(&mut self, name: &str) -> Option<String> {
        let value = (self.lookup)(name)?;
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.problems.push(format!(
                "{name} is set but empty; give it a value or unset it"
            ));
            return None;
        }
        Some(trimmed.to_owned())
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        default: Option<T>,
        expected: &str,
    ) -> Option<T> {
        match self.optional(name) {
            None => default,
            Some(v) => match v.parse() {
                Ok(x) => Some(x),
                Err(_) => {
                    self.problems
                        .push(format!("{name}={v:?} is not valid: expected {expected}"));
                    None
                }
            },
        }
    }

    pub(crate) fn number<T>(&mut self, name: &str, default: T, min: u64, max: u64) -> T
    where
        T: TryFrom<u64> + Copy,
    {
        let Some(v) = self.optional(name) else {
            return default;
        };
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => T::try_from(n).unwrap_or(default),
            _ => {
                self.problems.push(format!(
                    "{name}={v:?} is not valid: expected a whole number from {min} to {max}"
                ));
                default
            }
        }
    }

    fn broker(&mut self) -> BrokerConfig {
        let url = self.optional("WS_REDIS_URL");
        if let Some(u) = &url
            && (!(u.starts_with("redis://") || u.starts_with("rediss://"))
                || redis::IntoConnectionInfo::into_connection_info(u.as_str()).is_err())
        {
            self.problems.push(
                "WS_REDIS_URL must be redis://[user:password@]host:port[/db] or rediss://... (TLS)"
                    .to_owned(),
            );
        }
        let cluster = match self.optional("WS_REDIS_CLUSTER").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                self.problems.push(format!(
                    "WS_REDIS_CLUSTER={v:?} is not valid: expected true or false"
                ));
                false
            }
        };
        let history_ttl = self.number("WS_HISTORY_TTL_SECONDS", 600u64, 1, 30 * 86400);
        let position_ttl = self.number("WS_POSITION_TTL_SECONDS", 7 * 86400u64, 1, 365 * 86400);
        if position_ttl < history_ttl {
            self.problems.push(format!(
                "WS_POSITION_TTL_SECONDS={position_ttl} is shorter than WS_HISTORY_TTL_SECONDS={history_ttl}; a position must outlive its history"
            ));
        }
        BrokerConfig {
            url,
            cluster,
            history_size: self.number("WS_HISTORY_SIZE", 1000, 1, 100_000),
            history_ttl: Duration::from_secs(history_ttl),
            position_ttl: Duration::from_secs(position_ttl),
            recovery_max: self.number("WS_RECOVERY_MAX", 500, 1, 100_000),
        }
    }

    fn queue_url(&mut self, name: &str) -> Option<String> {
        let v = self.optional(name)?;
        if v.starts_with("https://") || v.starts_with("http://") {
            Some(v)
        } else {
            self.problems.push(format!(
                "{name}={v:?} is not a queue URL: expected https://sqs.<region>.amazonaws.com/<account>/<queue>"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // These tests are about the other variables; authentication has its own (auth/mod.rs).
        if !map
            .keys()
            .any(|k| k.starts_with("WS_AUTH") || k.starts_with("WS_JWT"))
        {
            map.insert("WS_AUTH".into(), "none".into());
        }
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_original_deployment() {
        let c = config(&[]).expect("empty environment is valid");
        assert_eq!(c.port, 8080);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert!(c.publish_token.is_none());
        assert!(c.queues.get(QueueKind::Dev).is_none());
        assert!(c.limits.max_frame_bytes < SQS_MAX_MESSAGE_BYTES);
        assert!(c.keepalive.ping_interval < Duration::from_secs(60));
        assert!(c.shutdown_timeout < Duration::from_secs(30));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = config(&[
            ("WEBSOCKET_PORT", "80800"),
            ("WEBSOCKET_HOST", "localhost:1"),
            ("SQS_QUEUE_URL_DEV", "dev-queue"),
            ("WS_MAX_FRAME_BYTES", "300000"),
            ("PUBLISH_TOKEN", "short"),
            ("DYNAMODB_TABLE_NAME", "  "),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        for name in [
            "WEBSOCKET_PORT",
            "WEBSOCKET_HOST",
            "SQS_QUEUE_URL_DEV",
            "WS_MAX_FRAME_BYTES",
            "PUBLISH_TOKEN",
            "DYNAMODB_TABLE_NAME",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert_eq!(err.problems.len(), 6);
    }

    #[test]
    fn the_broker_settings_are_checked_together() {
        let c = config(&[]).expect("valid");
        assert!(
            c.broker.url.is_none(),
            "no broker by default: the in-process hub"
        );
        assert_eq!((c.broker.history_size, c.broker.recovery_max), (1000, 500));
        assert_eq!(c.drain_window, Duration::from_secs(10));
        let c = config(&[
            ("WS_REDIS_URL", "rediss://u:p@cache:6379"),
            ("WS_REDIS_CLUSTER", "true"),
        ])
        .expect("valid");
        assert!(c.broker.cluster && c.broker.url.is_some());
        let err = config(&[
            ("WS_REDIS_URL", "http://cache:6379"),
            ("WS_REDIS_CLUSTER", "yes"),
            ("WS_HISTORY_TTL_SECONDS", "600"),
            ("WS_POSITION_TTL_SECONDS", "60"),
            ("WS_DRAIN_SECONDS", "18"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        for name in [
            "WS_REDIS_URL",
            "WS_REDIS_CLUSTER",
            "WS_POSITION_TTL_SECONDS",
            "WS_DRAIN_SECONDS",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn queues_are_read_one_by_one() {
        let c = config(&[("SQS_QUEUE_URL_QA", "http://127.0.0.1:1/123/qa")]).expect("valid");
        assert_eq!(
            c.queues.get(QueueKind::Qa),
            Some("http://127.0.0.1:1/123/qa")
        );
        assert_eq!(c.queues.get(QueueKind::Pm), None);
    }
}
