//! Progress for long work, on stderr: spinners and bars when stderr is a terminal, plain
//! timestamped-free lines otherwise (CI logs, pipes). Every command shows its steps the same
//! way, so `deploy`, `rollback` and `status --wait` read alike.
//!
//! A [`Step`] is one named phase ("build image", "stack"): it shows what it is doing now and
//! ends with a ✓ or ✗ line that carries its duration, which the summary reuses.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::Events;
use crate::output;

/// The progress display of one command run. Cheap to clone; clones draw on the same screen.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    interactive: bool,
    /// `--output ndjson`: every step and event also goes there as a JSON line.
    events: Option<Events>,
}

impl Progress {
    /// Spinners if stderr is a terminal (and not CI), plain lines otherwise; with
    /// `--output ndjson`, every step and event also as a JSON line on stdout.
    pub fn new(format: output::Format) -> Self {
        let progress = Self::with_mode(output::interactive());
        match format {
            output::Format::Ndjson => progress.with_events(Events::stdout()),
            _ => progress,
        }
    }

    /// Plain lines only (tests).
    #[cfg(test)]
    pub fn plain() -> Self {
        Self::with_mode(false)
    }

    fn with_mode(interactive: bool) -> Self {
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            interactive,
            events: None,
        }
    }

    /// Also sends every step and event to `events` (`--output ndjson`).
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = Some(events);
        self
    }

    /// A structured event for `--output ndjson` (an AWS event, a lock wait, a smoke check);
    /// nothing in the other formats, where the text line says it.
    pub fn event(&self, kind: &str, fields: serde_json::Value) {
        if let Some(events) = &self.events {
            events.emit(kind, fields);
        }
    }

    /// Prints one line to stderr, above any spinner.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.interactive {
            let _ = self.multi.println(line.as_ref());
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Runs `f` (e.g. a prompt) with spinners hidden.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Starts a named step: a spinner on a terminal, a "→ name" line elsewhere.
    pub fn step(&self, name: impl Into<String>) -> Step {
        let name = name.into();
        let bar = if self.interactive {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(spinner_style());
            bar.set_prefix(name.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            eprintln!("→ {name}");
            ProgressBar::hidden()
        };
        self.event(
            "step",
            serde_json::json!({"step": name, "state": "started"}),
        );
        Step {
            progress: self.clone(),
            bar,
            name,
            started: Instant::now(),
            done: false,
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// One named phase of a command. Ends with [`Step::finish`] or [`Step::fail`]; dropped
/// unfinished (an error propagated with `?`), it just disappears from the screen.
pub struct Step {
    progress: Progress,
    bar: ProgressBar,
    name: String,
    started: Instant,
    done: bool,
}

impl Step {
    /// What the step is doing now: the spinner's message; not printed in plain mode.
    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        self.bar.set_message(message);
    }

    /// A line of detail: the spinner's message on a terminal, an indented line elsewhere.
    /// For chatty output (build steps) whose every line matters in a log.
    pub fn detail(&self, line: impl AsRef<str>) {
        if self.progress.interactive {
            self.bar.set_message(line.as_ref().to_owned());
        } else {
            eprintln!("  {}", line.as_ref());
        }
    }

    /// A line that stays on screen in both modes (an event, a warning), indented under the step.
    pub fn println(&self, line: impl AsRef<str>) {
        self.progress.println(format!("  {}", line.as_ref()));
        self.event("message", serde_json::json!({"message": line.as_ref()}));
    }

    /// A structured event of this step (`--output ndjson`), e.g. a stack event.
    pub fn event(&self, kind: &str, fields: serde_json::Value) {
        let mut fields = fields;
        if let Some(object) = fields.as_object_mut() {
            object.insert("step".into(), self.name.clone().into());
        }
        self.progress.event(kind, fields);
    }

    /// Ends the step as done: "✓ name: message (1.2s)". Returns how long it took.
    pub fn finish(mut self, message: impl AsRef<str>) -> Duration {
        self.end('✓', message.as_ref())
    }

    /// Ends the step as failed: "✗ name: message (1.2s)". Returns how long it took.
    pub fn fail(mut self, message: impl AsRef<str>) -> Duration {
        self.end('✗', message.as_ref())
    }

    fn end(&mut self, mark: char, message: &str) -> Duration {
        let elapsed = self.started.elapsed();
        self.done = true;
        self.bar.finish_and_clear();
        let sep = if message.is_empty() { "" } else { ": " };
        self.event(
            "step",
            serde_json::json!({
                "state": if mark == '✓' { "done" } else { "failed" },
                "message": message,
                "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            }),
        );
        self.progress.println(format!(
            "{mark} {}{sep}{message} ({})",
            self.name,
            format_duration(elapsed)
        ));
        elapsed
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.done {
            self.bar.finish_and_clear();
        }
    }
}

/// "850ms", "4.2s", "2m05s": short and stable for summaries and logs.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let secs = d.as_secs();
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
