//! `--follow`: new events as they arrive, from a live tail session where the API offers one
//! and from FilterLogEvents polls otherwise (an emulator, a missing logs:StartLiveTail
//! permission, a session that broke). Runs until `show` reports its output closed; Ctrl-C
//! is the caller's, which drops this future (it only reads).

use std::time::Duration;

use super::fetch::{self, Query};
use super::follow::Follower;
use super::{Event, live};

/// How long a session may take to start before polling takes over.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Tail<'a> {
    pub logs: &'a aws_sdk_cloudwatchlogs::Client,
    pub query: &'a Query,
    /// Why live tail is not tried (`live::unreachable_reason`); `None` tries it.
    pub no_live: Option<String>,
    pub poll_interval: Duration,
}

/// How a live session ended.
enum SessionEnd {
    /// After three hours, or closed by CloudWatch: a new one can take over.
    Ended,
    /// It could not start or it broke: poll from now on.
    Failed(anyhow::Error),
    /// `show` reported its output closed.
    OutputClosed,
}

impl Tail<'_> {
    /// Follows from where `follower` stands. `show` prints events and returns `false` once its
    /// output is closed; `note` tells the operator how the tail runs (stderr).
    pub async fn run(
        self,
        follower: &mut Follower,
        mut show: impl FnMut(&[Event]) -> bool,
        mut note: impl FnMut(&str),
    ) -> anyhow::Result<()> {
        let polling = |why: &str| {
            format!(
                "following by polling every {} s ({why})",
                self.poll_interval.as_secs_f64()
            )
        };
        let mut live_arn = match &self.no_live {
            Some(why) => {
                note(&polling(why));
                None
            }
            None => match live::group_arn(self.logs, &self.query.log_group).await {
                Ok(arn) => Some(arn),
                Err(err) => {
                    note(&polling(&format!("live tail: {err:#}")));
                    None
                }
            },
        };
        let mut warned_sampled = false;
        loop {
            if let Some(arn) = &live_arn {
                let end = self
                    .session(arn, follower, &mut show, &mut note, &mut warned_sampled)
                    .await?;
                match end {
                    SessionEnd::OutputClosed => return Ok(()),
                    SessionEnd::Ended => {}
                    SessionEnd::Failed(err) => {
                        note(&polling(&format!("live tail: {err:#}")));
                        live_arn = None;
                    }
                }
            }
            tokio::time::sleep(self.poll_interval).await;
            if live_arn.is_none() {
                let events = fetch::fetch(self.logs, self.query, follower.next_start()).await?;
                if !show(&follower.admit(events)) {
                    return Ok(());
                }
            }
        }
    }

    /// One live session: started, bridged with a poll to where the follower stands, then its
    /// pushes until it ends. `Err` only for the bridging poll (as any poll would fail).
    async fn session(
        &self,
        arn: &str,
        follower: &mut Follower,
        show: &mut impl FnMut(&[Event]) -> bool,
        note: &mut impl FnMut(&str),
        warned_sampled: &mut bool,
    ) -> anyhow::Result<SessionEnd> {
        let started = tokio::time::timeout(START_TIMEOUT, live::start(self.logs, arn, self.query))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in {START_TIMEOUT:?}")));
        let mut session = match started {
            Ok(session) => session,
            Err(err) => return Ok(SessionEnd::Failed(err)),
        };
        // The events between the last read and the session's start.
        let bridge = fetch::fetch(self.logs, self.query, follower.next_start()).await?;
        if !show(&follower.admit(bridge)) {
            return Ok(SessionEnd::OutputClosed);
        }
        loop {
            let update = match session.next().await {
                Ok(Some(update)) => update,
                Ok(None) => return Ok(SessionEnd::Ended),
                Err(err) => return Ok(SessionEnd::Failed(err.context("stopped"))),
            };
            if update.sampled && !*warned_sampled {
                *warned_sampled = true;
                note(
                    "live tail is showing a sample: more than 500 lines a second match; \
                     narrow it with --filter or --task",
                );
            }
            if !show(&follower.admit_live(update.events)) {
                return Ok(SessionEnd::OutputClosed);
            }
        }
    }
}
