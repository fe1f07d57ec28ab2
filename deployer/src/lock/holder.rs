//! Who holds an environment's lock: the operator or CI job, from where, since when, for which
//! commit, and until when the lease runs. Stored as one DynamoDB item; shown to whoever waits.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::when;

/// One holder of a lock, as written to (and read back from) its item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Random per acquisition: renewals, the release and a takeover are conditional on it.
    pub id: String,
    /// The operation that holds it: deploy, rollback, teardown, scale.
    pub operation: String,
    /// The caller's identity (STS ARN), else the local user name.
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// The CI run's address when the holder runs in GitHub Actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub since: DateTime<Utc>,
    /// The lease: past this time, without a renewal, anyone may take the lock over.
    #[serde(serialize_with = "rfc3339")]
    pub expires: DateTime<Utc>,
}

fn rfc3339<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&when::rfc3339(time))
}

impl Holder {
    /// This process as a holder of a lease of `lease` from `now`.
    pub fn this_process(
        operation: &str,
        who: String,
        commit: Option<String>,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Self {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let ci_run = match (
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(run)) => {
                Some(format!("{server}/{repo}/actions/runs/{run}"))
            }
            _ => None,
        };
        Self {
            id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            operation: operation.to_owned(),
            who,
            host: hostname(),
            pid: std::process::id(),
            ci_run,
            commit: commit.or_else(|| env("GITHUB_SHA")),
            since: now,
            expires: now + lease_delta(lease),
        }
    }

    /// Whether the lease ran out at `now` (the holder stopped renewing it).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires <= now
    }

    /// "deploy by arn:...:user/alice on laptop (pid 42), commit 3f2a9c1, since 12:00:00Z
    /// (2m05s ago), lease until 12:04:00Z": what a waiting operator needs to find the holder.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let mut text = format!(
            "{} by {} on {} (pid {})",
            self.operation, self.who, self.host, self.pid
        );
        if let Some(run) = &self.ci_run {
            text.push_str(&format!(", CI run {run}"));
        }
        if let Some(commit) = &self.commit {
            text.push_str(&format!(", commit {commit}"));
        }
        text.push_str(&format!(
            ", since {} ({} ago), lease until {}",
            when::rfc3339(&self.since),
            when::age(&self.since, &now),
            when::rfc3339(&self.expires)
        ));
        text
    }

    /// The item's attributes (key included).
    pub fn to_item(&self, key: &str, environment: &str) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = HashMap::from([
            (super::KEY.to_owned(), s(key)),
            ("environment".to_owned(), s(environment)),
            ("holder_id".to_owned(), s(&self.id)),
            ("operation".to_owned(), s(&self.operation)),
            ("who".to_owned(), s(&self.who)),
            ("host".to_owned(), s(&self.host)),
            ("pid".to_owned(), AttributeValue::N(self.pid.to_string())),
            ("since".to_owned(), s(&when::rfc3339(&self.since))),
            (
                "expires_at".to_owned(),
                AttributeValue::N(self.expires.timestamp_millis().to_string()),
            ),
        ]);
        if let Some(run) = &self.ci_run {
            item.insert("ci_run".to_owned(), s(run));
        }
        if let Some(commit) = &self.commit {
            item.insert("commit".to_owned(), s(commit));
        }
        item
    }

    /// Reads an item back; `None` when it is not a lock item wsctl wrote.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let s = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
        let n = |key: &str| {
            item.get(key)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        Some(Self {
            id: s("holder_id")?,
            operation: s("operation").unwrap_or_default(),
            who: s("who").unwrap_or_default(),
            host: s("host").unwrap_or_default(),
            pid: n("pid").and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            ci_run: s("ci_run"),
            commit: s("commit"),
            since: s("since")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map_or(DateTime::UNIX_EPOCH, |t| t.with_timezone(&Utc)),
            expires: DateTime::from_timestamp_millis(n("expires_at")?)?,
        })
    }
}

pub fn lease_delta(lease: std::time::Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX)
}

/// This machine's name, for "from where" (Linux; else `HOSTNAME`, else "unknown").
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("time")
    }

    #[test]
    fn an_item_reads_back_as_the_holder_it_was_written_from() {
        let mut holder = Holder::this_process(
            "deploy",
            "arn:aws:sts::123456789012:assumed-role/ci/run-7".into(),
            Some("3f2a9c1".into()),
            at(1_800_000_000),
            Duration::from_secs(90),
        );
        holder.ci_run = Some("https://github.com/o/r/actions/runs/7".into());
        let item = holder.to_item("agenticai-websocket-dev", "dev");
        assert_eq!(
            item[super::super::KEY].as_s().ok().map(String::as_str),
            Some("agenticai-websocket-dev")
        );
        assert_eq!(Holder::from_item(&item), Some(holder.clone()));
        assert_eq!(holder.expires, at(1_800_000_090));
        assert!(!holder.expired(at(1_800_000_089)));
        assert!(holder.expired(at(1_800_000_090)));
    }

    #[test]
    fn the_description_names_who_where_what_and_until_when() {
        let mut holder = Holder::this_process(
            "rollback",
            "alice".into(),
            None,
            at(1_800_000_000),
            Duration::from_secs(120),
        );
        holder.host = "laptop".into();
        holder.pid = 42;
        holder.ci_run = Some("https://github.com/o/r/actions/runs/7".into());
        holder.commit = Some("3f2a9c1".into());
        assert_eq!(
            holder.describe(at(1_800_000_065)),
            "rollback by alice on laptop (pid 42), CI run https://github.com/o/r/actions/runs/7, \
             commit 3f2a9c1, since 2027-01-15T08:00:00Z (1m05s ago), lease until \
             2027-01-15T08:02:00Z"
        );
    }

    #[test]
    fn an_item_without_a_holder_is_not_a_lock() {
        assert_eq!(Holder::from_item(&HashMap::new()), None);
    }
}
