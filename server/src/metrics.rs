//! Counters of the server and their export as CloudWatch Embedded Metric Format (EMF) lines.
//!
//! The lines go to stdout with the logs; the awslogs driver ships them and CloudWatch turns them
//! into metrics, so the template can alarm and scale on open connections without any
//! PutMetricData call. Counters are deltas over one interval; `OpenConnections` is a gauge.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of the EMF metrics.
pub const NAMESPACE: &str = "AgenticAI/WebSocket";

#[derive(Debug, Default)]
/// The server's counters, written as one EMF log line per interval.
pub struct Metrics {
    /// Connections open now (a gauge).
    pub open_connections: AtomicUsize,
    /// Connections opened since the last line.
    pub connections_opened: AtomicU64,
    /// Upgrades refused, for any reason.
    pub connections_refused: AtomicU64,
    /// Frames received from clients.
    pub messages_received: AtomicU64,
    /// Updates queued to clients.
    pub updates_delivered: AtomicU64,
    /// Requests answered with an error.
    pub invalid_requests: AtomicU64,
    /// Forwards SQS accepted.
    pub forwards_succeeded: AtomicU64,
    /// Forwards that failed.
    pub forwards_failed: AtomicU64,
    /// Clients closed because they fell behind or stopped reading.
    pub slow_clients_closed: AtomicU64,
    /// Clients closed because they stopped answering pings.
    pub keepalive_timeouts: AtomicU64,
    /// Tokens refused and authentication timeouts.
    pub auth_failures: AtomicU64,
    /// Requests the token does not grant.
    pub forbidden: AtomicU64,
    /// Requests over the rate.
    pub rate_limited: AtomicU64,
    /// Upgrades refused by the per-IP limit.
    pub refused_per_ip: AtomicU64,
    /// Upgrades refused for their `Origin`.
    pub origins_refused: AtomicU64,
}

/// Adds one to a counter.
pub fn incr(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// One EMF line with the counters since the previous call (they restart from zero).
    pub fn emf_line(&self, environment: &str, timestamp_ms: i64) -> String {
        let counters: [(&str, &AtomicU64); 14] = [
            ("ConnectionsOpened", &self.connections_opened),
            ("ConnectionsRefused", &self.connections_refused),
            ("MessagesReceived", &self.messages_received),
            ("UpdatesDelivered", &self.updates_delivered),
            ("InvalidRequests", &self.invalid_requests),
            ("ForwardsSucceeded", &self.forwards_succeeded),
            ("ForwardsFailed", &self.forwards_failed),
            ("SlowClientsClosed", &self.slow_clients_closed),
            ("KeepaliveTimeouts", &self.keepalive_timeouts),
            ("AuthFailures", &self.auth_failures),
            ("Forbidden", &self.forbidden),
            ("RateLimited", &self.rate_limited),
            ("ConnectionsRefusedPerIp", &self.refused_per_ip),
            ("OriginsRefused", &self.origins_refused),
        ];
        let mut definitions = vec![json!({"Name": "OpenConnections", "Unit": "Count"})];
        let mut root = Map::new();
        root.insert("Environment".into(), json!(environment));
        root.insert("OpenConnections".into(), json!(self.open()));
        for (name, counter) in counters {
            definitions.push(json!({"Name": name, "Unit": "Count"}));
            root.insert(name.into(), json!(counter.swap(0, Ordering::Relaxed)));
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Environment"]],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root).to_string()
    }
}

/// Prints an EMF line every `interval` until the task is dropped, and a last one at the end.
pub async fn emit_every(metrics: std::sync::Arc<Metrics>, environment: String, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        emit(&metrics, &environment);
    }
}

/// Writes one EMF line with the counters since the last one (and resets them).
pub fn emit(metrics: &Metrics, environment: &str) {
    let line = metrics.emf_line(environment, chrono::Utc::now().timestamp_millis());
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_value_and_resets_counters() {
        let m = Metrics::default();
        m.open_connections.store(3, Ordering::Relaxed);
        add(&m.messages_received, 5);
        let v: Value = serde_json::from_str(&m.emf_line("prod", 1_700_000_000_000)).expect("json");
        assert_eq!(v["Environment"], "prod");
        assert_eq!(v["OpenConnections"], 3);
        assert_eq!(v["MessagesReceived"], 5);
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], NAMESPACE);
        assert_eq!(cw["Dimensions"][0][0], "Environment");
        for d in cw["Metrics"].as_array().expect("metrics") {
            let name = d["Name"].as_str().expect("name");
            assert!(v.get(name).is_some(), "{name} declared but has no value");
        }
        let again: Value = serde_json::from_str(&m.emf_line("prod", 1)).expect("json");
        assert_eq!(again["MessagesReceived"], 0);
        assert_eq!(again["OpenConnections"], 3);
    }
}
