//! `wsctl deploy`: the whole flow, step by step, each step in its own file.
//!
//! 1. settings and SDK config (`settings.rs`, `aws.rs`)
//! 2. [`preflight`]: credentials, Docker, [`main_stack`] outputs, [`network`], stack state,
//!    all at once, before anything in AWS changes; meanwhile [`compile`] + [`image::build`]
//!    (tagged by [`image::tag`]) start, as they only work locally
//! 3. concurrently: the rest of the build and the stack change set ([`stack`]; none when
//!    [`stack::unchanged`] finds the stack as asked), so the build never waits for
//!    CloudFormation
//! 4. [`image::push`] to ECR (needs both: the image and the repository)
//! 5. first deploy only: the stack gets the pushed image and creates the service, so no task
//!    ever needs an image that is not in the repository yet
//! 6. [`release`]: a new task definition revision only if the image changed; UpdateService
//! 7. the rollout wait and verdict (`rollout/`), then the [`summary`]

pub mod compile;
pub mod image;
pub mod main_stack;
pub mod network;
pub mod preflight;
pub mod release;
pub mod stack;
pub mod subnets;
pub mod summary;

use std::io::{BufRead as _, IsTerminal as _};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use aws_sdk_cloudformation::types::{ChangeSetType, Parameter, Tag};

use crate::cli::Global;
use crate::exit::{Exit, fail};
use crate::interrupt::Interrupt;
use crate::output::{self, Format};
use crate::progress::Progress;
use crate::rollout;
use crate::settings::{self, Environment};
use stack::changeset::{self, Planned, keep, param};
use stack::events;
use stack::state::{self, StackState};
use stack::unchanged;
use summary::{Phase, Summary};

/// The service stack's template, built into the binary so wsctl and template never drift.
pub const TEMPLATE: &str = include_str!("../../../templates/ecs.yaml");

/// The AWS clients a deploy uses, all from the one SDK config.
pub struct Clients {
    pub cfn: aws_sdk_cloudformation::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub sts: aws_sdk_sts::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub rollout: rollout::Clients,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            cfn: aws_sdk_cloudformation::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            rollout: rollout::Clients::new(config),
        }
    }
}

/// How the deploy behaves beyond the settings file.
pub struct Options {
    /// Execute stack changes without asking (prod asks on a terminal otherwise).
    pub yes: bool,
    /// Overrides the environment's rollout timeout.
    pub timeout: Option<Duration>,
    /// Stop after starting the rollout.
    pub no_wait: bool,
}

