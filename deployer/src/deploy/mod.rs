//! `wsctl deploy`: the whole flow, step by step; [`run`] reads as this list, each step a
//! function here or a file of its own.
//!
//! 1. [`environment`]: the settings from the [`Context`] `main` built, with the options applied
//! 2. [`prepare`]: [`preflight`] (credentials, Docker, [`main_stack`] outputs, [`network`],
//!    stack state, all at once, before anything in AWS changes); meanwhile [`compile`] +
//!    [`image::build`] (tagged by [`image::tag`]) start, as they only work locally
//! 3. still in [`prepare`]: the rest of the build beside the stack change set
//!    ([`apply_stack`] with [`crate::stack`]; none when [`crate::stack::unchanged`] finds the
//!    stack as asked), so the build never waits for CloudFormation
//! 4. [`push`]: [`image::push`] to ECR (needs both: the image and the repository)
//! 5. [`create_service`], first deploy only: the stack gets the pushed image and creates the
//!    service, so no task ever needs an image that is not in the repository yet
//! 6. [`release`]: a new task definition revision only if the image changed; UpdateService
//! 7. the rollout wait and verdict (`rollout/`), the smoke test ([`smoke_gate`]: a failure
//!    rolls back), then the [`summary`]
//!
//! All of it runs holding the environment's deploy lock (`crate::lock`), taken first.

pub mod compile;
pub mod image;
pub mod main_stack;
pub mod network;
pub mod preflight;
pub mod release;
pub mod smoke_gate;
pub mod subnets;
pub mod summary;

use std::io::{BufRead as _, IsTerminal as _};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudformation::types::{ChangeSetType, Parameter, Tag};

use crate::aws::AwsResultExt as _;
use crate::clients::Clients;
use crate::context::Context;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::rollout;
use crate::settings::Environment;
use crate::stack::changeset::{self, Planned, keep, param};
use crate::stack::readiness::Readiness;
use crate::stack::{self, Stack, events, unchanged};
use summary::{Phase, Summary};

/// The service stack's template, built into the binary so wsctl and template never drift.
pub const TEMPLATE: &str = include_str!("../../../templates/ecs.yaml");

/// How the deploy behaves beyond the settings file.
pub struct Options {
    /// Execute stack changes without asking (prod asks on a terminal otherwise).
    pub yes: bool,
    /// Overrides the environment's rollout timeout.
    pub timeout: Option<Duration>,
    /// Stop after starting the rollout.
    pub no_wait: bool,
    /// How long to wait for another operation's lock.
    pub lock_wait: Duration,
    /// Run the smoke test after the rollout.
    pub smoke: bool,
    /// Where the smoke test connects (default: the stack's endpoint).
    pub endpoint: Option<String>,
    /// Overrides the environment's CloudFormation service role.
    pub cloudformation_role_arn: Option<String>,
    /// Deploy this image (another environment's, or one named by digest) instead of building.
    pub image: Option<image::promote::Source>,
}

