//! The deploy lock of an environment, held in AWS so that two operators or two CI jobs never
//! change one environment at once (`deploy`, `rollback`, `teardown` and `scale` take it).
//!
//! Why DynamoDB: taking an expired lock over must be conditional on the expired value, so two
//! takers cannot both win. A DynamoDB item written with a condition expression gives exactly
//! that (and create-if-absent, renew-if-mine, delete-if-mine); an SSM parameter only has
//! create-if-absent (`Overwrite=false`), so its takeover would be delete-then-create, a race.
//! One on-demand table per account and region ([`table`]), created by the first wsctl that
//! needs it, holds one item per environment, keyed by the environment's stack name: the lock
//! exists before the stack does (a first deploy) and after it is gone (a teardown).
//!
//! The lock is a lease ([`lease`]): the holder renews it in the background while it works, so
//! a holder that was killed (`kill -9`, a CI runner lost) leaves a lock that expires by itself.
//! Every exit path of the holder releases it ([`Held`] releases when dropped); only a process
//! killed outright leaves it to expire.

pub mod holder;
pub mod table;

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::Utc;
use serde_json::json;

use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
pub use holder::Holder;

/// The item's key attribute: the environment's stack name.
pub const KEY: &str = "lock_id";
/// How long a lease runs without a renewal. `WSCTL_LOCK_LEASE_SECONDS` shortens it (tests of
/// a killed holder); renewals come every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// How often a waiting operation looks at the lock again.
const POLL: Duration = Duration::from_secs(2);

/// The lease in force: [`DEFAULT_LEASE`], or `WSCTL_LOCK_LEASE_SECONDS`.
pub fn lease() -> anyhow::Result<Duration> {
    match std::env::var("WSCTL_LOCK_LEASE_SECONDS") {
        Err(_) => Ok(DEFAULT_LEASE),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs >= 3 => Ok(Duration::from_secs(secs)),
            _ => Err(fail(
                Exit::Usage,
                format!(
                    "WSCTL_LOCK_LEASE_SECONDS={text:?} is not a number of seconds of at least 3"
                ),
            )),
        },
    }
}

/// The lock of one environment.
#[derive(Clone)]
pub struct Lock {
    pub table: table::Table,
    /// The item's key (the environment's stack name).
    pub key: String,
    /// The environment's name, for messages.
    pub environment: String,
}

/// What a conditional write found.
enum Written {
    Yes,
    /// The condition failed: someone else's lock is there (or it changed meanwhile).
    Taken,
}

impl Lock {
    pub fn new(table: table::Table, key: &str, environment: &str) -> Self {
        Self {
            table,
            key: key.to_owned(),
            environment: environment.to_owned(),
        }
    }

