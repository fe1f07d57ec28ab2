//! Reading the service's log group: which events (`since`, `fetch`), how each is shown
//! (`render`), and following new ones (`tail`: a `live` session or polls) without duplicates or
//! gaps (`follow`).

pub mod fetch;
pub mod follow;
pub mod live;
pub mod render;
pub mod since;
pub mod streams;
pub mod tail;
#[cfg(test)]
mod tail_tests;

/// One log event as read from CloudWatch Logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp: i64,
    pub ingestion_time: i64,
    pub event_id: String,
    pub stream: String,
    pub message: String,
}

impl Event {
    pub fn from_filtered(event: &aws_sdk_cloudwatchlogs::types::FilteredLogEvent) -> Self {
        let stream = event.log_stream_name().unwrap_or_default().to_owned();
        let timestamp = event.timestamp().unwrap_or_default();
        let message = event.message().unwrap_or_default().to_owned();
        // Event ids are always present on AWS; the fallback keeps dedup sound without them.
        let event_id = event
            .event_id()
            .map_or_else(|| format!("{stream}/{timestamp}/{message}"), str::to_owned);
        Self {
            timestamp,
            ingestion_time: event.ingestion_time().unwrap_or(timestamp),
            event_id,
            stream,
            message,
        }
    }

    /// The task the event came from: the last part of the awslogs stream name
    /// (`prefix/container/task-id`).
    pub fn task(&self) -> &str {
        crate::live_service::task_id(&self.stream)
    }
}

/// Orders events by time; ties keep the order CloudWatch ingested them in.
pub fn sort(events: &mut [Event]) {
    events.sort_by(|a, b| {
        (a.timestamp, a.ingestion_time, &a.event_id).cmp(&(
            b.timestamp,
            b.ingestion_time,
            &b.event_id,
        ))
    });
}
