//! What `wsctl status` reports, as one serializable document: the text screen and
//! `--output json` show the same facts.

use serde::Serialize;

use super::metrics::Series;
pub use crate::live_service::DeploymentState;
use crate::release::Release;

#[derive(Debug, Serialize)]
pub struct BrokerState {
    /// `elasticache`, `external` or `none`.
    pub mode: String,
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub environment: String,
    pub region: String,
    pub stack: Option<StackState>,
    /// Where clients connect (`ws://.../ws`).
    pub endpoint: Option<String>,
    /// The environment's CloudWatch dashboard (its `DashboardUrl` output).
    pub dashboard: Option<String>,
    /// The cross-task broker (stack outputs `BrokerMode`, `BrokerEndpoint`).
    pub broker: Option<BrokerState>,
    pub service: Option<ServiceState>,
    pub deployments: Vec<DeploymentState>,
    /// The release the service runs now.
    pub release: Option<Release>,
    /// The newest registered revision of the family; above the running one after a rollback.
    pub latest_revision: Option<i32>,
    /// The revision the stack's template defines (its `TaskDefinitionArn` output).
    pub stack_revision: Option<i32>,
    pub tasks: Vec<TaskState>,
    pub target_group: Option<String>,
    pub targets: Vec<TargetState>,
    pub alarms: Vec<AlarmState>,
    pub metrics: Metrics,
    /// The latest service events, newest first.
    pub events: Vec<EventState>,
    /// What needs attention; empty when all is well.
    pub findings: Vec<String>,
    /// Worth knowing but not a problem (e.g. a newer release exists after a rollback).
    pub notes: Vec<String>,
    /// What could not be read (e.g. CloudWatch refused); the rest is still shown.
    pub unavailable: Vec<String>,
    pub healthy: bool,
    /// With `--wait`: how the wait for the rollout ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// How `status --wait` ended: the verdict (its fields inline, as in deploy's `rollout`), the
/// deployment it followed, and how to resume when ECS goes on.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    #[serde(flatten)]
    pub verdict: crate::rollout::Verdict,
    pub deployment_id: String,
    pub resume: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackState {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceState {
    pub cluster: String,
    pub name: String,
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub task_definition: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskState {
    pub id: String,
    pub revision: Option<i32>,
    pub last_status: String,
    pub desired_status: String,
    /// HEALTHY, UNHEALTHY or UNKNOWN (no container health check).
    pub health: String,
    pub availability_zone: Option<String>,
    pub started_at: Option<String>,
    pub age: Option<String>,
    pub stopped_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetState {
    pub id: String,
    pub port: Option<i32>,
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlarmState {
    pub name: String,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub reason: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Metrics {
    /// Service CPU utilization (%) over the last hour.
    pub cpu: Option<Series>,
    /// Service memory utilization (%) over the last hour.
    pub memory: Option<Series>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventState {
    pub at: Option<String>,
    pub message: String,
}