    /// The current holder, read consistently; `None` when the environment is not locked.
    pub async fn holder(&self) -> anyhow::Result<Option<Holder>> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .key(KEY, AttributeValue::S(self.key.clone()))
            .consistent_read(true)
            .send()
            .await
            .aws_context(|| self.context("reading"))?;
        Ok(out.item().and_then(Holder::from_item))
    }

    /// Takes the lock for `holder`, waiting up to `wait` while someone else holds it (showing
    /// who); fails with exit 6 naming the holder when it is still held after that.
    pub async fn acquire(
        &self,
        mut holder: Holder,
        lease: Duration,
        wait: Duration,
        progress: &Progress,
        interrupt: &Interrupt,
    ) -> anyhow::Result<Held> {
        self.table.ensure().await?;
        let step = progress.step(format!("lock {}", self.environment));
        let deadline = tokio::time::Instant::now() + wait;
        let mut shown: Option<String> = None;
        loop {
            let now = Utc::now();
            holder.since = now;
            holder.expires = now + holder::lease_delta(lease);
            let current = match self.put(&holder, None).await? {
                Written::Yes => break,
                Written::Taken => match self.holder().await? {
                    // Released between our write and our read: try again at once.
                    None => continue,
                    Some(current) => current,
                },
            };
            if current.expired(now) {
                // Conditional on the expired value: of two takers, one wins.
                if let Written::Yes = self.put(&holder, Some(&current)).await? {
                    step.println(format!(
                        "took over an expired lock: {}",
                        current.describe(now)
                    ));
                    progress.event(
                        "lock_takeover",
                        json!({"environment": self.environment, "previous": current}),
                    );
                    break;
                }
                continue;
            }
            if tokio::time::Instant::now() >= deadline {
                step.fail(format!("held by {}", current.who));
                return Err(fail(Exit::Superseded, self.held_message(&current, wait)));
            }
            if shown.as_deref() != Some(current.id.as_str()) {
                step.println(format!(
                    "waiting for the lock (up to {}): held by {}",
                    humantime::format_duration(wait),
                    current.describe(now)
                ));
                progress.event(
                    "lock_wait",
                    json!({"environment": self.environment, "holder": current}),
                );
                shown = Some(current.id.clone());
            }
            step.set_message(format!("held by {}", current.who));
            tokio::select! {
                () = tokio::time::sleep(POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now()))) => {}
                () = interrupt.wait() => {
                    step.fail("interrupted while waiting");
                    return Err(fail(
                        Exit::Interrupted,
                        format!(
                            "interrupted while waiting for the lock of {} (held by {}); nothing \
                             was changed",
                            self.environment, current.who
                        ),
                    ));
                }
            }
        }
        step.finish(format!(
            "held by this {} (lease {})",
            holder.operation,
            humantime::format_duration(lease)
        ));
        progress.event(
            "lock_acquired",
            json!({"environment": self.environment, "holder": holder}),
        );
        Ok(Held::start(self.clone(), holder, lease, progress.clone()))
    }

    fn held_message(&self, current: &Holder, wait: Duration) -> String {
        let waited = if wait.is_zero() {
            "wait for it with --lock-wait 10m".to_owned()
        } else {
            format!(
                "waited {}; wait longer with --lock-wait",
                humantime::format_duration(wait)
            )
        };
        format!(
            "environment {} is locked by another operation: {}. Nothing was changed; {waited}, \
             or, if that process is gone, remove the lock with `wsctl unlock --env {}` (it also \
             expires by itself when its lease runs out)",
            self.environment,
            current.describe(Utc::now()),
            self.environment
        )
    }

    /// Writes `holder`'s item if the environment is unlocked (`over: None`) or still holds
    /// exactly `over` (a takeover of an expired lease).
    async fn put(&self, holder: &Holder, over: Option<&Holder>) -> anyhow::Result<Written> {
        let mut request = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(holder.to_item(&self.key, &self.environment)));
        request = match over {
            None => request.condition_expression("attribute_not_exists(#key)"),
            Some(expired) => request
                .condition_expression("holder_id = :seen AND expires_at = :seen_expiry")
                .expression_attribute_values(":seen", AttributeValue::S(expired.id.clone()))
                .expression_attribute_values(
                    ":seen_expiry",
                    AttributeValue::N(expired.expires.timestamp_millis().to_string()),
                ),
        };
        if over.is_none() {
            request = request.expression_attribute_names("#key", KEY);
        }
        written(request.send().await, || self.context("taking"))
    }

    /// Extends `holder`'s lease to `expires`, if it still holds the lock.
    async fn renew(&self, id: &str, expires: chrono::DateTime<Utc>) -> anyhow::Result<Written> {
        let sent = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(KEY, AttributeValue::S(self.key.clone()))
            .update_expression("SET expires_at = :expires")
            .condition_expression("holder_id = :me")
            .expression_attribute_values(
                ":expires",
                AttributeValue::N(expires.timestamp_millis().to_string()),
            )
            .expression_attribute_values(":me", AttributeValue::S(id.to_owned()))
            .send()
            .await;
        written(sent, || self.context("renewing"))
    }

    /// Deletes the item if holder `id` still holds it.
    async fn delete(&self, id: &str) -> anyhow::Result<Written> {
        let sent = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .key(KEY, AttributeValue::S(self.key.clone()))
            .condition_expression("holder_id = :holder")
            .expression_attribute_values(":holder", AttributeValue::S(id.to_owned()))
            .send()
            .await;
        written(sent, || self.context("releasing"))
    }

    /// Removes `seen`'s lock (`wsctl unlock`); exit 6 when the lock changed since it was shown.
    pub async fn remove(&self, seen: &Holder) -> anyhow::Result<()> {
        match self.delete(&seen.id).await? {
            Written::Yes => Ok(()),
            Written::Taken => Err(fail(
                Exit::Superseded,
                format!(
                    "the lock of {} changed while you were asked (released, renewed into a new \
                     holder, or taken over); nothing was removed: run `wsctl unlock --env {}` \
                     again to see who holds it now",
                    self.environment, self.environment
                ),
            )),
        }
    }

    fn context(&self, doing: &str) -> String {
        format!(
            "{doing} the deploy lock of {} (DynamoDB table {}, item {})",
            self.environment, self.table.name, self.key
        )
    }
}

