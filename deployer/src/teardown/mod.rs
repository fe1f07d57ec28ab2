//! `wsctl teardown`: taking an environment down in an order that cannot leave it half-done.
//! Safe to re-run: with nothing left it says so, and a stack already being deleted is
//! watched again.
//!
//! 1. refuse an environment whose stack is the main stack ([`refuse_main_stack`])
//! 2. find the stack; none: nothing to do
//! 3. [`survey`]: what the stack owns ([`plan`]), the images in its repository and the
//!    releases wsctl registered; shown, then confirmed by the operator ([`confirm`])
//! 4. unless a delete is already under way, [`clear_the_way`]: stop the service and empty the
//!    repository ([`repository`]) so CloudFormation can delete it; then DeleteStack
//! 5. watch the delete, its stack events streaming ([`crate::stack::events`])
//! 6. retire the releases ([`releases`]): deregister the task definition revisions

pub mod confirm;
pub mod plan;
pub mod releases;
pub mod repository;

use std::time::SystemTime;

use aws_sdk_ecr::types::ImageIdentifier;
use serde::Serialize;

use crate::aws::AwsResultExt as _;
use crate::context::Context;
use crate::exit::{Exit, fail};
use crate::live_service;
use crate::release::{self, Revision};
use crate::settings::Environment;
use crate::stack::{self, Stack, events};

/// How the teardown behaves beyond the settings file.
pub struct Options {
    /// Do not ask (needed when there is no terminal).
    pub yes: bool,
    /// How long to wait while another operation holds the environment's lock.
    pub lock_wait: std::time::Duration,
}

/// What a teardown did, for `--output json`.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    environment: String,
    stack: String,
    /// False when there was nothing to delete.
    deleted: bool,
    images_deleted: usize,
    revisions_deregistered: usize,
    status: String,
}

/// What the stack holds, read before anything changes.
struct Survey {
    stack_id: String,
    already_deleting: bool,
    repository: String,
    cluster: String,
    service: String,
    images: Vec<ImageIdentifier>,
    revisions: Vec<(Revision, String)>,
}

pub async fn run(ctx: &Context, options: Options) -> anyhow::Result<Exit> {
    let (env, clients) = (&ctx.env, &ctx.clients);
    refuse_main_stack(env)?;
    let mut outcome = Outcome {
        environment: env.name.clone(),
        stack: env.stack_name.clone(),
        ..Outcome::default()
    };
    let Some(stack) = stack::describe(&clients.cloudformation, &env.stack_name).await? else {
        outcome.status = "absent".into();
        let text = format!(
            "Nothing to tear down: stack {} does not exist in {}.",
            env.stack_name, clients.region
        );
        report(ctx, &outcome, &text)?;
        return Ok(Exit::Success);
    };
    let survey = survey(ctx, &stack).await?;
    if survey.already_deleting {
        eprintln!("The stack is already being deleted; watching it.");
    } else {
        confirm::confirm(&env.name, options.yes).await?;
    }

    let interrupt = ctx.interrupt();
    // Released when dropped: before the result, or however the teardown ends.
    let lock = crate::lock::take(
        clients,
        env,
        "teardown",
        None,
        options.lock_wait,
        &ctx.progress,
        interrupt,
    )
    .await?;
    if !survey.already_deleting {
        outcome.images_deleted = clear_the_way(ctx, &survey).await?;
        if interrupt.is_set() {
            eprintln!(
                "Interrupted before the stack was deleted: the service is scaled to zero and the \
                 repository is empty; the stack is untouched. Finish with: wsctl teardown --env {}",
                env.name
            );
            return Ok(Exit::Interrupted);
        }
        clients
            .cloudformation
            .delete_stack()
            .stack_name(&survey.stack_id)
            .send()
            .await
            .aws_context(|| format!("deleting stack {}", env.stack_name))?;
    }
    let since = SystemTime::now() - std::time::Duration::from_secs(1);
    let step = ctx
        .progress
        .step(format!("delete stack {}", env.stack_name));
    let watched = events::watch(
        &clients.cloudformation,
        &survey.stack_id,
        since,
        &step,
        interrupt,
    )
    .await?;
    outcome.status = watched.status.clone();
    if watched.interrupted {
        step.fail("interrupted; CloudFormation goes on deleting");
        eprintln!(
            "Stack {} is still being deleted ({}). Resume watching with: wsctl teardown --env {}",
            env.stack_name, watched.status, env.name
        );
        return Ok(Exit::Interrupted);
    }
    if !watched.succeeded() {
        step.fail(&watched.status);
        return Err(fail(Exit::Failure, watched.failure_report()));
    }
    step.finish(&watched.status);

    let step = ctx.progress.step("retire releases");
    outcome.revisions_deregistered = releases::deregister(&clients.ecs, survey.revisions).await?;
    step.finish(format!(
        "{} task definition revision(s) deregistered",
        outcome.revisions_deregistered
    ));
    outcome.deleted = true;
    drop(lock);
    report(ctx, &outcome, &format!("Environment {} is gone.", env.name))?;
    Ok(Exit::Success)
}

