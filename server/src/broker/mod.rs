//! The cross-task hub on Redis-compatible storage (Valkey, Redis 7+, ElastiCache Serverless),
//! chosen by `WS_REDIS_URL`.
//!
//! - `scripts`: the keys and the Lua scripts: a publish assigns the offset, stores the update
//!   in the project's bounded history and sends it on the project's channel in one step.
//! - `link`: the task's pub/sub connection (channels of the projects its clients follow,
//!   of the users they authenticated as, and the broadcast channel).
//! - here: the [`Hub`] on top: publishes and recoveries through a command connection
//!   (redis-rs `ConnectionManager`, or `ClusterConnection` in cluster mode, both reconnect by
//!   themselves), live messages from the link into the task's [`Registry`].
//!
//! A recovery (a subscribe, or a repair after messages were lost) first makes sure the
//! project's channel is subscribed, then reads position and history: live updates published
//! after the read arrive on the channel, those before are in what was read, and the registry
//! merges both by offset.

pub(crate) mod link;
pub(crate) mod scripts;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use serde_json::value::RawValue;
use tokio::sync::{OnceCell, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::BrokerConfig;
use crate::hub::registry::{Finish, Repair};
use crate::hub::{
    BrokerStatus, ConnId, Hub, Outcome, Position, PublishError, PublishFuture, Published, Registry,
    SubscribeRequest, Target, Update, UserReady, new_epoch,
};
use crate::metrics::{Metrics, add};
use crate::outbox::Outbox;
use crate::protocol::{Since, positioned};
use link::{Cmd, LinkState};

/// Bound on one publish or recovery round trip; past it `POST /publish` answers 503.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// The command connection, made on first use (the broker may be down when the task starts).
#[derive(Clone)]
enum Commands {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// The hub across tasks: local delivery plus Redis pub/sub, positions and history.
pub struct RedisHub {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    config: BrokerConfig,
    client: redis::Client,
    commands: OnceCell<Commands>,
    link: mpsc::UnboundedSender<Cmd>,
    state: watch::Receiver<LinkState>,
    metrics: Arc<Metrics>,
    /// Its own handle, for spawning recoveries from the link's callbacks (which get `&Inner`).
    me: std::sync::Weak<Inner>,
}

/// Why a recovery runs, and so what its result sends.
enum Why {
    Subscribe(Option<Box<RawValue>>),
    Repair,
}

impl RedisHub {
    /// Checks the URL and starts the pub/sub link; connecting happens in the background.
    pub fn new(config: BrokerConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        // redis-rs takes TLS from rustls' process-wide provider. With ring (reqwest, for the
        // JWKS) and aws-lc-rs (the AWS SDK, jsonwebtoken) both compiled in, rustls cannot pick
        // one and panics at the first TLS connect: choose aws-lc-rs, the workspace's backend.
        // An Err only means a provider is already installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let url = config.url.clone().ok_or("WS_REDIS_URL is not set")?;
        let client = redis::Client::open(url.as_str())
            .map_err(|e| format!("WS_REDIS_URL is not a usable Redis URL: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(LinkState::Down {
            since: std::time::Instant::now(),
            error: "connecting".to_owned(),
        });
        let inner = Arc::new_cyclic(|me| Inner {
            registry: Registry::default(),
            config,
            client: client.clone(),
            commands: OnceCell::new(),
            link: tx,
            state,
            metrics,
            me: me.clone(),
        });
        tokio::spawn(link::run(client, inner.clone(), rx, state_tx));
        Ok(Self { inner })
    }
}

impl Inner {
    async fn commands(&self) -> Result<Commands, String> {
        self.commands
            .get_or_try_init(|| async {
                let connect = async {
                    if self.config.cluster {
                        let url = self.config.url.clone().unwrap_or_default();
                        let client = redis::cluster::ClusterClientBuilder::new(vec![url])
                            .connection_timeout(BROKER_TIMEOUT)
                            .response_timeout(BROKER_TIMEOUT)
                            .retries(1)
                            .build()?;
                        Ok(Commands::Cluster(client.get_async_connection().await?))
                    } else {
                        let cfg = redis::aio::ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(BROKER_TIMEOUT))
                            .set_response_timeout(Some(BROKER_TIMEOUT))
                            .set_number_of_retries(1);
                        redis::aio::ConnectionManager::new_with_config(self.client.clone(), cfg)
                            .await
                            .map(Commands::Single)
                    }
                };
                match tokio::time::timeout(BROKER_TIMEOUT, connect).await {
                    Ok(r) => r.map_err(|e: redis::RedisError| e.to_string()),
                    Err(_) => Err("connecting timed out".to_owned()),
                }
            })
            .await
            .cloned()
    }

    /// Runs a script on the command connection, bounded by [`BROKER_TIMEOUT`].
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, String> {
        let run = async {
            match self.commands().await? {
                Commands::Single(mut c) => invoke_on(inv, &mut c).await,
                Commands::Cluster(mut c) => invoke_on(inv, &mut c).await,
            }
        };
        match tokio::time::timeout(BROKER_TIMEOUT, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", BROKER_TIMEOUT.as_secs())),
        }
    }

    /// Reads a project's position, and with `since` the updates after it.
    async fn read(&self, project: &str, since: Option<&Since>) -> Result<Outcome, String> {
        let c = &self.config;
        let mut inv = scripts::RECOVER.prepare_invoke();
        inv.key(scripts::position_key(project))
            .key(scripts::history_key(project))
            .arg(since.map_or(-1, |s| s.offset as i64))
            .arg(since.map_or("", |s| s.epoch.as_str()))
            .arg(c.recovery_max)
            .arg(c.position_ttl.as_secs())
            .arg(new_epoch());
        let mut reply: Vec<redis::Value> = self.invoke(&inv).await?;
        if reply.len() < 3 {
            return Err(format!(
                "unexpected recovery reply of {} items",
                reply.len()
            ));
        }
        let frames = reply.split_off(3);
        let mut head = reply.into_iter();
        let epoch: String = from_value(head.next())?;
        let top: u64 = from_value(head.next())?;
        let status: u64 = from_value(head.next())?;
        let epoch: Arc<str> = Arc::from(epoch);
        Ok(match (status, since) {
            (0, _) | (1, None) => Outcome::Fresh { top, epoch },
            (1, Some(s)) => {
                let mut entries = Vec::with_capacity(frames.len());
                for (i, f) in frames.into_iter().enumerate() {
                    entries.push(Update {
                        offset: s.offset + 1 + i as u64,
                        epoch: epoch.clone(),
                        frame: Utf8Bytes::from(from_value::<String>(Some(f))?),
                    });
                }
                Outcome::Recovered {
                    top,
                    epoch,
                    entries,
                }
            }
            _ => Outcome::Lost { top, epoch },
        })
    }

    /// Makes sure a project's channel is subscribed on the live pub/sub connection.
    async fn ensure_channel(&self, project: &str) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .link
            .send(Cmd::Subscribe(scripts::project_channel(project), tx))
            .is_err()
        {
            return false;
        }
        rx.await.is_ok()
    }

    /// Waits until the link is up (bounded, so a recovery rechecks whether it is still wanted).
    async fn wait_up(&self) {
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            state.wait_for(|s| matches!(s, LinkState::Up)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Subscribe or repair: channel first, then the read, then the merge; retried while the
    /// broker is down, as long as one of the members still waits for it.
    async fn recover(
        self: Arc<Self>,
        project: Arc<str>,
        since: Option<Since>,
        members: Vec<(ConnId, u64)>,
        why: Why,
    ) {
        loop {
            if !members
                .iter()
                .any(|(id, t)| self.registry.is_current(&project, *id, *t))
            {
                return;
            }
            let read = if self.ensure_channel(&project).await {
                self.read(&project, since.as_ref()).await
            } else {
                Err("link stopped".to_owned())
            };
            match read {
                Ok(outcome) => {
                    let finish = match &why {
                        Why::Subscribe(rid) => Finish::Subscribe {
                            request_id: rid.as_deref(),
                        },
                        Why::Repair => Finish::Repair,
                    };
                    for (id, ticket) in &members {
                        if let Some(r) =
                            self.registry
                                .finish(&project, *id, *ticket, finish, outcome.clone())
                        {
                            self.spawn_repair(r);
                        }
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(project = %project, error = %e, "recovery waits for the broker");
                    self.wait_up().await;
                }
            }
        }
    }

    fn spawn_repair(self: &Arc<Self>, r: Repair) {
        let me = self.clone();
        tokio::spawn(me.recover(r.project, Some(r.since), r.members, Why::Repair));
    }

    fn unsubscribe_channels(&self, projects: Vec<Arc<str>>) {
        for p in projects {
            let _ = self
                .link
                .send(Cmd::Unsubscribe(scripts::project_channel(&p)));
        }
    }
}

async fn invoke_on<C: ConnectionLike + Send, T: redis::FromRedisValue>(
    inv: &redis::ScriptInvocation<'_>,
    c: &mut C,
) -> Result<T, String> {
    inv.invoke_async(c).await.map_err(|e| e.to_string())
}

fn from_value<T: redis::FromRedisValue>(v: Option<redis::Value>) -> Result<T, String> {
    let v = v.ok_or("short reply from the broker")?;
    redis::from_redis_value(v).map_err(|e| format!("unexpected reply from the broker: {e}"))
}

impl link::Receiver for Inner {
    fn message(&self, channel: &str, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        if let Some(user) = scripts::channel_user(channel) {
            let d = self
                .registry
                .deliver_user(user, &Utf8Bytes::from(text.to_owned()));
            add(&self.metrics.updates_delivered, d.delivered as u64);
            return;
        }
        let Some(project) = scripts::channel_project(channel) else {
            let d = self.registry.broadcast(&Utf8Bytes::from(text.to_owned()));
            add(&self.metrics.updates_delivered, d.delivered as u64);
            return;
        };
        // "<offset> <epoch> <frame>"
        let mut parts = text.splitn(3, ' ');
        let (Some(offset), Some(epoch), Some(frame)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Ok(offset) = offset.parse::<u64>() else {
            return;
        };
        let update = Update {
            offset,
            epoch: Arc::from(epoch),
            frame: Utf8Bytes::from(frame.to_owned()),
        };
        let (d, repairs) = self.registry.deliver(project, &update);
        add(&self.metrics.updates_delivered, d.delivered as u64);
        if !repairs.is_empty()
            && let Some(me) = self.self_arc()
        {
            for r in repairs {
                me.spawn_repair(r);
            }
        }
    }

    fn reconnected(&self) {
        let repairs = self.registry.repair_all();
        tracing::info!(
            repairs = repairs.len(),
            "repairing subscriptions after the broker came back"
        );
        if let Some(me) = self.self_arc() {
            for r in repairs {
                me.spawn_repair(r);
            }
        }
    }

    fn wanted(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .registry
            .projects()
            .iter()
            .map(|p| scripts::project_channel(p))
            .collect();
        v.extend(
            self.registry
                .users()
                .iter()
                .map(|u| scripts::user_channel(u)),
        );
        v.push(scripts::BROADCAST_CHANNEL.to_owned());
        v
    }

    fn still_wanted(&self, channel: &str) -> bool {
        if let Some(u) = scripts::channel_user(channel) {
            return self.registry.has_user(u);
        }
        scripts::channel_project(channel).is_none_or(|p| self.registry.has_members(p))
    }
}

impl Inner {
    fn self_arc(&self) -> Option<Arc<Inner>> {
        self.me.upgrade()
    }
}

impl Hub for RedisHub {
    fn join(&self, id: ConnId, outbox: Arc<Outbox>) {
        self.inner.registry.join(id, outbox);
    }

    fn leave(&self, id: ConnId, projects: &[Arc<str>]) {
        let emptied = self.inner.registry.leave(id, projects);
        self.inner.unsubscribe_channels(emptied);
    }

    fn subscribe(&self, req: SubscribeRequest) {
        let begun =
            self.inner
                .registry
                .begin(&req.project, req.id, &req.outbox, req.since.as_ref());
        tokio::spawn(self.inner.clone().recover(
            req.project,
            req.since,
            vec![(req.id, begun.ticket)],
            Why::Subscribe(req.request_id),
        ));
    }

    fn unsubscribe(&self, project: &str, id: ConnId) {
        if self.inner.registry.remove(project, id) {
            self.inner.unsubscribe_channels(vec![Arc::from(project)]);
        }
    }

    /// The user's first connection on this task subscribes the user's channel; the returned
    /// future resolves once that channel is live (at once for a later connection, or while
    /// the broker is down). A user's updates are live-only: those published while the link
    /// was down are not replayed.
    fn join_user(&self, user: &Arc<str>, id: ConnId, outbox: &Arc<Outbox>) -> UserReady {
        // Every join asks: a first join whose subscribe is still in flight must not let a
        // second connection of the same user report ready before the channel is live.
        self.inner.registry.join_user(user, id, outbox);
        let (tx, rx) = oneshot::channel();
        let sent = self
            .inner
            .link
            .send(Cmd::Subscribe(scripts::user_channel(user), tx))
            .is_ok();
        // While the link is down nothing reaches this task anyway, and the channel is
        // subscribed when the link comes back (`wanted`): do not hold the connection up for it.
        if !sent || matches!(*self.inner.state.borrow(), LinkState::Down { .. }) {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }

    fn leave_user(&self, user: &str, id: ConnId) {
        if self.inner.registry.leave_user(user, id) {
            let _ = self
                .inner
                .link
                .send(Cmd::Unsubscribe(scripts::user_channel(user)));
        }
    }

    fn publish(
        &self,
        target: Target<'_>,
        data: &RawValue,
        idempotency_key: Option<&str>,
    ) -> PublishFuture {
        let inner = self.inner.clone();
        let project = target.project().map(str::to_owned);
        let base = target.frame(data);
        let (idem, live_channel) = match target {
            Target::User(u) => (
                idempotency_key.map(|k| scripts::user_idempotency_key(u, k)),
                scripts::user_channel(u),
            ),
            _ => (
                idempotency_key.map(|k| scripts::idempotency_key(project.as_deref(), k)),
                scripts::BROADCAST_CHANNEL.to_owned(),
            ),
        };
        Box::pin(async move {
            let c = &inner.config;
            let unavailable = PublishError::BrokerUnavailable;
            match project {
                Some(p) => {
                    // The script appends the position: the frame without its closing brace.
                    let open = base.strip_suffix('}').unwrap_or(&base).to_owned();
                    debug_assert_eq!(
                        positioned(&base, 1, "e"),
                        format!("{open},\"offset\":1,\"epoch\":\"e\"}}")
                    );
                    let mut inv = scripts::PUBLISH.prepare_invoke();
                    inv.key(scripts::position_key(&p))
                        .key(scripts::history_key(&p));
                    if let Some(k) = &idem {
                        inv.key(k);
                    }
                    inv.arg(open)
                        .arg(scripts::project_channel(&p))
                        .arg(c.history_size)
                        .arg(c.history_ttl.as_secs())
                        .arg(c.position_ttl.as_secs())
                        .arg(new_epoch())
                        .arg(scripts::IDEMPOTENCY_SECONDS);
                    let (offset, epoch, dup): (u64, String, u8) =
                        inner.invoke(&inv).await.map_err(unavailable)?;
                    Ok(Published {
                        position: Some(Position {
                            offset,
                            epoch: Arc::from(epoch),
                        }),
                        duplicate: dup == 1,
                        local: None,
                    })
                }
                None => {
                    let mut inv = scripts::BROADCAST.prepare_invoke();
                    if let Some(k) = &idem {
                        inv.key(k);
                    }
                    inv.arg(base)
                        .arg(live_channel)
                        .arg(scripts::IDEMPOTENCY_SECONDS);
                    let dup: u8 = inner.invoke(&inv).await.map_err(unavailable)?;
                    Ok(Published {
                        position: None,
                        duplicate: dup == 1,
                        local: None,
                    })
                }
            }
        })
    }

    fn status(&self) -> BrokerStatus {
        match &*self.inner.state.borrow() {
            LinkState::Up => BrokerStatus {
                mode: "redis",
                state: "up",
                down_seconds: None,
                error: None,
            },
            LinkState::Down { since, error } => BrokerStatus {
                mode: "redis",
                state: "down",
                down_seconds: Some(since.elapsed().as_secs()),
                error: Some(error.clone()),
            },
        }
    }
}
