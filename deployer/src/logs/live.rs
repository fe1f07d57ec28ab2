//! A CloudWatch Logs live tail session (StartLiveTail): events pushed as they are ingested,
//! instead of polled. A session lasts up to three hours; the caller starts a new one, or
//! falls back to polling where the API cannot be reached.

use crate::aws::AwsResultExt as _;
use anyhow::{Context as _, anyhow, bail};
use aws_sdk_cloudwatchlogs::types::{
    LiveTailSessionLogEvent, StartLiveTailResponseStream, error::StartLiveTailResponseStreamError,
};

use super::Event;
use super::fetch::Query;

type Stream = aws_sdk_cloudwatchlogs::primitives::event_stream::EventReceiver<
    StartLiveTailResponseStream,
    StartLiveTailResponseStreamError,
>;

/// An open session, past its `sessionStart`.
pub struct Session {
    stream: Stream,
}

/// One push of the session.
#[derive(Debug, Default)]
pub struct Update {
    pub events: Vec<Event>,
    /// CloudWatch sends a sample when more than 500 events a second match.
    pub sampled: bool,
}

/// Why live tail cannot be used with this endpoint, if it cannot. The SDK addresses
/// StartLiveTail at `stream-<host>`, which only exists for AWS host names: an emulator or
/// proxy on an address (127.0.0.1:5000, localhost) never answers there.
pub fn unreachable_reason(endpoint_url: Option<&str>) -> Option<String> {
    let url = endpoint_url?;
    let is_address = match url::Url::parse(url).ok()?.host()? {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => true,
    };
    is_address.then(|| {
        format!(
            "the endpoint {url} has no host name for the SDK's stream- prefix that live tail uses"
        )
    })
}

/// The ARN StartLiveTail wants for the log group (it does not take names).
pub async fn group_arn(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
) -> anyhow::Result<String> {
    let page = logs
        .describe_log_groups()
        .log_group_name_prefix(log_group)
        .send()
        .await;
    let page = super::fetch::or_missing(page, log_group)?;
    let group = page
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(log_group))
        .ok_or_else(|| anyhow!("log group {log_group} is not listed by DescribeLogGroups"))?;
    // `arn` ends in `:*`, which StartLiveTail refuses; `logGroupArn` does not.
    group
        .log_group_arn()
        .map(str::to_owned)
        .or_else(|| group.arn().map(|arn| arn.trim_end_matches(":*").to_owned()))
        .with_context(|| format!("DescribeLogGroups gave no ARN for {log_group}"))
}

/// Opens a session on the query's group, streams and filter; returns once CloudWatch has
/// confirmed it, so an error here means live tail is not available (permissions, endpoint).
pub async fn start(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group_arn: &str,
    query: &Query,
) -> anyhow::Result<Session> {
    let output = logs
        .start_live_tail()
        .log_group_identifiers(group_arn)
        .set_log_stream_names(query.streams.clone())
        .set_log_event_filter_pattern(query.filter.clone())
        .send()
        .await
        .aws_context(|| "starting a live tail session (StartLiveTail)")?;
    let mut stream = output.response_stream;
    match stream.recv().await {
        Ok(Some(StartLiveTailResponseStream::SessionStart(_))) => Ok(Session { stream }),
        Ok(Some(other)) => bail!("live tail sent {other:?} before its session start"),
        Ok(None) => bail!("the live tail session closed before it started"),
        Err(err) => Err(crate::aws::error(err)).context("starting a live tail session"),
    }
}

impl Session {
    /// The next push; `None` when the session has ended (after three hours, or closed by
    /// CloudWatch), after which a new session picks up.
    pub async fn next(&mut self) -> anyhow::Result<Option<Update>> {
        loop {
            let pushed = match self.stream.recv().await {
                Ok(pushed) => pushed,
                Err(err) if is_timeout(&err) => return Ok(None),
                Err(err) => {
                    return Err(crate::aws::error(err)).context("reading the live tail session");
                }
            };
            match pushed {
                None => return Ok(None),
                Some(StartLiveTailResponseStream::SessionUpdate(update)) => {
                    return Ok(Some(Update {
                        events: update.session_results().iter().map(event).collect(),
                        sampled: update.session_metadata().is_some_and(|m| m.sampled()),
                    }));
                }
                // A second start or a kind this SDK does not know: nothing to show.
                Some(_) => {}
            }
        }
    }
}

fn is_timeout<R>(
    err: &aws_sdk_cloudwatchlogs::error::SdkError<StartLiveTailResponseStreamError, R>,
) -> bool {
    matches!(
        err.as_service_error(),
        Some(StartLiveTailResponseStreamError::SessionTimeoutException(_))
    )
}

fn event(pushed: &LiveTailSessionLogEvent) -> Event {
    let timestamp = pushed.timestamp().unwrap_or_default();
    Event {
        timestamp,
        ingestion_time: pushed.ingestion_time().unwrap_or(timestamp),
        // Live events have no id; the follower matches them on content.
        event_id: String::new(),
        stream: pushed.log_stream_name().unwrap_or_default().to_owned(),
        message: pushed.message().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::unreachable_reason;

    #[test]
    fn addresses_cannot_take_the_stream_prefix_but_host_names_can() {
        for url in [
            "http://127.0.0.1:5000",
            "http://localhost:4566/",
            "https://[::1]:8443",
            "http://10.0.0.7",
        ] {
            assert!(unreachable_reason(Some(url)).is_some(), "{url}");
        }
        for url in [
            "https://logs.eu-west-1.amazonaws.com",
            "http://proxy.internal:8080",
        ] {
            assert!(unreachable_reason(Some(url)).is_none(), "{url}");
        }
        assert!(unreachable_reason(None).is_none(), "AWS's own endpoints");
    }
}