/// Teardown never deletes the main stack, even when the settings name it as the
/// environment's own.
fn refuse_main_stack(env: &Environment) -> anyhow::Result<()> {
    if env.stack_name != env.main_stack {
        return Ok(());
    }
    Err(fail(
        Exit::Usage,
        format!(
            "environment '{}' names the main stack {} as its own; teardown never deletes the \
             main stack. Fix stack_name in the settings.",
            env.name, env.main_stack
        ),
    ))
}

/// Reads what the stack holds and shows it (on stderr) before anything changes.
async fn survey(ctx: &Context, stack: &Stack) -> anyhow::Result<Survey> {
    let (env, clients) = (&ctx.env, &ctx.clients);
    let resources = plan::resources(&clients.cloudformation, &stack.id).await?;
    let repository = plan::physical_id(&resources, "AWS::ECR::Repository")
        .unwrap_or(&env.repository)
        .to_owned();
    let (cluster, service) = live_service::names(env, Some(stack));
    let (images, revisions) = tokio::join!(
        repository::images(&clients.ecr, &repository),
        release::revisions(&clients.ecs, &env.service),
    );
    let (images, revisions) = (images?, revisions?);
    eprint!(
        "{}",
        plan::render(&env.stack_name, &resources, images.len(), revisions.len())
    );
    Ok(Survey {
        stack_id: stack.id.clone(),
        already_deleting: stack.status == "DELETE_IN_PROGRESS",
        repository,
        cluster,
        service,
        images,
        revisions,
    })
}

/// Stops the service (nothing may run while its stack goes) and empties the repository
/// (CloudFormation cannot delete one that holds images). Returns the images deleted.
async fn clear_the_way(ctx: &Context, survey: &Survey) -> anyhow::Result<usize> {
    let clients = &ctx.clients;
    let service = &survey.service;
    let step = ctx.progress.step("scale service to zero");
    let scaled = clients
        .ecs
        .update_service()
        .cluster(&survey.cluster)
        .service(service)
        .desired_count(0)
        .send()
        .await
        // Gone already (or never created): nothing runs.
        .or_missing(
            |e| {
                e.is_service_not_found_exception()
                    || e.is_service_not_active_exception()
                    || e.is_cluster_not_found_exception()
            },
            || format!("scaling {service} to zero before deleting it"),
        );
    match scaled {
        Ok(Some(_)) => step.finish(format!("{service} desired count 0")),
        Ok(None) => step.finish("no service"),
        Err(err) => {
            step.fail("could not scale the service down");
            return Err(err);
        }
    };
    let step = ctx
        .progress
        .step(format!("empty repository {}", survey.repository));
    let deleted = repository::delete(&clients.ecr, &survey.repository, &survey.images).await?;
    step.finish(format!("{deleted} image(s) deleted"));
    Ok(deleted)
}

fn report(ctx: &Context, outcome: &Outcome, text: &str) -> anyhow::Result<()> {
    ctx.print(outcome, || format!("{text}\n"))
}