/// Runs a deploy and prints its summary; the exit code says how it ended.
pub async fn run(ctx: &Context, options: Options) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let (env, needs_confirmation) = environment(ctx, &options)?;
    let mut phases = Vec::new();
    let promoting = options.image.is_some();
    let tag = image::tag::for_context(&env.build.context);
    // Released when dropped: before the result, or however the deploy ends.
    let lock = crate::lock::take(
        &ctx.clients,
        &env,
        "deploy",
        tag.commit.clone(),
        options.lock_wait,
        &ctx.progress,
        ctx.interrupt(),
    )
    .await?;
    if tag.dirty && !promoting {
        ctx.progress.println(format!(
            "note: the work tree has uncommitted changes; the image is tagged {}",
            tag.tag
        ));
    }
    let docker = preflight::connect_docker();
    let source = options.image.as_ref();
    let prepared = prepare(
        ctx,
        &env,
        &tag,
        &docker,
        source,
        needs_confirmation,
        &mut phases,
    )
    .await?;
    let (pushed, commit) = push(ctx, &env, &tag, &docker, &prepared, &mut phases).await?;
    let first = StackPlan::with_image(&env, &prepared.found, &pushed.image);
    let stack = create_service(ctx, &env, first, prepared.stack, &mut phases).await?;

    // 6. Release.
    let t = Instant::now();
    let cluster = stack
        .stack
        .output("ECSClusterName", &env.stack_name)?
        .to_owned();
    let service = stack
        .stack
        .output("WebSocketServiceName", &env.stack_name)?
        .to_owned();
    let since = SystemTime::now();
    let release = release::roll_out(
        &ctx.clients.ecs,
        &cluster,
        &service,
        env.desired_count,
        &pushed,
        commit.as_deref(),
        &ctx.progress,
    )
    .await?;
    phases.push(Phase::new("release", t.elapsed()));

    // 7. Rollout.
    let target = rollout::Target {
        cluster: cluster.clone(),
        service: service.clone(),
        deployment_id: Some(release.deployment_id.clone()),
        timeout: env.timeout,
        since,
        restore_to: release.previous_task_definition.clone(),
    };
    let (verdict, stopped_tasks, resume) = if options.no_wait {
        (None, Vec::new(), None)
    } else {
        let t = Instant::now();
        let report = rollout::wait(&ctx.clients, &target, &ctx.progress, ctx.interrupt()).await?;
        phases.push(Phase::new("rollout", t.elapsed()));
        if let Some(hint) = rollout::wait::resume_hint(&env.name, &report) {
            ctx.progress.println(hint);
        }
        let resume = rollout::wait::resume_command(&env.name, &report);
        (Some(report.verdict), report.stopped_tasks, resume)
    };

    // 8. The smoke test; a failure rolls back to the previous release.
    let gate = smoke_gate::Gate {
        clients: &ctx.clients,
        env: &env,
        cluster: &cluster,
        service: &service,
        previous: release.previous_task_definition.as_deref(),
        endpoint: options.endpoint.as_deref(),
    };
    let t = Instant::now();
    let smoked = match &verdict {
        Some(rollout::Verdict::Completed { .. }) if options.smoke => {
            let smoked = gate.run(&ctx.progress, ctx.interrupt()).await?;
            if let crate::smoke::Verdict::Ran { .. } = smoked.verdict {
                phases.push(Phase::new("smoke", t.elapsed()));
            }
            Some(smoked)
        }
        _ => None,
    };

    let summary = Summary {
        environment: env.name.clone(),
        account: prepared.found.account.clone(),
        region: ctx.clients.region.clone(),
        stack: env.stack_name.clone(),
        cluster,
        service,
        endpoint: stack.stack.outputs.get("WebSocketEndpoint").cloned(),
        image: pushed.image.clone(),
        image_tag: pushed.tag.clone(),
        image_digest: pushed.digest.clone(),
        git_commit: commit.clone(),
        promoted_from: pushed.origin.clone(),
        task_definition: release.task_definition_arn.clone(),
        revision: release.revision.clone(),
        revision_registered: release.registered,
        stack_changes: stack.changes,
        change_sets: stack.change_sets,
        layers_pushed: pushed.layers_pushed,
        deployment_id: release.deployment_id.clone(),
        rollout: verdict.clone(),
        stopped_tasks,
        resume,
        smoke: smoked.as_ref().map(|s| s.verdict.clone()),
        smoke_rollback: smoked.as_ref().and_then(|s| s.rollback.clone()),
        phases,
        compile_seconds: prepared
            .compile_time
            .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    drop(lock);
    ctx.print(&summary, || summary.text())?;
    if let Some(failure) = smoked.as_ref().and_then(|s| s.failure.as_ref()) {
        ctx.progress.println(format!("error: {failure}"));
    }
    Ok(smoked
        .as_ref()
        .map(|s| s.exit)
        .or(verdict.map(|v| v.exit()))
        .unwrap_or(Exit::Success))
}

/// Step 1: The environment with the options applied, and whether the deploy must ask before
/// changing the stack (prod, without `--yes`: only possible on a terminal).
fn environment(ctx: &Context, options: &Options) -> anyhow::Result<(Environment, bool)> {
    let mut env = ctx.env.clone();
    if let Some(timeout) = options.timeout {
        env.timeout = timeout;
    }
    if let Some(role) = &options.cloudformation_role_arn {
        env.cloudformation_role_arn = Some(role.clone());
    }
    let needs_confirmation = env.name == "prod" && !options.yes;
    if needs_confirmation && !std::io::stdin().is_terminal() {
        return Err(fail(
            Exit::Usage,
            "deploying to prod asks for confirmation, and there is no terminal to ask on: \
             pass --yes to deploy without asking",
        ));
    }
    Ok((env, needs_confirmation))
}

