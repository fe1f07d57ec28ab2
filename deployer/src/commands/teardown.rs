//! `wsctl teardown`: delete an environment's stack and everything it owns, after showing what
//! goes and having the environment's name typed. Safe to re-run: with nothing left it says so
//! and exits 0; interrupted, CloudFormation carries on and a re-run resumes watching.

use std::time::SystemTime;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Global;
use crate::clients;
use crate::deploy::stack::events;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::live_service;
use crate::output::{self, Format};
use crate::progress::Progress;
use crate::release;
use crate::teardown::{confirm, plan, releases, repository};

/// Delete an environment's stack and everything it owns.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  $ wsctl teardown --env staging
  Teardown deletes stack agenticai-websocket-staging and everything it owns:
    TYPE                                       LOGICAL ID    PHYSICAL ID
    AWS::ECS::Service                          Service       arn:aws:ecs:...
    ...
  Type the environment name (staging) to delete it: staging
  ✓ scale service to zero ...
  ✓ delete stack: DELETE_COMPLETE (2m41s)
  Environment staging is gone.

  $ wsctl teardown --env pr-123 --yes          # unattended (CI)

Exit codes: 0 deleted or nothing left, 1 failed, 2 no confirmation (no terminal and no --yes),
130 interrupted (the delete goes on; re-run to keep watching).")]
pub struct Args {
    /// Do not ask; needed when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

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

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Exit> {
    let (env, clients) = clients::for_env(global).await?;
    if env.stack_name == env.main_stack {
        return Err(fail(
            Exit::Usage,
            format!(
                "environment '{}' names the main stack {} as its own; teardown never deletes the \
                 main stack. Fix stack_name in the settings.",
                env.name, env.main_stack
            ),
        ));
    }
    let mut outcome = Outcome {
        environment: env.name.clone(),
        stack: env.stack_name.clone(),
        ..Outcome::default()
    };
    let Some(stack) =
        live_service::describe_stack(&clients.cloudformation, &env.stack_name).await?
    else {
        outcome.status = "absent".into();
        report(
            global,
            &outcome,
            &format!(
                "Nothing to tear down: stack {} does not exist in {}.",
                env.stack_name, clients.region
            ),
        )?;
        return Ok(Exit::Success);
    };
    let stack_id = stack.stack_id().unwrap_or(&env.stack_name).to_owned();
    let already_deleting = stack
        .stack_status()
        .is_some_and(|s| s.as_str() == "DELETE_IN_PROGRESS");

    let resources = plan::resources(&clients.cloudformation, &stack_id).await?;
    let repository_name = plan::physical_id(&resources, "AWS::ECR::Repository")
        .unwrap_or(&env.repository)
        .to_owned();
    let (cluster, service) = live_service::names(&env, Some(&stack));
    let (images, revisions) = tokio::join!(
        repository::images(&clients.ecr, &repository_name),
        release::revisions(&clients.ecs, &env.service),
    );
    let (images, revisions) = (images?, revisions?);
    eprint!(
        "{}",
        plan::render(&env.stack_name, &resources, images.len(), revisions.len())
    );
    if already_deleting {
        eprintln!("The stack is already being deleted; watching it.");
    } else {
        confirm::confirm(&env.name, args.yes).await?;
    }

    let progress = Progress::new();
    let interrupt = Interrupt::install();
    if !already_deleting {
        let step = progress.step("scale service to zero");
        let scaled = clients
            .ecs
            .update_service()
            .cluster(&cluster)
            .service(&service)
            .desired_count(0)
            .send()
            .await;
        match scaled {
            Ok(_) => step.finish(format!("{service} desired count 0")),
            // Gone already (or never created): nothing runs.
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    e.is_service_not_found_exception()
                        || e.is_service_not_active_exception()
                        || e.is_cluster_not_found_exception()
                }) =>
            {
                step.finish("no service")
            }
            Err(err) => {
                step.fail("could not scale the service down");
                return Err(crate::aws::error(err))
                    .with_context(|| format!("scaling {service} to zero before deleting it"));
            }
        };
        let step = progress.step(format!("empty repository {repository_name}"));
        outcome.images_deleted =
            repository::delete(&clients.ecr, &repository_name, &images).await?;
        step.finish(format!("{} image(s) deleted", outcome.images_deleted));

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
            .stack_name(&stack_id)
            .send()
            .await
            .map_err(crate::aws::error)
            .with_context(|| format!("deleting stack {}", env.stack_name))?;
    }
    let since = SystemTime::now() - std::time::Duration::from_secs(1);
    let step = progress.step(format!("delete stack {}", env.stack_name));
    let watched =
        events::watch(&clients.cloudformation, &stack_id, since, &step, &interrupt).await?;
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

    let step = progress.step("retire releases");
    outcome.revisions_deregistered = releases::deregister(&clients.ecs, revisions).await?;
    step.finish(format!(
        "{} task definition revision(s) deregistered",
        outcome.revisions_deregistered
    ));
    outcome.deleted = true;
    report(
        global,
        &outcome,
        &format!("Environment {} is gone.", env.name),
    )?;
    Ok(Exit::Success)
}

fn report(global: &Global, outcome: &Outcome, text: &str) -> anyhow::Result<()> {
    match global.output {
        Format::Json => output::print_json(outcome),
        Format::Text => {
            println!("{text}");
            Ok(())
        }
    }
}
