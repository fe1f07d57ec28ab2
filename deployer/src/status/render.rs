//! The status screen: sections in the order an operator reads them (where, what runs, is it
//! healthy, what happened), then what needs attention.

use std::fmt::Write as _;

use super::metrics::{Series, sparkline};
use super::model::Status;
use crate::release::image::short_digest;
use crate::table;

/// The whole screen, section by section.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    place(&mut out, s);
    running_release(&mut out, s);
    deployments(&mut out, s);
    tasks(&mut out, s);
    targets(&mut out, s);
    alarms_metrics_events(&mut out, s);
    verdict(&mut out, s);
    out
}

/// Where: environment, endpoint, dashboard, broker, stack and service.
fn place(out: &mut String, s: &Status) {
    let _ = writeln!(out, "Environment  {} ({})", s.environment, s.region);
    if let Some(endpoint) = &s.endpoint {
        let _ = writeln!(out, "Endpoint     {endpoint}");
    }
    if let Some(dashboard) = &s.dashboard {
        let _ = writeln!(out, "Dashboard    {dashboard}");
    }
    if let Some(b) = &s.broker {
        let what = match (b.mode.as_str(), &b.endpoint) {
            ("none", _) => "none (in-process hub: right for one task only)".to_owned(),
            ("elasticache", Some(e)) => format!("ElastiCache Serverless Valkey {e} (TLS)"),
            ("external", _) => "external (redis_url of wsctl.yaml)".to_owned(),
            (other, _) => other.to_owned(),
        };
        let _ = writeln!(out, "Broker       {what}");
    }
    match &s.stack {
        Some(stack) => {
            let updated = stack
                .updated_at
                .as_deref()
                .map_or(String::new(), |t| format!("  (since {t})"));
            let _ = writeln!(
                out,
                "Stack        {}  {}{updated}",
                stack.name, stack.status
            );
        }
        None => {
            let _ = writeln!(out, "Stack        (none)");
        }
    }
    match &s.service {
        Some(svc) => {
            let _ = writeln!(
                out,
                "Service      {}  {}  desired {}  running {}  pending {}",
                svc.name, svc.status, svc.desired, svc.running, svc.pending
            );
        }
        None => {
            let _ = writeln!(out, "Service      (none)");
        }
    }
}

/// What runs: the release, and a newer one after a rollback.
fn running_release(out: &mut String, s: &Status) {
    if let Some(release) = &s.release {
        let digest = release
            .image_digest
            .as_deref()
            .map_or(String::new(), |d| format!("  {}", short_digest(d)));
        let commit = release
            .git_commit
            .as_deref()
            .map_or(String::new(), |c| format!("  commit {c}"));
        let _ = writeln!(
            out,
            "Release      revision {}  {}{digest}{commit}",
            release.revision, release.image
        );
        if let Some(latest) = s.latest_revision.filter(|l| *l > release.revision) {
            let _ = writeln!(out, "             revision {latest} is newer (rolled back)");
        }
    }
}

/// The service's deployments, when ECS lists any.
fn deployments(out: &mut String, s: &Status) {
    if !s.deployments.is_empty() {
        let rows: Vec<Vec<String>> = s
            .deployments
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.status.clone(),
                    d.rollout_state.clone().unwrap_or_else(|| "-".into()),
                    d.revision.map_or_else(|| "-".into(), |r| r.to_string()),
                    format!("{}/{}", d.running, d.desired),
                    d.pending.to_string(),
                    d.failed_tasks.to_string(),
                    d.rollout_reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        section(out, "Deployments");
        out.push_str(&table::render(
            "  ",
            &[
                "ID", "STATUS", "ROLLOUT", "REV", "RUNNING", "PENDING", "FAILED", "REASON",
            ],
            &rows,
        ));
    }
}

/// The running tasks.
fn tasks(out: &mut String, s: &Status) {
    section(out, "Tasks");
    if s.tasks.is_empty() {
        out.push_str("  (none running)\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.revision.map_or_else(|| "-".into(), |r| r.to_string()),
                    t.last_status.clone(),
                    t.health.clone(),
                    t.availability_zone.clone().unwrap_or_else(|| "-".into()),
                    t.age.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&table::render(
            "  ",
            &["TASK", "REV", "STATUS", "HEALTH", "AZ", "AGE"],
            &rows,
        ));
    }
}

/// The load balancer's targets and their health.
fn targets(out: &mut String, s: &Status) {
    section(out, "Targets");
    if s.targets.is_empty() {
        out.push_str("  (none registered)\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .targets
            .iter()
            .map(|t| {
                vec![
                    format!(
                        "{}:{}",
                        t.id,
                        t.port.map_or_else(|| "-".into(), |p| p.to_string())
                    ),
                    t.state.clone(),
                    t.description
                        .clone()
                        .or_else(|| t.reason.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table::render("  ", &["TARGET", "STATE", "DETAIL"], &rows));
    }
}

/// Alarms, the last hour's CPU and memory, the latest service events.
fn alarms_metrics_events(out: &mut String, s: &Status) {
    if !s.alarms.is_empty() {
        section(out, "Alarms");
        let rows: Vec<Vec<String>> = s
            .alarms
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.state.clone(),
                    a.updated_at.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table::render("  ", &["ALARM", "STATE", "SINCE"], &rows));
    }
    section(out, "Last hour (5-minute averages)");
    metric_line(out, "CPU", s.metrics.cpu.as_ref());
    metric_line(out, "Memory", s.metrics.memory.as_ref());
    if !s.events.is_empty() {
        section(out, "Events (newest first)");
        for e in &s.events {
            let _ = writeln!(out, "  {}  {}", e.at.as_deref().unwrap_or("-"), e.message);
        }
    }
}

/// How a `--wait` ended, what could not be read, notes, and what needs attention.
fn verdict(out: &mut String, s: &Status) {
    out.push('\n');
    if let Some(rollout) = &s.rollout {
        let _ = writeln!(
            out,
            "Rollout: {} (deployment {})",
            rollout.verdict.describe(),
            rollout.deployment_id
        );
        if let Some(resume) = &rollout.resume {
            let _ = writeln!(out, "Resume watching with: {resume}");
        }
    }
    for what in &s.unavailable {
        let _ = writeln!(out, "Not shown: {what}");
    }
    for note in &s.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if s.findings.is_empty() {
        out.push_str("All good: nothing needs attention.\n");
    } else {
        out.push_str("Needs attention:\n");
        for finding in &s.findings {
            let _ = writeln!(out, "  ! {finding}");
        }
    }
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}");
}

fn metric_line(out: &mut String, name: &str, series: Option<&Series>) {
    let _ = match series {
        Some(s) => writeln!(
            out,
            "  {name:<7} {:<12}  min {:.1}%  avg {:.1}%  max {:.1}%",
            sparkline(&s.points),
            s.min,
            s.avg,
            s.max
        ),
        None => writeln!(out, "  {name:<7} no data"),
    };
}