/// A conditional write's answer: done, or its condition failed (the lock is someone else's).
fn written<T, E>(
    sent: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, HttpResponse>>,
    context: impl FnOnce() -> String,
) -> anyhow::Result<Written>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(Written::Yes),
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(Written::Taken)
        }
        Err(err) => Err(crate::aws::error(err)).with_context(context),
    }
}

/// A lock this process holds, renewed in the background until [`Held::release`].
pub struct Held {
    lock: Lock,
    holder: Holder,
    renewer: tokio::task::JoinHandle<()>,
    progress: Progress,
}

impl Held {
    fn start(lock: Lock, holder: Holder, lease: Duration, progress: Progress) -> Self {
        let renewer = {
            let lock = lock.clone();
            let progress = progress.clone();
            let id = holder.id.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let expires = Utc::now() + holder::lease_delta(lease);
                    match lock.renew(&id, expires).await {
                        Ok(Written::Yes) => {}
                        Ok(Written::Taken) => {
                            let why = format!(
                                "warning: the lock of {} was removed or taken over while this \
                                 operation ran (`wsctl unlock`, or the lease ran out); another \
                                 operation may now change the environment too",
                                lock.environment
                            );
                            progress.println(&why);
                            progress.event(
                                "lock_lost",
                                json!({"environment": lock.environment, "message": why}),
                            );
                            return;
                        }
                        // A failed renewal is retried at the next tick, well inside the lease.
                        Err(err) => progress.println(format!("warning: {err:#}; retrying")),
                    }
                }
            })
        };
        Self {
            lock,
            holder,
            renewer,
            progress,
        }
    }

    /// Stops renewing and deletes the lock (unless it is no longer ours).
    async fn release(&self) {
        self.renewer.abort();
        match self.lock.delete(&self.holder.id).await {
            Ok(Written::Yes) => self.progress.event(
                "lock_released",
                json!({"environment": self.lock.environment}),
            ),
            Ok(Written::Taken) => {}
            Err(err) => self.progress.println(format!(
                "warning: {err:#}; the lock expires by itself at the end of its lease"
            )),
        }
    }
}

/// Released when dropped, so every way out of the command that holds it releases it: a
/// return, an error (`?`), Ctrl-C (which the waits turn into one of those), a panic. Only a
/// process killed outright leaves the lock to expire.
impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The release is one DynamoDB call: wait for it here, on the multi-threaded runtime
        // `main` runs (a test's single-threaded runtime cannot block: the lease runs out).
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| runtime.block_on(self.release()));
        }
    }
}

/// Takes `env`'s lock for `operation`, as the caller AWS knows (its STS identity), waiting up
/// to `wait`: the first thing every command that changes an environment does.
pub async fn take(
    clients: &crate::clients::Clients,
    env: &crate::settings::Environment,
    operation: &str,
    commit: Option<String>,
    wait: Duration,
    progress: &Progress,
    interrupt: &Interrupt,
) -> anyhow::Result<Held> {
    let lease = lease()?;
    let who = match clients.sts.get_caller_identity().send().await {
        Ok(identity) => identity.arn().unwrap_or_default().to_owned(),
        // The command's own calls will name the credentials problem; the lock still says who.
        Err(_) => std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
    };
    let holder = Holder::this_process(operation, who, commit, Utc::now(), lease);
    let lock = Lock::new(
        table::Table::new(clients.dynamodb.clone()),
        &env.stack_name,
        &env.name,
    );
    lock.acquire(holder, lease, wait, progress, interrupt).await
}

/// `--lock-wait`: how long to wait for another operation's lock ("0" fails at once).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 90s, 10m, 1h; 0 fails at once)"))
}
