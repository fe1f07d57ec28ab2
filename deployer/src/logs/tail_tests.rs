//! `--follow` on a recorded live tail session (the emulator has no StartLiveTail): history,
//! then the events the session pushes, with the poll that bridges its start, a sampled push,
//! the session's end, and a refused restart that hands over to polling; each line once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput;
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::{FilteredLogEvent, LogGroup};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::json;

use super::fetch::{self, Query};
use super::follow::Follower;
use super::tail::Tail;

const GROUP: &str = "/ecs/agenticai-websocket-prod";
const ARN: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/agenticai-websocket-prod";
const STREAM: &str = "ws/websocket/1a2b3c4d";

fn polled(id: &str, timestamp: i64, message: &str) -> FilteredLogEvent {
    FilteredLogEvent::builder()
        .event_id(id)
        .log_stream_name(STREAM)
        .timestamp(timestamp)
        .ingestion_time(timestamp + 5)
        .message(message)
        .build()
}

fn page(events: &[(&str, i64, &str)]) -> FilterLogEventsOutput {
    let mut output = FilterLogEventsOutput::builder();
    for (id, ts, message) in events {
        output = output.events(polled(id, *ts, message));
    }
    output.build()
}

/// One event stream frame as CloudWatch sends it.
fn frame(event_type: &'static str, payload: &serde_json::Value) -> Vec<u8> {
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut bytes = Vec::new();
    write_message_to(&message, &mut bytes).expect("frame encodes");
    bytes
}

fn pushed(timestamp: i64, message: &str) -> serde_json::Value {
    json!({"logStreamName": STREAM, "logGroupIdentifier": ARN, "message": message,
           "timestamp": timestamp, "ingestionTime": timestamp + 5})
}

/// A session that starts, pushes two updates (the second sampled) and ends.
fn session() -> Vec<u8> {
    let mut body = frame(
        "sessionStart",
        &json!({"sessionId": "s-1", "logGroupIdentifiers": [ARN]}),
    );
    body.extend(frame(
        "sessionUpdate",
        &json!({"sessionMetadata": {"sampled": false},
                "sessionResults": [pushed(3_000, "bridged"), pushed(4_000, "live one")]}),
    ));
    body.extend(frame(
        "sessionUpdate",
        &json!({"sessionMetadata": {"sampled": true},
                "sessionResults": [pushed(5_000, "twice"), pushed(5_000, "twice")]}),
    ));
    body
}

#[tokio::test]
async fn follows_a_live_session_then_polls_when_a_restart_is_refused() {
    let groups = mock!(aws_sdk_cloudwatchlogs::Client::describe_log_groups).then_output(|| {
        DescribeLogGroupsOutput::builder()
            .log_groups(
                LogGroup::builder()
                    .log_group_name(GROUP)
                    .arn(format!("{ARN}:*"))
                    .log_group_arn(ARN)
                    .build(),
            )
            .build()
    });
    let filter = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .sequence()
        // the history before --follow
        .output(|| page(&[("e1", 1_000, "history one"), ("e2", 2_000, "history two")]))
        // the poll after the session started: one new event, which the session pushes too
        .output(|| {
            page(&[
                ("e1", 1_000, "history one"),
                ("e2", 2_000, "history two"),
                ("e3", 3_000, "bridged"),
            ])
        })
        // polling after the restart was refused: all but the last were pushed live
        .output(|| {
            page(&[
                ("e3", 3_000, "bridged"),
                ("e4", 4_000, "live one"),
                ("e5", 5_000, "twice"),
                ("e6", 5_000, "twice"),
                ("e7", 6_000, "polled after"),
            ])
        })
        .build();
    let live = mock!(aws_sdk_cloudwatchlogs::Client::start_live_tail)
        .sequence()
        .http_response(|| HttpResponse::new(StatusCode::try_from(200).expect("200 is a status"), SdkBody::from(session())))
        .http_status(
            400,
            Some(
                r#"{"__type":"AccessDeniedException","message":"not authorized to perform logs:StartLiveTail"}"#
                    .into(),
            ),
        )
        .build();
    let logs = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&groups, &filter, &live]
    );

    let query = Query {
        log_group: GROUP.into(),
        ..Query::default()
    };
    let mut follower = Follower::new(0);
    let mut lines: Vec<String> = follower
        .admit(fetch::fetch(&logs, &query, 0).await.expect("history"))
        .into_iter()
        .map(|e| e.message)
        .collect();
    let notes = Arc::new(Mutex::new(Vec::<String>::new()));
    let tail = Tail {
        logs: &logs,
        query: &query,
        no_live: None,
        poll_interval: Duration::from_millis(10),
    };
    let run = tail.run(
        &mut follower,
        |events| {
            lines.extend(events.iter().map(|e| e.message.clone()));
            // The reader goes away once the last line is there.
            !lines.iter().any(|l| l == "polled after")
        },
        |note| notes.lock().expect("notes").push(note.to_owned()),
    );
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the tail reaches the last line")
        .expect("the tail runs without error");

    assert_eq!(
        lines,
        [
            "history one",
            "history two",
            "bridged",
            "live one",
            "twice",
            "twice",
            "polled after"
        ]
    );
    // The sample warning comes from the session's second push, before polling took over.
    let notes = notes.lock().expect("notes");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("sample") && notes[0].contains("--filter"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("polling") && notes[1].contains("AccessDeniedException"),
        "{notes:?}"
    );
}

#[tokio::test]
async fn an_emulator_endpoint_is_followed_by_polling_without_trying_live_tail() {
    let filter = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_output(|| page(&[("e1", 1_000, "polled")]));
    // No StartLiveTail or DescribeLogGroups rule: calling either fails the test.
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&filter]);
    let query = Query {
        log_group: GROUP.into(),
        ..Query::default()
    };
    let mut notes = Vec::new();
    let mut lines = Vec::new();
    let tail = Tail {
        logs: &logs,
        query: &query,
        no_live: super::live::unreachable_reason(Some("http://127.0.0.1:5000")),
        poll_interval: Duration::from_millis(10),
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        tail.run(
            &mut Follower::new(0),
            |events| {
                lines.extend(events.iter().map(|e| e.message.clone()));
                lines.is_empty()
            },
            |note| notes.push(note.to_owned()),
        ),
    )
    .await
    .expect("polls")
    .expect("no error");
    assert_eq!(lines, ["polled"]);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("polling every 0.01 s") && notes[0].contains("127.0.0.1:5000"));
}
