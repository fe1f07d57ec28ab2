//! `wsctl rollback`: point the service back at an earlier release and wait for the same
//! verdict as a deploy. Everything is checked before anything changes: the revision must be an
//! ACTIVE release of the family and its image must still be in the repository.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Global;
use crate::clients::{self, Clients};
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::live_service;
use crate::output::{self, Format};
use crate::progress::Progress;
use crate::release::choose::{Choice, choose};
use crate::release::{self, Presence, Release};
use crate::rollout;

/// Roll the service back to an earlier release.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl rollback --env prod                 # to the release before the running one
  Rolling back agenticai-websocket-prod from revision 14 (9c1e2f7) to revision 13 (3f2a9c1)
  ✓ rollout agenticai-websocket-prod: rollout completed: 2/2 tasks running (48.2s)
  Rolled back to revision 13: ...:3f2a9c1 runs.

  $ wsctl rollback --env prod --revision 12   # to a given release (see `wsctl releases`)

Exit codes: 0 the release runs, 1 failed or refused (nothing changed), 2 no such release,
3 ECS rolled the rollback back, 4 timed out, 5 no such environment, 6 superseded by another
deployment, 130 interrupted.")]
pub struct Args {
    /// Task definition revision to run (default: the release before the running one).
    #[arg(long, value_name = "N")]
    pub revision: Option<i32>,
    /// How long to wait for the rollout, in seconds (default: the environment's timeout).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Outcome<'a> {
    environment: &'a str,
    from_revision: Option<i32>,
    release: &'a Release,
    deployment_id: String,
    verdict: &'a rollout::Verdict,
    /// The command that resumes watching, when the rollout goes on in ECS.
    resume: Option<String>,
    elapsed_seconds: f64,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = clients::for_env(global).await?;
    let (_, live) = live_service::find(&clients, &env).await?;
    let running = live.revision.as_ref().map(|r| r.number);
    let family = live
        .revision
        .as_ref()
        .map_or_else(|| env.service.clone(), |r| r.family.clone());
    let revisions = release::revisions(&clients.ecs, &family).await?;
    let numbers: Vec<i32> = revisions.iter().map(|(rev, _)| rev.number).collect();
    let wanted = match choose(&family, &numbers, running, args.revision)? {
        Choice::AlreadyRunning(n) => {
            eprintln!("{} already runs revision {n}; nothing to do.", live.name);
            return Ok(Exit::Success);
        }
        Choice::Revision(n) => n,
    };
    let (revision, arn) = revisions
        .into_iter()
        .find(|(rev, _)| rev.number == wanted)
        .context("the chosen revision vanished from the list")?;
    let mut target = release::list::describe(&clients.ecs, revision, arn).await?;
    check_image(&clients, &mut target).await?;

    let from = running.map_or_else(
        || "an unknown revision".to_owned(),
        |n| format!("revision {n}"),
    );
    eprintln!(
        "Rolling back {} from {from} to revision {} ({})",
        live.name,
        target.revision,
        target.image_tag.as_deref().unwrap_or(&target.image)
    );
    let since = SystemTime::now();
    let updated = clients
        .ecs
        .update_service()
        .cluster(&live.cluster)
        .service(&live.name)
        .task_definition(&target.task_definition_arn)
        .send()
        .await
        .map_err(crate::aws::error)
        .with_context(|| {
            format!(
                "updating service {} to revision {}",
                live.name, target.revision
            )
        })?;
    let deployment_id = rollout::wait::primary_deployment(updated.service());
    let wait_target = rollout::Target {
        cluster: live.cluster.clone(),
        service: live.name.clone(),
        deployment_id,
        timeout: args.timeout.map_or(env.timeout, Duration::from_secs),
        since,
        // A rollback that fails is reported, not rolled back again.
        restore_to: None,
    };
    let progress = Progress::new();
    let report = rollout::wait(
        &clients.for_rollout(),
        &wait_target,
        &progress,
        &Interrupt::install(),
    )
    .await?;
    match global.output {
        Format::Json => output::print_json(&Outcome {
            environment: &env.name,
            from_revision: running,
            release: &target,
            deployment_id: report.deployment_id.clone(),
            verdict: &report.verdict,
            resume: rollout::wait::resume_command(&env.name, &report),
            elapsed_seconds: report.elapsed.as_secs_f64(),
        })?,
        Format::Text if report.exit() == Exit::Success => {
            println!(
                "Rolled back to revision {}: {} runs.",
                target.revision, target.image
            );
        }
        Format::Text => println!(
            "Rollback to revision {} (deployment {}): {}",
            target.revision,
            report.deployment_id,
            report.verdict.describe()
        ),
    }
    if let Some(hint) = rollout::wait::resume_hint(&env.name, &report) {
        eprintln!("{hint}");
    }
    Ok(report.exit())
}

/// Refuses (changing nothing) when the release's image is gone from its repository.
/// On success the release carries what ECR said (and the image's digest).
async fn check_image(clients: &Clients, target: &mut Release) -> anyhow::Result<()> {
    let found = release::presence::check(&clients.ecr, std::slice::from_ref(&target.image)).await?;
    let presence = found
        .get(&target.image)
        .cloned()
        .unwrap_or(Presence::Unknown);
    if let Presence::Present(Some(digest)) = &presence {
        target.image_digest.get_or_insert_with(|| digest.clone());
    }
    target.image_in_repository = presence.clone();
    match presence {
        Presence::Missing => Err(fail(
            Exit::Failure,
            format!(
                "refusing to roll back to revision {}: its image {} is no longer in the \
                 repository (expired by the lifecycle policy or deleted), so its tasks could not \
                 start. Nothing was changed; `wsctl releases` shows which releases still have \
                 their image.",
                target.revision, target.image
            ),
        )),
        Presence::Unknown => {
            eprintln!(
                "note: {} is not in ECR, so its presence was not checked",
                target.image
            );
            Ok(())
        }
        Presence::Present(_) => Ok(()),
    }
}