/// What steps 2 and 3 leave for the push: the image built here, or the one to promote.
struct Prepared {
    found: preflight::Found,
    stack: StackApplied,
    built: Option<image::build::Built>,
    promoted: Option<image::promote::Resolved>,
    compile_time: Option<Duration>,
}

/// Step 2: Preflight, with the compile and image build started beside it (building changes nothing
/// in AWS, and on a first deploy it is the longest step); a failed preflight drops (cancels)
/// the build. Step 3: then the stack change set beside the rest of the build, so the build never
/// waits for CloudFormation. A promotion builds nothing: its source image is looked up
/// (and checked to be in its repository) right after preflight, before anything changes.
async fn prepare(
    ctx: &Context,
    env: &Environment,
    tag: &image::tag::ImageTag,
    docker: &anyhow::Result<bollard::Docker>,
    promote: Option<&image::promote::Source>,
    needs_confirmation: bool,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<Prepared> {
    let (progress, interrupt) = (&ctx.progress, ctx.interrupt());
    let build = async {
        if promote.is_some() {
            return anyhow::Ok(None);
        }
        let docker = preflight::engine(docker)?;
        let compile = compile::run(&env.build, progress, interrupt).await?;
        let t = Instant::now();
        let built = image::build::build(
            docker,
            &env.build,
            &env.repository,
            tag,
            progress,
            interrupt,
        )
        .await?;
        anyhow::Ok(Some((compile, built, t.elapsed())))
    };
    tokio::pin!(build);
    let t = Instant::now();
    let preflight = preflight::run(
        &ctx.clients,
        env,
        promote.is_none().then_some(docker),
        progress,
    );
    tokio::pin!(preflight);
    let mut built_early = None;
    let found = loop {
        tokio::select! {
            found = &mut preflight => break found?,
            built = &mut build, if built_early.is_none() => built_early = Some(built),
        }
    };
    phases.push(Phase::new("preflight", t.elapsed()));
    let promoted = match promote {
        Some(source) => Some(resolve_promotion(ctx, env, source).await?),
        None => None,
    };
    let build = async {
        match built_early {
            Some(built) => built,
            None => build.await,
        }
    };

    let stack_work = async {
        let t = Instant::now();
        let plan = StackPlan::first(env, &found);
        let outcome = apply_stack(
            &ctx.clients,
            env,
            plan,
            needs_confirmation,
            progress,
            interrupt,
        )
        .await?;
        anyhow::Ok((outcome, t.elapsed()))
    };
    let (built, stacked) = tokio::join!(build, stack_work);
    let ((stack, stack_time), built) = match (stacked, built) {
        (Ok(s), Ok(b)) => (s, b),
        (Err(err), _) => return Err(err),
        (Ok((outcome, _)), Err(err)) => {
            let note = if outcome.changes > 0 {
                format!(" (the stack was updated: {})", outcome.status)
            } else {
                String::new()
            };
            return Err(err.context(format!("deploy stopped before the push{note}")));
        }
    };
    phases.push(Phase::new("stack", stack_time));
    let compile_time = built.as_ref().and_then(|(compile, _, _)| *compile);
    if let Some((_, _, build_time)) = &built {
        phases.push(Phase::new("build", *build_time));
    }
    Ok(Prepared {
        found,
        stack,
        built: built.map(|(_, built, _)| built),
        promoted,
        compile_time,
    })
}

/// 2b. The image to promote: its digest, checked to be in its repository.
async fn resolve_promotion(
    ctx: &Context,
    env: &Environment,
    source: &image::promote::Source,
) -> anyhow::Result<image::promote::Resolved> {
    let step = ctx.progress.step("image");
    match image::promote::resolve(&ctx.settings_file, env, &ctx.clients, source).await {
        Ok(resolved) => {
            step.finish(format!("promoting {}", resolved.origin()));
            Ok(resolved)
        }
        Err(err) => {
            step.fail("not promoted");
            Err(err)
        }
    }
}

/// Step 4: Pushes the image to the stack's repository (needs both: the image and the repository),
/// or copies the promoted one there registry to registry. Returns it with its commit.
async fn push(
    ctx: &Context,
    env: &Environment,
    tag: &image::tag::ImageTag,
    docker: &anyhow::Result<bollard::Docker>,
    prepared: &Prepared,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<(image::push::Pushed, Option<String>)> {
    let t = Instant::now();
    let stack = &prepared.stack.stack;
    let repository = stack
        .output("WebSocketRepositoryUri", &env.stack_name)?
        .to_owned();
    let login = image::push::ecr_login(&ctx.clients.ecr).await?;
    match (&prepared.promoted, &prepared.built) {
        (Some(resolved), _) => {
            let step = ctx.progress.step("copy");
            let copied = match image::promote::copy(&login, resolved, &repository).await {
                Ok(copied) => copied,
                Err(err) => {
                    step.fail("not copied");
                    return Err(err);
                }
            };
            step.finish(format!(
                "{} into {repository} ({} blob(s) copied, {} already there)",
                copied.digest, copied.layers_pushed, copied.layers_existing
            ));
            phases.push(Phase::new("copy", t.elapsed()));
            Ok((copied, resolved.commit.clone()))
        }
        (None, Some(built)) => {
            let docker = preflight::engine(docker)?;
            let source = image::push::Source {
                local_ref: &built.local_ref,
                image_id: &built.image_id,
                repository: &repository,
                repository_name: stack.output("RepositoryName", &env.stack_name)?,
                tag: &tag.tag,
            };
            let pushed = image::push::push(
                docker,
                &ctx.clients.ecr,
                &source,
                &login,
                &ctx.progress,
                ctx.interrupt(),
            )
            .await?;
            phases.push(Phase::new("push", t.elapsed()));
            Ok((pushed, tag.commit.clone()))
        }
        (None, None) => anyhow::bail!("nothing was built or promoted"),
    }
}

/// The stack after every operation of this deploy, with their counts for the summary.
struct StackDone {
    stack: Stack,
    changes: usize,
    change_sets: usize,
}

/// Step 5: First deploy only (the stack has no image yet): now that the image exists, the stack
/// gets it and creates the service, so no task ever needs an image not in the repository.
async fn create_service(
    ctx: &Context,
    env: &Environment,
    plan: StackPlan,
    first: StackApplied,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<StackDone> {
    let mut done = StackDone {
        changes: first.changes,
        change_sets: usize::from(first.change_set),
        stack: first.stack,
    };
    let has_image = done
        .stack
        .parameters
        .get("ImageUri")
        .is_some_and(|v| !v.is_empty());
    if has_image {
        return Ok(done);
    }
    let t = Instant::now();
    let outcome = apply_stack(
        &ctx.clients,
        env,
        plan,
        false,
        &ctx.progress,
        ctx.interrupt(),
    )
    .await?;
    done.stack = outcome.stack;
    done.changes += outcome.changes;
    done.change_sets += usize::from(outcome.change_set);
    phases.push(Phase::new("service", t.elapsed()));
    Ok(done)
}

/// The parameters for the service stack.
struct StackPlan {
    /// The stack as preflight found it (or as the first operation left it).
    state: Readiness,
    parameters: Vec<Parameter>,
}

impl StackPlan {
    /// The first stack operation of a deploy: everything from settings and preflight; the image
    /// stays as it is (empty on creation: no service until the image is pushed).
    fn first(env: &Environment, found: &preflight::Found) -> Self {
        let ready = matches!(found.stack, Readiness::Ready);
        let mut parameters = common_parameters(env, found);
        if ready {
            parameters.push(keep("ImageUri"));
            parameters.push(keep("DesiredCount"));
        } else {
            parameters.push(param("ImageUri", ""));
            parameters.push(param("DesiredCount", env.desired_count.to_string()));
        }
        Self {
            state: found.stack.clone(),
            parameters,
        }
    }

    /// Sets the image (first deploy, once it is pushed).
    fn with_image(env: &Environment, found: &preflight::Found, image: &str) -> Self {
        let mut parameters = common_parameters(env, found);
        parameters.push(param("ImageUri", image));
        parameters.push(param("DesiredCount", env.desired_count.to_string()));
        Self {
            state: Readiness::Ready,
            parameters,
        }
    }
}

fn common_parameters(env: &Environment, found: &preflight::Found) -> Vec<Parameter> {
    let mut parameters = vec![
        param("Environment", &env.name),
        param("VpcId", &found.network.vpc_id),
        param("SubnetIds", found.network.subnet_ids.join(",")),
        // posture: private tasks when the VPC has subnets for them (deploy/subnets.rs)
        param("TaskSubnetIds", found.network.task_subnet_ids.join(",")),
        param(
            "AssignPublicIp",
            if found.network.assign_public_ip {
                "ENABLED"
            } else {
                "DISABLED"
            },
        ),
        param("EnableExecuteCommand", env.exec.to_string()),
        param("AccessLogsBucket", &env.access_logs_bucket),
        param("KmsKeyArn", &env.kms_key_arn),
        param("AlarmTopicArn", &env.alarm_topic_arn),
        param("VpcCidrs", found.network.vpc_cidrs.join(",")),
        param("Cpu", env.cpu.to_string()),
        param("Memory", env.memory.to_string()),
        param("MinTasks", env.min_tasks.to_string()),
        param("MaxTasks", env.max_tasks.to_string()),
        param("UseFargateSpot", env.fargate_spot.to_string()),
        param(
            "CertificateArn",
            env.certificate_arn.clone().unwrap_or_default(),
        ),
        param("JwtJwksUrl", &env.jwt.jwks_url),
        param("JwtIssuer", &env.jwt.issuer),
        param("JwtAudience", &env.jwt.audience),
        param("Broker", env.broker.kind.as_str()),
        param(
            "ExternalRedisUrl",
            env.broker.redis_url.clone().unwrap_or_default(),
        ),
        param("ExternalRedisCluster", env.broker.cluster.to_string()),
    ];
    for (key, value) in &found.main {
        parameters.push(param(key, value));
    }
    parameters
}

/// A stack operation's result.
struct StackApplied {
    stack: Stack,
    status: String,
    changes: usize,
    /// Whether CloudFormation computed a change set (not when the stack already was as asked).
    change_set: bool,
}

/// Plans, shows, (confirms,) executes and watches one change set.
async fn apply_stack(
    clients: &Clients,
    env: &Environment,
    plan: StackPlan,
    confirm: bool,
    progress: &Progress,
    interrupt: &Interrupt,
) -> anyhow::Result<StackApplied> {
    let step = progress.step(format!("stack {}", env.stack_name));
    let kind = match plan.state {
        Readiness::Missing { in_review: true } => {
            remove_empty_stack(clients, env, &step, interrupt).await?;
            ChangeSetType::Create
        }
        Readiness::Missing { in_review: false } => ChangeSetType::Create,
        Readiness::Ready => ChangeSetType::Update,
    };
    let tags = vec![
        Tag::builder().key("Environment").value(&env.name).build(),
        Tag::builder().key("ManagedBy").value("wsctl").build(),
    ];
    let request = changeset::Request {
        stack_name: &env.stack_name,
        kind: kind.clone(),
        template_body: TEMPLATE,
        parameters: plan.parameters,
        tags,
        role_arn: env.cloudformation_role_arn.as_deref(),
    };
    let as_asked = match kind {
        ChangeSetType::Update => {
            unchanged::already_applied(&clients.cloudformation, &request).await
        }
        _ => None,
    };
    let change_set = as_asked.is_none();
    let planned = if change_set {
        step.set_message("computing the change set");
        changeset::plan(&clients.cloudformation, request).await?
    } else {
        Planned::NoChanges
    };
    let set = match planned {
        Planned::NoChanges => {
            let stack = match as_asked {
                Some(stack) => stack,
                None => read_stack(clients, env).await?,
            };
            step.finish(format!("up to date ({})", stack.status));
            let status = stack.status.clone();
            return Ok(StackApplied {
                stack,
                status,
                changes: 0,
                change_set,
            });
        }
        Planned::Ready(set) => set,
    };
    show_changes(&step, &kind, &set);
    if confirm && !ask(progress, &format!("Apply these changes to {}?", env.name)) {
        changeset::delete(&clients.cloudformation, &set.id).await;
        step.fail("cancelled");
        return Err(fail(Exit::Failure, "cancelled: the stack was not changed"));
    }
    let outcome = execute_and_watch(clients, env, &set, &step, interrupt).await?;
    if let Some((line, err)) = watch_failure(env, &outcome) {
        step.fail(line);
        return Err(err);
    }
    let status = outcome.status;
    let stack = read_stack(clients, env).await?;
    step.finish(format!("{status} ({} change(s))", set.changes.len()));
    Ok(StackApplied {
        stack,
        status,
        changes: set.changes.len(),
        change_set: true,
    })
}

/// Lists the change set's resource changes under the stack step.
fn show_changes(step: &crate::progress::Step, kind: &ChangeSetType, set: &changeset::ChangeSet) {
    let verb = if *kind == ChangeSetType::Create {
        "create"
    } else {
        "update"
    };
    if set.changes.is_empty() {
        step.println(format!("{verb}: CloudFormation listed no resource changes"));
    } else {
        step.println(format!("{verb}: {} resource change(s):", set.changes.len()));
        for change in &set.changes {
            step.println(format!("  {}", change.line()));
        }
    }
}

/// Executes the change set and watches the stack until CloudFormation is done, or Ctrl-C
/// stops the watching (not CloudFormation).
async fn execute_and_watch(
    clients: &Clients,
    env: &Environment,
    set: &changeset::ChangeSet,
    step: &crate::progress::Step,
    interrupt: &Interrupt,
) -> anyhow::Result<events::StackOutcome> {
    // Events after the newest one so far are this operation's (AWS's clock, not ours).
    let since = events::latest_event_time(&clients.cloudformation, &env.stack_name)
        .await
        .map_or(SystemTime::UNIX_EPOCH, |t| t + Duration::from_millis(1));
    changeset::execute(&clients.cloudformation, set).await?;
    let outcome = events::watch(
        &clients.cloudformation,
        &env.stack_name,
        since,
        step,
        interrupt,
    )
    .await?;
    Ok(outcome)
}

/// How a watched stack operation that did not succeed is shown (its step's last line) and
/// ends the deploy; `None` when it succeeded.
fn watch_failure(
    env: &Environment,
    outcome: &events::StackOutcome,
) -> Option<(String, anyhow::Error)> {
    if outcome.interrupted {
        let err = fail(
            Exit::Interrupted,
            format!(
                "stopped watching stack {} ({}); CloudFormation carries on and rolls back by \
                 itself on failure. Watch it with: wsctl status --env {}",
                env.stack_name, outcome.status, env.name
            ),
        );
        return Some(("stopped watching".into(), err));
    }
    if !outcome.succeeded() {
        let err = fail(Exit::Failure, outcome.failure_report());
        return Some((outcome.status.clone(), err));
    }
    None
}

/// A stack in REVIEW_IN_PROGRESS holds no resources (its creating change set was never
/// executed, or failed to execute): delete it so the deploy starts from a clean CREATE.
async fn remove_empty_stack(
    clients: &Clients,
    env: &Environment,
    step: &crate::progress::Step,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    step.println(format!(
        "stack {} was never created (REVIEW_IN_PROGRESS, no resources): removing it first",
        env.stack_name
    ));
    let since = SystemTime::now();
    clients
        .cloudformation
        .delete_stack()
        .stack_name(&env.stack_name)
        .send()
        .await
        .aws_context(|| format!("deleting the empty stack {}", env.stack_name))?;
    let outcome = events::watch(
        &clients.cloudformation,
        &env.stack_name,
        since,
        step,
        interrupt,
    )
    .await?;
    if outcome.status != "DELETE_COMPLETE" {
        return Err(fail(Exit::Failure, outcome.failure_report()));
    }
    Ok(())
}

async fn read_stack(clients: &Clients, env: &Environment) -> anyhow::Result<Stack> {
    stack::describe(&clients.cloudformation, &env.stack_name)
        .await?
        .ok_or_else(|| {
            fail(
                Exit::Failure,
                format!("stack {} disappeared", env.stack_name),
            )
        })
}

/// Asks a yes/no question on the terminal; anything but "y"/"yes" is no.
pub fn ask(progress: &Progress, question: &str) -> bool {
    progress.suspend(|| {
        eprint!("{question} [y/N] ");
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
}
