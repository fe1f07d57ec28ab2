//! The end of a deploy: what now runs where, and how long each phase took. Text for people on
//! stdout, or with `--output json` one JSON document for scripts.

use std::time::Duration;

use serde::Serialize;

use crate::progress::format_duration;
use crate::rollout::Verdict;
use crate::rollout::verdict::StoppedTask;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub environment: String,
    pub account: String,
    pub region: String,
    pub stack: String,
    pub cluster: String,
    pub service: String,
    pub endpoint: Option<String>,
    pub image: String,
    pub image_tag: String,
    pub image_digest: String,
    pub git_commit: Option<String>,
    /// For `--image-from`/`--image`: where the image came from (`staging@sha256:...`).
    pub promoted_from: Option<String>,
    pub task_definition: String,
    /// `family:revision`.
    pub revision: String,
    pub revision_registered: bool,
    pub stack_changes: usize,
    /// Change sets CloudFormation computed; 0 when the stack already was as asked.
    pub change_sets: usize,
    pub layers_pushed: usize,
    pub deployment_id: String,
    /// `None` with `--no-wait`.
    pub rollout: Option<Verdict>,
    /// Tasks of the new release that stopped, with their reasons and last log lines.
    pub stopped_tasks: Vec<StoppedTask>,
    /// The command that resumes watching, when the rollout goes on in ECS.
    pub resume: Option<String>,
    /// The smoke test after the rollout; `None` when it was not run (`--no-smoke`, `--no-wait`,
    /// a rollout that did not complete).
    pub smoke: Option<crate::smoke::Verdict>,
    /// The rollback after a failed smoke test, and how it ended.
    pub smoke_rollback: Option<crate::deploy::smoke_gate::Rollback>,
    /// Seconds per phase, in order.
    pub phases: Vec<Phase>,
    /// The pre-build (compile) time, reported apart: it dominates.
    pub compile_seconds: Option<f64>,
    pub total_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
}

impl Phase {
    pub fn new(name: &'static str, took: Duration) -> Self {
        Self {
            name,
            seconds: (took.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }
}

impl Summary {
    /// The text form, for stdout.
    pub fn text(&self) -> String {
        let rollout = match &self.rollout {
            Some(verdict) => verdict.describe(),
            None => "not waited for (--no-wait)".into(),
        };
        // On a first deploy the stack registers the revision when it creates the service.
        let with_service = self.phases.iter().any(|p| p.name == "service");
        let revision = if self.revision_registered {
            format!("{} (new)", self.revision)
        } else if with_service {
            format!("{} (new, with the service)", self.revision)
        } else {
            format!("{} (unchanged)", self.revision)
        };
        let phases = self
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p.name,
                    format_duration(Duration::from_secs_f64(p.seconds))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut rows = vec![
            (
                "endpoint",
                self.endpoint
                    .clone()
                    .unwrap_or_else(|| "(no output)".into()),
            ),
            ("image", self.image.clone()),
            ("digest", self.image_digest.clone()),
        ];
        if let Some(origin) = &self.promoted_from {
            rows.push(("promoted", format!("from {origin} (not rebuilt)")));
        }
        if let Some(commit) = &self.git_commit {
            rows.push(("commit", commit.clone()));
        }
        rows.push(("revision", revision));
        rows.push(("deploy id", self.deployment_id.clone()));
        rows.push(("rollout", rollout));
        if let Some(smoke) = &self.smoke {
            rows.push(("smoke", smoke.describe()));
        }
        if let Some(back) = &self.smoke_rollback {
            rows.push(("restored", back.describe()));
        }
        if let Some(resume) = &self.resume {
            rows.push(("resume", resume.clone()));
        }
        rows.push(("phases", phases));
        if let Some(compile) = self.compile_seconds {
            rows.push(("compile", format_duration(Duration::from_secs_f64(compile))));
        }
        rows.push((
            "total",
            format_duration(Duration::from_secs_f64(self.total_seconds)),
        ));
        let mut text = format!(
            "{} {} ({}, {})\n",
            if self
                .rollout
                .as_ref()
                .is_none_or(|v| matches!(v, Verdict::Completed { .. }))
                && self.smoke_rollback.is_none()
            {
                "Deployed"
            } else {
                "Deploy did not complete:"
            },
            self.service,
            self.environment,
            self.region
        );
        for (key, value) in rows {
            text.push_str(&format!("  {key:<9} {value}\n"));
        }
        text
    }
}
