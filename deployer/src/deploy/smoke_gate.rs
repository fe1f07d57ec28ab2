//! The smoke test as part of a deploy's verdict: run after a completed rollout; when it fails,
//! the service goes back to the release it ran before (the same wait and verdict as any
//! rollout) and the deploy exits 3 with what failed. A first release has nothing to go back
//! to: it stays, and the deploy fails (exit 1).

use std::time::SystemTime;

use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::exit::Exit;
use crate::interrupt::Interrupt;
use crate::live_service;
use crate::progress::Progress;
use crate::rollout;
use crate::settings::Environment;
use crate::smoke::{self, environment::Aws};

/// What the gate needs to know about the deploy it ends.
pub struct Gate<'a> {
    pub clients: &'a Clients,
    pub env: &'a Environment,
    pub cluster: &'a str,
    pub service: &'a str,
    /// The task definition the service ran before this deploy.
    pub previous: Option<&'a str>,
    /// `--endpoint`.
    pub endpoint: Option<&'a str>,
}

/// How the gate ended.
pub struct Smoked {
    pub verdict: smoke::Verdict,
    pub rollback: Option<Rollback>,
    pub exit: Exit,
    /// What failed, and what was done about it.
    pub failure: Option<String>,
}

/// The rollback after a failed smoke test.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub task_definition: String,
    pub deployment_id: String,
    pub verdict: rollout::Verdict,
}

impl Rollback {
    pub fn describe(&self) -> String {
        format!(
            "{} ({})",
            rollout::verdict::short_td(&self.task_definition),
            self.verdict.describe()
        )
    }
}

impl Gate<'_> {
    pub async fn run(&self, progress: &Progress, interrupt: &Interrupt) -> anyhow::Result<Smoked> {
        let aws = Aws::new(self.clients);
        let verdict = smoke::environment::check(&aws, self.env, self.endpoint, progress).await?;
        let failed = match &verdict {
            smoke::Verdict::Ran { report } => report.failure(),
            smoke::Verdict::Skipped { .. } => None,
        };
        let Some(failed) = failed else {
            return Ok(Smoked {
                verdict,
                rollback: None,
                exit: Exit::Success,
                failure: None,
            });
        };
        let Some(previous) = self.previous else {
            return Ok(Smoked {
                verdict,
                rollback: None,
                exit: Exit::Failure,
                failure: Some(format!(
                    "the smoke test failed at {failed}; this is the service's first release, so \
                     there is none to roll back to: it stays as it is"
                )),
            });
        };
        let rollback = self.restore(previous, progress, interrupt).await?;
        let exit = match rollback.verdict.exit() {
            Exit::Success => Exit::RolledBack,
            other => other,
        };
        let failure = format!(
            "the smoke test failed at {failed}; rolled back to {}",
            rollback.describe()
        );
        Ok(Smoked {
            verdict,
            rollback: Some(rollback),
            exit,
            failure: Some(failure),
        })
    }

    /// Points the service back at `previous` and waits for that rollout's verdict.
    async fn restore(
        &self,
        previous: &str,
        progress: &Progress,
        interrupt: &Interrupt,
    ) -> anyhow::Result<Rollback> {
        progress.println(format!(
            "the smoke test failed: rolling back to {}",
            rollout::verdict::short_td(previous)
        ));
        let clients = self.clients;
        let since = SystemTime::now();
        let updated = clients
            .ecs
            .update_service()
            .cluster(self.cluster)
            .service(self.service)
            .task_definition(previous)
            .send()
            .await
            .aws_context(|| format!("rolling {} back to {previous}", self.service))?;
        let target = rollout::Target {
            cluster: self.cluster.to_owned(),
            service: self.service.to_owned(),
            deployment_id: live_service::primary_deployment(updated.service()),
            timeout: self.env.timeout,
            since,
            // A rollback that fails is reported, not rolled back again.
            restore_to: None,
        };
        let report = rollout::wait(clients, &target, progress, interrupt).await?;
        Ok(Rollback {
            task_definition: previous.to_owned(),
            deployment_id: report.deployment_id.clone(),
            verdict: report.verdict,
        })
    }
}
