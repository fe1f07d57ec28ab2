//! The `--output ndjson` sink: one JSON object a line on stdout for every step and every AWS
//! event a command shows (stack events, deployment state changes, stopped tasks, lock waits,
//! smoke checks); the command's result document, the one `--output json` prints, follows as
//! the last line (`output::print_json`). A pipeline shows the lines as progress and keeps them as its log.
//!
//! Commands do not print events: [`crate::progress::Progress`] forwards its steps, and its
//! `event` calls, here when the output is ndjson, so text progress and events never drift.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// Where the event lines go (stdout; a buffer in tests). Cheap to clone.
#[derive(Clone)]
pub struct Events {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Events {
    pub fn stdout() -> Self {
        Self::to(Box::new(std::io::stdout()))
    }

    pub fn to(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// One event: `{"event": KIND, "time": ..., FIELDS...}` (an object's fields are merged in,
    /// any other value goes under "data").
    pub fn emit(&self, kind: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("event".into(), kind.into());
        line.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        match fields {
            Value::Object(fields) => line.extend(fields),
            Value::Null => {}
            other => {
                line.insert("data".into(), other);
            }
        }
        self.write(&Value::Object(line));
    }

    fn write(&self, value: &Value) {
        let Ok(mut out) = self.out.lock() else { return };
        // A closed pipe ends the stream, not the command.
        let _ = serde_json::to_writer(&mut *out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An `Events` writing into a buffer, and the buffer.
    pub fn buffer() -> (Events, Arc<Mutex<Vec<u8>>>) {
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buffer").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let shared = Arc::new(Mutex::new(Vec::new()));
        (Events::to(Box::new(Shared(shared.clone()))), shared)
    }

    pub fn lines(buffer: &Arc<Mutex<Vec<u8>>>) -> Vec<Value> {
        String::from_utf8(buffer.lock().expect("buffer").clone())
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn each_event_is_one_line_of_json() {
        let (events, buffer) = buffer();
        events.emit(
            "step",
            serde_json::json!({"step": "stack", "state": "started"}),
        );
        events.emit("note", Value::String("two\nlines".into()));
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["event"], "step");
        assert_eq!(lines[0]["step"], "stack");
        assert!(lines[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(lines[1]["data"], "two\nlines");
    }
}
