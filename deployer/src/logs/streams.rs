//! `--task ID`: the log streams of one task. awslogs names streams `prefix/container/task-id`,
//! and operators paste full or shortened task ids, so streams are matched on their last part.

use aws_sdk_cloudwatchlogs::types::OrderBy;

use crate::exit::{Exit, fail};

/// How many streams (most recent first) are searched for the task.
const SEARCHED_STREAMS: usize = 1000;

/// The streams whose task id starts with `task` (or whose whole name does).
pub async fn for_task(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    task: &str,
) -> anyhow::Result<Vec<String>> {
    // A task ARN is accepted too: its id is the last part.
    let task = crate::live_service::task_id(task);
    let mut pages = logs
        .describe_log_streams()
        .log_group_name(log_group)
        .order_by(OrderBy::LastEventTime)
        .descending(true)
        .into_paginator()
        .send();
    let mut matched = Vec::new();
    let mut searched = 0;
    while let Some(page) = pages.next().await {
        let page = super::fetch::or_missing(page, log_group)?;
        for name in page
            .log_streams()
            .iter()
            .filter_map(|s| s.log_stream_name())
        {
            let id = crate::live_service::task_id(name);
            if id.starts_with(task) || name.starts_with(task) {
                matched.push(name.to_owned());
            }
        }
        searched += page.log_streams().len();
        // FilterLogEvents takes at most 100 stream names.
        if searched >= SEARCHED_STREAMS || matched.len() >= 100 {
            break;
        }
    }
    if matched.is_empty() {
        return Err(fail(
            Exit::NotFound,
            format!(
                "no log stream in {log_group} belongs to task '{task}'; `wsctl status` lists the \
                 running tasks"
            ),
        ));
    }
    matched.truncate(100);
    Ok(matched)
}