/// Runs a deploy and prints its summary; the exit code says how it ended.
pub async fn run(global: &Global, options: Options) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let mut env = settings::load(&global.config, &global.env)?;
    if let Some(timeout) = options.timeout {
        env.timeout = timeout;
    }
    let needs_confirmation = env.name == "prod" && !options.yes;
    if needs_confirmation && !std::io::stdin().is_terminal() {
        return Err(fail(
            Exit::Usage,
            "deploying to prod asks for confirmation, and there is no terminal to ask on: \
             pass --yes to deploy without asking",
        ));
    }
    let config = crate::aws::sdk_config(global, env.region.as_deref()).await;
    let region = config.region().map_or_else(String::new, |r| r.to_string());
    let clients = Clients::new(&config);
    let progress = Progress::new();
    let interrupt = Interrupt::install();
    let mut phases = Vec::new();

    // 2. Preflight, and the image build started beside it: building changes nothing in AWS,
    // and on a first deploy it is the longest step.
    let tag = image::tag::for_context(&env.build.context);
    if tag.dirty {
        progress.println(format!(
            "note: the work tree has uncommitted changes; the image is tagged {}",
            tag.tag
        ));
    }
    let docker = preflight::connect_docker();
    let build = async {
        let docker = preflight::engine(&docker)?;
        let compile = compile::run(&env.build, &progress, &interrupt).await?;
        let t = Instant::now();
        let built = image::build::build(
            docker,
            &env.build,
            &env.repository,
            &tag,
            &progress,
            &interrupt,
        )
        .await?;
        anyhow::Ok((compile, built, t.elapsed()))
    };
    tokio::pin!(build);
    let t = Instant::now();
    let preflight = preflight::run(&clients, &env, &docker, &progress);
    tokio::pin!(preflight);
    let mut built_early = None;
    // A failed preflight returns here, dropping (cancelling) the build.
    let found = loop {
        tokio::select! {
            found = &mut preflight => break found?,
            built = &mut build, if built_early.is_none() => built_early = Some(built),
        }
    };
    phases.push(Phase::new("preflight", t.elapsed()));
    let build = async {
        match built_early {
            Some(built) => built,
            None => build.await,
        }
    };

    // 3. The stack beside the rest of the build.
    let stack_work = async {
        let t = Instant::now();
        let plan = StackPlan::first(&env, &found);
        let outcome = apply_stack(
            &clients,
            &env,
            plan,
            needs_confirmation,
            &progress,
            &interrupt,
        )
        .await?;
        anyhow::Ok((outcome, t.elapsed()))
    };
    let (built, stacked) = tokio::join!(build, stack_work);
    let ((stack_out, stack_time), (compile_time, built, build_time)) = match (stacked, built) {
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
    phases.push(Phase::new("build", build_time));

    // 4. Push.
    let t = Instant::now();
    let repository = stack_out
        .stack
        .output("WebSocketRepositoryUri", &env.stack_name)?
        .to_owned();
    let login = image::push::ecr_login(&clients.ecr).await?;
    let docker = preflight::engine(&docker)?;
    let source = image::push::Source {
        local_ref: &built.local_ref,
        image_id: &built.image_id,
        repository: &repository,
        repository_name: stack_out.stack.output("RepositoryName", &env.stack_name)?,
        tag: &tag.tag,
    };
    let pushed =
        image::push::push(docker, &clients.ecr, &source, &login, &progress, &interrupt).await?;
    phases.push(Phase::new("push", t.elapsed()));

    // 5. First deploy: now that the image exists, the stack creates the service with it.
    let mut stack = stack_out.stack;
    let mut stack_changes = stack_out.changes;
    let mut change_sets = usize::from(stack_out.change_set);
    if stack
        .parameters
        .get("ImageUri")
        .is_none_or(|v| v.is_empty())
    {
        let t = Instant::now();
        let plan = StackPlan::with_image(&env, &found, &pushed.image);
        let outcome = apply_stack(&clients, &env, plan, false, &progress, &interrupt).await?;
        stack = outcome.stack;
        stack_changes += outcome.changes;
        change_sets += usize::from(outcome.change_set);
        phases.push(Phase::new("service", t.elapsed()));
    }

    // 6. Release.
    let t = Instant::now();
    let cluster = stack.output("ECSClusterName", &env.stack_name)?.to_owned();
    let service = stack
        .output("WebSocketServiceName", &env.stack_name)?
        .to_owned();
    let since = SystemTime::now();
    let release = release::roll_out(
        &clients.rollout.ecs,
        &cluster,
        &service,
        env.desired_count,
        &pushed,
        tag.commit.as_deref(),
        &progress,
    )
    .await?;
    phases.push(Phase::new("release", t.elapsed()));

    // 7. Rollout.
    let (verdict, stopped_tasks, resume) = if options.no_wait {
        (None, Vec::new(), None)
    } else {
        let t = Instant::now();
        let target = rollout::Target {
            cluster: cluster.clone(),
            service: service.clone(),
            deployment_id: Some(release.deployment_id.clone()),
            timeout: env.timeout,
            since,
            restore_to: release.previous_task_definition.clone(),
        };
        let report = rollout::wait(&clients.rollout, &target, &progress, &interrupt).await?;
        phases.push(Phase::new("rollout", t.elapsed()));
        if let Some(hint) = rollout::wait::resume_hint(&env.name, &report) {
            progress.println(hint);
        }
        let resume = rollout::wait::resume_command(&env.name, &report);
        (Some(report.verdict), report.stopped_tasks, resume)
    };

    let summary = Summary {
        environment: env.name.clone(),
        account: found.account.clone(),
        region,
        stack: env.stack_name.clone(),
        cluster,
        service,
        endpoint: stack.outputs.get("WebSocketEndpoint").cloned(),
        image: pushed.image.clone(),
        image_tag: pushed.tag.clone(),
        image_digest: pushed.digest.clone(),
        git_commit: tag.commit.clone(),
        task_definition: release.task_definition_arn.clone(),
        revision: release.revision.clone(),
        revision_registered: release.registered,
        stack_changes,
        change_sets,
        layers_pushed: pushed.layers_pushed,
        deployment_id: release.deployment_id.clone(),
        rollout: verdict.clone(),
        stopped_tasks,
        resume,
        phases,
        compile_seconds: compile_time.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    match global.output {
        Format::Json => output::print_json(&summary)?,
        Format::Text => print!("{}", summary.text()),
    }
    Ok(verdict.map_or(Exit::Success, |v| v.exit()))
}

/// The parameters for the service stack.
struct StackPlan {
    /// The stack as preflight found it (or as the first operation left it).
    state: StackState,
    parameters: Vec<Parameter>,
}

impl StackPlan {
    /// The first stack operation of a deploy: everything from settings and preflight; the image
    /// stays as it is (empty on creation: no service until the image is pushed).
    fn first(env: &Environment, found: &preflight::Found) -> Self {
        let ready = matches!(found.stack, StackState::Ready);
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
            state: StackState::Ready,
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
struct StackOutcome {
    stack: state::Stack,
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
) -> anyhow::Result<StackOutcome> {
    let step = progress.step(format!("stack {}", env.stack_name));
    let kind = match plan.state {
        StackState::Missing { in_review: true } => {
            remove_empty_stack(clients, env, &step, interrupt).await?;
            ChangeSetType::Create
        }
        StackState::Missing { in_review: false } => ChangeSetType::Create,
        StackState::Ready => ChangeSetType::Update,
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
    };
    let as_asked = match kind {
        ChangeSetType::Update => unchanged::already_applied(&clients.cfn, &request).await,
        _ => None,
    };
    let change_set = as_asked.is_none();
    let planned = if change_set {
        step.set_message("computing the change set");
        changeset::plan(&clients.cfn, request).await?
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
            return Ok(StackOutcome {
                stack,
                status,
                changes: 0,
                change_set,
            });
        }
        Planned::Ready(set) => set,
    };
    let verb = if kind == ChangeSetType::Create {
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
    if confirm && !ask(progress, &format!("Apply these changes to {}?", env.name)) {
        changeset::delete(&clients.cfn, &set.id).await;
        step.fail("cancelled");
        return Err(fail(Exit::Failure, "cancelled: the stack was not changed"));
    }
    // Events after the newest one so far are this operation's (AWS's clock, not ours).
    let since = events::latest_event_time(&clients.cfn, &env.stack_name)
        .await
        .map_or(SystemTime::UNIX_EPOCH, |t| t + Duration::from_millis(1));
    changeset::execute(&clients.cfn, &set).await?;
    let outcome = events::watch(&clients.cfn, &env.stack_name, since, &step, interrupt).await?;
    if outcome.interrupted {
        step.fail("stopped watching");
        return Err(fail(
            Exit::Interrupted,
            format!(
                "stopped watching stack {} ({}); CloudFormation carries on and rolls back by \
                 itself on failure. Watch it with: wsctl status --env {}",
                env.stack_name, outcome.status, env.name
            ),
        ));
    }
    if !outcome.succeeded() {
        step.fail(outcome.status.clone());
        return Err(fail(Exit::Failure, outcome.failure_report()));
    }
    let stack = read_stack(clients, env).await?;
    step.finish(format!(
        "{} ({} change(s))",
        outcome.status,
        set.changes.len()
    ));
    Ok(StackOutcome {
        stack,
        status: outcome.status,
        changes: set.changes.len(),
        change_set: true,
    })
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
        .cfn
        .delete_stack()
        .stack_name(&env.stack_name)
        .send()
        .await
        .map_err(crate::aws::error)
        .with_context(|| format!("deleting the empty stack {}", env.stack_name))?;
    let outcome = events::watch(&clients.cfn, &env.stack_name, since, step, interrupt).await?;
    if outcome.status != "DELETE_COMPLETE" {
        return Err(fail(Exit::Failure, outcome.failure_report()));
    }
    Ok(())
}

async fn read_stack(clients: &Clients, env: &Environment) -> anyhow::Result<state::Stack> {
    state::read(&clients.cfn, &env.stack_name)
        .await?
        .ok_or_else(|| {
            fail(
                Exit::Failure,
                format!("stack {} disappeared", env.stack_name),
            )
        })
}

/// Asks a yes/no question on the terminal; anything but "y"/"yes" is no.
fn ask(progress: &Progress, question: &str) -> bool {
    progress.suspend(|| {
        eprint!("{question} [y/N] ");
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
}
