//! One FilterLogEvents query over the log group, every page, ordered by time.

use anyhow::Context as _;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};

use super::Event;
use crate::exit::{Exit, fail};

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub log_group: String,
    /// A CloudWatch Logs filter pattern (`--filter`).
    pub filter: Option<String>,
    /// Only these streams (`--task`); all when `None`.
    pub streams: Option<Vec<String>>,
}

/// Every event from `start_ms` (inclusive) on, sorted by time.
pub async fn fetch(
    logs: &aws_sdk_cloudwatchlogs::Client,
    query: &Query,
    start_ms: i64,
) -> anyhow::Result<Vec<Event>> {
    let mut pages = logs
        .filter_log_events()
        .log_group_name(&query.log_group)
        .start_time(start_ms)
        .set_filter_pattern(query.filter.clone())
        .set_log_stream_names(query.streams.clone())
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = or_missing(page, &query.log_group)?;
        events.extend(page.events().iter().map(Event::from_filtered));
    }
    super::sort(&mut events);
    Ok(events)
}

/// A log group call's result; a missing group is `Exit::NotFound` with the way forward.
pub fn or_missing<T, E, R>(result: Result<T, SdkError<E, R>>, log_group: &str) -> anyhow::Result<T>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(value),
        Err(err)
            if err.as_service_error().and_then(|e| e.code())
                == Some("ResourceNotFoundException") =>
        {
            Err(missing_group(log_group))
        }
        Err(err) => {
            Err(crate::aws::error(err)).with_context(|| format!("reading log group {log_group}"))
        }
    }
}

fn missing_group(log_group: &str) -> anyhow::Error {
    fail(
        Exit::NotFound,
        format!(
            "log group {log_group} does not exist: the environment is not deployed (or was torn \
             down); check the --env name or deploy it with `wsctl deploy`"
        ),
    )
}
