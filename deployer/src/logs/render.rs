//! How one log event is shown. The server logs JSON objects (tracing-subscriber's JSON format,
//! fields flattened: `timestamp`, `level`, `message`, `target`, then its own fields); those are
//! shown as `time LEVEL message key=value...`. Other lines are shown as they are.

use serde_json::{Map, Value};

use super::Event;
use crate::when;

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `task  time  LEVEL  message  key=value`.
    Readable,
    /// `task  message` with the message exactly as logged.
    Raw,
    /// One JSON object a line.
    Json,
}

/// Fields shown in their own column or not at all.
const SHOWN_APART: [&str; 4] = ["timestamp", "level", "message", "target"];

pub fn line(event: &Event, style: Style) -> String {
    match style {
        Style::Raw => format!("{}  {}", event.task(), event.message.trim_end()),
        Style::Readable => readable(event),
        Style::Json => json(event).to_string(),
    }
}

fn event_time(event: &Event) -> String {
    when::from_millis(event.timestamp).map_or_else(
        || event.timestamp.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn readable(event: &Event) -> String {
    let task = event.task();
    let Some(object) = parse_object(&event.message) else {
        return format!(
            "{task}  {}  {}",
            event_time(event),
            event.message.trim_end()
        );
    };
    let time = object
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || event_time(event),
            |t| {
                t.to_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            },
        );
    let level = object.get("level").and_then(Value::as_str).unwrap_or("-");
    // Older tracing JSON nests the event's fields under "fields".
    let nested = object.get("fields").and_then(Value::as_object);
    let message = object
        .get("message")
        .or_else(|| nested.and_then(|f| f.get("message")))
        .map(text)
        .unwrap_or_default();
    let mut out = format!("{task}  {time}  {level:<5}  {message}");
    let extra = object
        .iter()
        .filter(|(k, _)| !SHOWN_APART.contains(&k.as_str()) && k.as_str() != "fields")
        .chain(
            nested
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "message"),
        );
    for (key, value) in extra {
        out.push_str(&format!("  {key}={}", text(value)));
    }
    out
}

fn json(event: &Event) -> Value {
    let mut out = Map::new();
    out.insert("time".into(), Value::String(event_time(event)));
    out.insert("timestamp_ms".into(), Value::from(event.timestamp));
    out.insert("task".into(), Value::String(event.task().to_owned()));
    out.insert("stream".into(), Value::String(event.stream.clone()));
    out.insert("event_id".into(), Value::String(event.event_id.clone()));
    out.insert(
        "message".into(),
        Value::String(event.message.trim_end().to_owned()),
    );
    if let Some(object) = parse_object(&event.message) {
        out.insert("fields".into(), Value::Object(object));
    }
    Value::Object(out)
}

fn parse_object(message: &str) -> Option<Map<String, Value>> {
    let trimmed = message.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    match serde_json::from_str(trimmed) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// A JSON value as text: strings without quotes, everything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> Event {
        Event {
            timestamp: 1_700_000_000_123,
            ingestion_time: 0,
            event_id: "1".into(),
            stream: "ws/websocket/0123456789abcdef".into(),
            message: message.into(),
        }
    }

    #[test]
    fn server_json_lines_read_as_time_level_message_fields() {
        let e = event(
            r#"{"timestamp":"2024-05-01T12:00:00.250000Z","level":"INFO","message":"client connected","target":"ws_server::hub","connection_id":"c-1","clients":3}"#,
        );
        let shown = line(&e, Style::Readable);
        assert!(
            shown.starts_with(
                "0123456789abcdef  2024-05-01T12:00:00.250Z  INFO   client connected  "
            ),
            "{shown}"
        );
        // The server's own fields follow, each once; the target is left out.
        assert!(
            shown.contains("  connection_id=c-1") && shown.contains("  clients=3"),
            "{shown}"
        );
        assert!(!shown.contains("ws_server::hub"), "{shown}");
    }

    #[test]
    fn nested_fields_and_plain_lines_are_readable_too() {
        let nested = event(
            r#"{"timestamp":"2024-05-01T12:00:00Z","level":"WARN","fields":{"message":"slow","ms":900}}"#,
        );
        assert_eq!(
            line(&nested, Style::Readable),
            "0123456789abcdef  2024-05-01T12:00:00.000Z  WARN   slow  ms=900"
        );
        let plain = event("listening on 0.0.0.0:8080\n");
        assert_eq!(
            line(&plain, Style::Readable),
            "0123456789abcdef  2023-11-14T22:13:20.123Z  listening on 0.0.0.0:8080"
        );
    }

    #[test]
    fn raw_and_json_keep_the_message() {
        let e = event(r#"{"level":"ERROR","message":"boom"}"#);
        assert_eq!(
            line(&e, Style::Raw),
            r#"0123456789abcdef  {"level":"ERROR","message":"boom"}"#
        );
        let value: Value = serde_json::from_str(&line(&e, Style::Json)).expect("json");
        assert_eq!(value["task"], "0123456789abcdef");
        assert_eq!(value["fields"]["level"], "ERROR");
        assert_eq!(value["message"], r#"{"level":"ERROR","message":"boom"}"#);
    }
}
