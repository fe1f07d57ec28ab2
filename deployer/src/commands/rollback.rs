//! `wsctl rollback`: point the service back at an earlier release and wait for the same
//! verdict as a deploy. Everything is checked before anything changes: the revision must be an
//! ACTIVE release of the family and its image must still be in the repository.
//!
//! 1. [`choose_release`]: the release, checked ([`check_image`])
//! 2. [`switch`]: UpdateService to its task definition
//! 3. the rollout wait (`rollout/`), with the same verdict and exit codes as a deploy

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::context::Context;
use crate::exit::{Exit, fail};

use crate::live_service::{self, LiveService};
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
3 ECS rolled the rollback back, 4 timed out, 5 no such environment, 6 another operation holds
the environment's lock or another deployment replaced ours, 130 interrupted. A smoke test runs
after the rollout (`wsctl smoke`); when it fails, the rollback exits 1 saying what failed.")]
pub struct Args {
    /// Task definition revision to run (default: the release before the running one).
    #[arg(long, value_name = "N")]
    pub revision: Option<i32>,
    /// How long to wait for the rollout, in seconds (default: the environment's timeout).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// How long to wait while another operation holds the environment's lock (e.g. 10m);
    /// by default a held lock fails at once (exit 6, naming the holder).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = crate::lock::parse_wait)]
    pub lock_wait: std::time::Duration,
    /// Skip the smoke test after the rollout.
    #[arg(long)]
    pub no_smoke: bool,
    /// Where the smoke test connects instead of the stack's endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
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
    /// The smoke test after the rollout (`None` with `--no-smoke` or an incomplete rollout).
    smoke: Option<&'a crate::smoke::Verdict>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let env = &ctx.env;
    // Released when dropped: before the result, or however the rollback ends.
    let lock = crate::lock::take(
        &ctx.clients,
        env,
        "rollback",
        None,
        args.lock_wait,
        &ctx.progress,
        ctx.interrupt(),
    )
    .await?;
    let (_, live) = live_service::find(&ctx.clients, env).await?;
    let running = live.revision.as_ref().map(|r| r.number);
    let Some(target) = choose_release(ctx, &live, args.revision).await? else {
        return Ok(Exit::Success);
    };
    let since = SystemTime::now();
    let deployment_id = switch(ctx, &live, &target).await?;
    let wait_target = rollout::Target::on(
        &live,
        deployment_id,
        args.timeout.map_or(env.timeout, Duration::from_secs),
        since,
    );
    let report = rollout::wait(&ctx.clients, &wait_target, &ctx.progress, ctx.interrupt()).await?;
    let smoke = match report.exit() {
        Exit::Success if !args.no_smoke => Some(
            crate::smoke::environment::check(
                &crate::smoke::environment::Aws::new(&ctx.clients),
                env,
                args.endpoint.as_deref(),
                &ctx.progress,
            )
            .await?,
        ),
        _ => None,
    };
    drop(lock);
    let outcome = Outcome {
        environment: &env.name,
        from_revision: running,
        release: &target,
        deployment_id: report.deployment_id.clone(),
        verdict: &report.verdict,
        resume: rollout::wait::resume_command(&env.name, &report),
        elapsed_seconds: report.elapsed.as_secs_f64(),
        smoke: smoke.as_ref(),
    };
    ctx.print(&outcome, || {
        if report.exit() == Exit::Success {
            format!(
                "Rolled back to revision {}: {} runs.\n",
                target.revision, target.image
            )
        } else {
            format!(
                "Rollback to revision {} (deployment {}): {}\n",
                target.revision,
                report.deployment_id,
                report.verdict.describe()
            )
        }
    })?;
    if let Some(hint) = rollout::wait::resume_hint(&env.name, &report) {
        eprintln!("{hint}");
    }
    if let Some(crate::smoke::Verdict::Ran { report }) = &smoke
        && let Some(failed) = report.failure()
    {
        return Err(fail(
            Exit::Failure,
            format!(
                "the rollback completed but its smoke test failed at {failed}; the release \
                 runs (a rollback is not rolled back again)"
            ),
        ));
    }
    Ok(report.exit())
}

/// Step 1: The release to go to (`revision`, else the one before the running one), checked:
/// an ACTIVE revision of the family whose image is still in its repository. `None` when it
/// already runs.
async fn choose_release(
    ctx: &Context,
    live: &LiveService,
    revision: Option<i32>,
) -> anyhow::Result<Option<Release>> {
    let clients = &ctx.clients;
    let running = live.revision.as_ref().map(|r| r.number);
    let family = live.family(&ctx.env);
    let revisions = release::revisions(&clients.ecs, &family).await?;
    let numbers: Vec<i32> = revisions.iter().map(|(rev, _)| rev.number).collect();
    let wanted = match choose(&family, &numbers, running, revision)? {
        Choice::AlreadyRunning(n) => {
            eprintln!("{} already runs revision {n}; nothing to do.", live.name);
            return Ok(None);
        }
        Choice::Revision(n) => n,
    };
    let (revision, arn) = revisions
        .into_iter()
        .find(|(rev, _)| rev.number == wanted)
        .context("the chosen revision vanished from the list")?;
    let mut target = release::list::describe(&clients.ecs, revision, arn).await?;
    check_image(clients, &mut target).await?;
    Ok(Some(target))
}

/// Step 2: Points the service at the release; returns the deployment ECS started for it.
async fn switch(
    ctx: &Context,
    live: &LiveService,
    target: &Release,
) -> anyhow::Result<Option<String>> {
    let from = live.revision.as_ref().map_or_else(
        || "an unknown revision".to_owned(),
        |r| format!("revision {}", r.number),
    );
    eprintln!(
        "Rolling back {} from {from} to revision {} ({})",
        live.name,
        target.revision,
        target.image_tag.as_deref().unwrap_or(&target.image)
    );
    let updated = ctx
        .clients
        .ecs
        .update_service()
        .cluster(&live.cluster)
        .service(&live.name)
        .task_definition(&target.task_definition_arn)
        .send()
        .await
        .aws_context(|| {
            format!(
                "updating service {} to revision {}",
                live.name, target.revision
            )
        })?;
    Ok(live_service::primary_deployment(updated.service()))
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
