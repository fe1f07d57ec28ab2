//! `wsctl.yaml`: optional per-environment settings. Without a file every environment gets the
//! defaults of the AgenticAI platform's deployment (main stack `agenticai-stack`, us-east-1,
//! 512 CPU / 1024 MiB, 1..4 tasks), so a first deploy needs no file.
//!
//! ```yaml
//! build:                      # how the image is made (all optional)
//!   context: .
//!   dockerfile: Dockerfile
//!   pre_build: scripts/stage-image
//! environments:
//!   prod:
//!     region: eu-west-1
//!     cpu: 1024
//!     memory: 2048
//!     desired_count: 2
//!     max_tasks: 8
//!     certificate_arn: arn:aws:acm:eu-west-1:123456789012:certificate/abc
//!     subnet_ids: [subnet-pub-a, subnet-pub-b, subnet-priv-a, subnet-priv-b]  # public: ALB
//!     exec: true              # ECS Exec (`wsctl exec`); off by default
//!     access_logs_bucket: my-alb-logs
//!     kms_key_arn: arn:aws:kms:eu-west-1:123456789012:key/abcd-1234
//!     alarm_topic_arn: arn:aws:sns:eu-west-1:123456789012:on-call
//!     jwt:                    # client tokens: without jwks_url the stack generates an HS256
//!       jwks_url: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json
//!       issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc
//!       audience: my-app-client-id
//!     broker: elasticache     # default; or `external` with redis_url, or `none` (one task)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::exit::{Exit, fail};

/// The whole settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvFile>,
}

/// How the image is built.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Build {
    /// Build context directory, relative to the settings file's directory.
    pub context: PathBuf,
    /// Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Command run (through `sh -c`, in the context) before the image build, e.g. the
    /// compile of the server; empty for none.
    pub pre_build: String,
}

impl Default for Build {
    fn default() -> Self {
        Self {
            context: PathBuf::from("."),
            dockerfile: "Dockerfile".into(),
            pre_build: "scripts/stage-image".into(),
        }
    }
}

/// One environment's section; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    pub region: Option<String>,
    pub main_stack: Option<String>,
    pub stack_name: Option<String>,
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub desired_count: Option<u32>,
    pub min_tasks: Option<u32>,
    pub max_tasks: Option<u32>,
    pub vpc_id: Option<String>,
    pub subnet_ids: Option<Vec<String>>,
    /// Posture: ECS Exec on (`wsctl exec`), the access-log bucket, the KMS key, the SNS topic.
    pub exec: Option<bool>,
    pub access_logs_bucket: Option<String>,
    pub kms_key_arn: Option<String>,
    pub alarm_topic_arn: Option<String>,
    pub certificate_arn: Option<String>,
    pub fargate_spot: Option<bool>,
    /// How long deploy, rollback and `status --wait` wait for the rollout, in seconds.
    pub timeout_seconds: Option<u64>,
    /// The role CloudFormation acts as when a deploy changes the stack (docs/ci.md).
    pub cloudformation_role_arn: Option<String>,
    #[serde(default)]
    pub jwt: Jwt,
    /// The cross-task broker: `elasticache` (default), `external` or `none`.
    pub broker: Option<BrokerKind>,
    /// The broker when `broker: external` (`redis://...` or `rediss://...`).
    pub redis_url: Option<String>,
    /// Whether that external broker is a cluster-mode endpoint.
    pub redis_cluster: Option<bool>,
}

/// Where the tasks' broker comes from (template parameter `Broker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// An ElastiCache Serverless Valkey cache of the environment.
    Elasticache,
    /// The Redis/Valkey at `redis_url`.
    External,
    /// The in-process hub: right for exactly one task.
    None,
}

impl BrokerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerKind::Elasticache => "elasticache",
            BrokerKind::External => "external",
            BrokerKind::None => "none",
        }
    }
}

/// The broker of one environment, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub kind: BrokerKind,
    pub redis_url: Option<String>,
    pub cluster: bool,
}

/// Which tokens the server accepts. Without `jwks_url` the stack generates an HS256 signing
/// secret (`wsctl token` mints tokens with it); with it, tokens come from that provider.
/// Empty strings mean unset.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Jwt {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
}

/// Everything a command needs to know about one environment, defaults applied.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub region: Option<String>,
    pub main_stack: String,
    pub stack_name: String,
    pub cluster: String,
    pub service: String,
    pub repository: String,
    pub log_group: String,
    pub cpu: u32,
    pub memory: u32,
    pub desired_count: u32,
    pub min_tasks: u32,
    pub max_tasks: u32,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub exec: bool,
    /// Empty: none (the stack parameters' convention).
    pub access_logs_bucket: String,
    pub kms_key_arn: String,
    pub alarm_topic_arn: String,
    pub certificate_arn: Option<String>,
    pub fargate_spot: bool,
    pub timeout: Duration,
    /// The stack's CloudFormation service role (None: CloudFormation keeps the stack's own,
    /// or acts as the caller).
    pub cloudformation_role_arn: Option<String>,
    pub jwt: Jwt,
    pub broker: Broker,
    /// The build settings, with `context` resolved against the settings file's directory.
    pub build: Build,
}

/// Reads the settings file if it exists and resolves environment `env`.
pub fn load(path: &Path, env: &str) -> anyhow::Result<Environment> {
    let file = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("in settings file {}", path.display()))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => File::default(),
        Err(err) => {
            return Err(err).with_context(|| format!("reading settings file {}", path.display()));
        }
    };
    let base = path.parent().unwrap_or(Path::new(""));
    resolve(file, env, base)
}

fn parse(text: &str) -> anyhow::Result<File> {
    serde_yaml::from_str(text).map_err(|err| fail(Exit::Usage, format!("invalid settings: {err}")))
}

fn resolve(mut file: File, env: &str, base: &Path) -> anyhow::Result<Environment> {
    validate_env_name(env)?;
    let section = file.environments.remove(env).unwrap_or_default();
    let name = env.to_owned();
    let service = format!("agenticai-websocket-{name}");
    let mut build = file.build;
    build.context = base.join(&build.context);
    let resolved = Environment {
        region: section.region,
        main_stack: section
            .main_stack
            .unwrap_or_else(|| "agenticai-stack".into()),
        stack_name: section.stack_name.unwrap_or_else(|| service.clone()),
        cluster: format!("agenticai-cluster-{name}"),
        repository: service.clone(),
        log_group: format!("/ecs/{service}"),
        service,
        cpu: section.cpu.unwrap_or(512),
        memory: section.memory.unwrap_or(1024),
        desired_count: section.desired_count.unwrap_or(1),
        min_tasks: section.min_tasks.unwrap_or(1),
        max_tasks: section.max_tasks.unwrap_or(4),
        vpc_id: section.vpc_id,
        subnet_ids: section.subnet_ids.unwrap_or_default(),
        exec: section.exec.unwrap_or(false),
        access_logs_bucket: section.access_logs_bucket.unwrap_or_default(),
        kms_key_arn: section.kms_key_arn.unwrap_or_default(),
        alarm_topic_arn: section.alarm_topic_arn.unwrap_or_default(),
        certificate_arn: section.certificate_arn.filter(|arn| !arn.is_empty()),
        fargate_spot: section.fargate_spot.unwrap_or(false),
        timeout: Duration::from_secs(section.timeout_seconds.unwrap_or(900)),
        cloudformation_role_arn: section
            .cloudformation_role_arn
            .filter(|arn| !arn.is_empty()),
        jwt: section.jwt,
        broker: Broker {
            kind: section.broker.unwrap_or(BrokerKind::Elasticache),
            redis_url: section.redis_url.filter(|u| !u.is_empty()),
            cluster: section.redis_cluster.unwrap_or(false),
        },
        build,
        name,
    };
    check_sizes(&resolved)?;
    Ok(resolved)
}

fn validate_env_name(env: &str) -> anyhow::Result<()> {
    let ok = !env.is_empty()
        && env.len() <= 15
        && !env.ends_with('-')
        && env.starts_with(|c: char| c.is_ascii_lowercase())
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(fail(
        Exit::Usage,
        format!(
            "invalid environment name '{env}': use 1-15 lowercase letters, digits or '-', \
             starting with a letter and not ending with '-' (it becomes part of AWS resource names)"
        ),
    ))
}

/// Checks what AWS would reject later, so the operator hears it before anything changes.
fn check_sizes(env: &Environment) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    // Fargate's valid CPU / memory pairs (MiB).
    let memory_ok = match env.cpu {
        256 => [512, 1024, 2048].contains(&env.memory),
        512 => (1024..=4096).contains(&env.memory) && env.memory.is_multiple_of(1024),
        1024 => (2048..=8192).contains(&env.memory) && env.memory.is_multiple_of(1024),
        2048 => (4096..=16384).contains(&env.memory) && env.memory.is_multiple_of(1024),
        4096 => (8192..=30720).contains(&env.memory) && env.memory.is_multiple_of(1024),
        _ => {
            problems.push(format!(
                "cpu {} is not a Fargate size (256, 512, 1024, 2048, 4096)",
                env.cpu
            ));
            true
        }
    };
    if !memory_ok {
        problems.push(format!(
            "memory {} MiB is not valid with cpu {} on Fargate",
            env.memory, env.cpu
        ));
    }
    // A service at 0 tasks runs no release: a deploy to it would "complete" with nothing
    // running. (Scale to zero is `wsctl teardown`, or UpdateService by hand.)
    if env.desired_count == 0 {
        problems.push(
            "desired_count 0 would deploy a release that runs no task: use 1 or more".to_owned(),
        );
    }
    if env.min_tasks == 0 {
        problems.push(
            "min_tasks 0 lets auto scaling stop every task, and then no client can connect: \
             use 1 or more"
                .to_owned(),
        );
    }
    if env.min_tasks > env.max_tasks {
        problems.push(format!(
            "min_tasks {} is above max_tasks {}",
            env.min_tasks, env.max_tasks
        ));
    }
    if !(env.min_tasks..=env.max_tasks).contains(&env.desired_count) {
        problems.push(format!(
            "desired_count {} is outside min_tasks..max_tasks ({}..{})",
            env.desired_count, env.min_tasks, env.max_tasks
        ));
    }
    if !env.jwt.jwks_url.is_empty() && !env.jwt.jwks_url.starts_with("https://") {
        problems.push(format!(
            "jwt.jwks_url {:?} must be an https:// URL (the keys must not travel in clear)",
            env.jwt.jwks_url
        ));
    }
    problems.extend(broker_problems(env));
    if problems.is_empty() {
        return Ok(());
    }
    Err(fail(
        Exit::Usage,
        format!(
            "environment '{}' settings: {}",
            env.name,
            problems.join("; ")
        ),
    ))
}

/// A broker setting that would lose updates or fail at deploy time.
fn broker_problems(env: &Environment) -> Vec<String> {
    let b = &env.broker;
    let mut problems = Vec::new();
    match (b.kind, &b.redis_url) {
        (BrokerKind::External, None) => problems.push(
            "broker: external needs redis_url: rediss://[user:password@]host:port".to_owned(),
        ),
        (BrokerKind::External, Some(u))
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) =>
        {
            problems.push(format!(
                "redis_url {u:?} is not redis://... or rediss://... (TLS)"
            ));
        }
        (BrokerKind::Elasticache | BrokerKind::None, Some(_)) => problems.push(format!(
            "redis_url is only used with broker: external (broker is {})",
            b.kind.as_str()
        )),
        _ => {}
    }
    if b.kind == BrokerKind::None && env.max_tasks > 1 {
        problems.push(format!(
            "broker: none is the in-process hub, right for exactly one task, but max_tasks is {}: \
             a publish would reach only the clients of one task. Set max_tasks: 1 (and \
             min_tasks/desired_count 1), or use broker: elasticache",
            env.max_tasks
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::classify;

    #[test]
    fn the_broker_is_elasticache_unless_chosen_otherwise() {
        let env = resolve(File::default(), "prod", Path::new("")).expect("defaults");
        assert_eq!(env.broker.kind, BrokerKind::Elasticache);
        let file = parse(
            "environments:\n  dev:\n    broker: external\n    redis_url: rediss://u:p@cache:6379\n    redis_cluster: true\n",
        )
        .expect("yaml");
        let dev = resolve(file, "dev", Path::new("")).expect("valid");
        assert_eq!(dev.broker.kind, BrokerKind::External);
        assert_eq!(
            dev.broker.redis_url.as_deref(),
            Some("rediss://u:p@cache:6379")
        );
        assert!(dev.broker.cluster);
    }

    #[test]
    fn a_broker_that_would_lose_updates_is_a_usage_error() {
        for (yaml, says) in [
            ("broker: none\n", "max_tasks is 4"),
            ("broker: external\n", "needs redis_url"),
            (
                "broker: external\n    redis_url: http://x\n",
                "is not redis://",
            ),
            (
                "redis_url: redis://x:6379\n",
                "only used with broker: external",
            ),
        ] {
            let file = parse(&format!("environments:\n  dev:\n    {yaml}")).expect("yaml");
            let err = resolve(file, "dev", Path::new("")).expect_err(yaml);
            assert_eq!(classify(&err), Exit::Usage, "{yaml}");
            assert!(err.to_string().contains(says), "{yaml}: {err}");
        }
        let one =
            parse("environments:\n  dev:\n    broker: none\n    max_tasks: 1\n").expect("yaml");
        assert_eq!(
            resolve(one, "dev", Path::new(""))
                .expect("one task")
                .broker
                .kind,
            BrokerKind::None
        );
        let typo = parse("environments:\n  dev:\n    broker: redis\n").expect_err("unknown kind");
        assert!(typo.to_string().contains("elasticache"), "{typo}");
    }

    #[test]
    fn defaults_follow_the_platform_deployment() {
        let env = resolve(File::default(), "prod", Path::new("")).expect("defaults are valid");
        assert_eq!(env.main_stack, "agenticai-stack");
        assert_eq!(env.stack_name, "agenticai-websocket-prod");
        assert_eq!(env.cluster, "agenticai-cluster-prod");
        assert_eq!(env.service, "agenticai-websocket-prod");
        assert_eq!(env.log_group, "/ecs/agenticai-websocket-prod");
        assert_eq!((env.cpu, env.memory), (512, 1024));
        assert_eq!((env.min_tasks, env.desired_count, env.max_tasks), (1, 1, 4));
        assert_eq!(env.region, None);
    }

    #[test]
    fn a_section_overrides_only_its_environment() {
        let file = parse(
            "environments:\n  prod:\n    region: eu-west-1\n    cpu: 1024\n    memory: 2048\n",
        )
        .expect("valid yaml");
        let prod = resolve(parse_clone(&file), "prod", Path::new("")).expect("valid");
        assert_eq!(prod.region.as_deref(), Some("eu-west-1"));
        assert_eq!((prod.cpu, prod.memory), (1024, 2048));
        let staging = resolve(file, "staging", Path::new("")).expect("valid");
        assert_eq!((staging.cpu, staging.memory), (512, 1024));
        assert_eq!(staging.stack_name, "agenticai-websocket-staging");
    }

    fn parse_clone(file: &File) -> File {
        File {
            build: file.build.clone(),
            environments: file.environments.clone(),
        }
    }

    #[test]
    fn unknown_keys_and_bad_sizes_are_usage_errors() {
        let err = parse("environments:\n  prod:\n    cpus: 1\n").expect_err("typo");
        assert_eq!(classify(&err), Exit::Usage);
        assert!(err.to_string().contains("cpus"), "{err}");

        let file = parse("environments:\n  prod:\n    cpu: 512\n    memory: 512\n").expect("yaml");
        let err = resolve(file, "prod", Path::new("")).expect_err("bad pair");
        assert_eq!(classify(&err), Exit::Usage);
        assert!(err.to_string().contains("memory 512"), "{err}");
    }

    #[test]
    fn a_deploy_of_zero_tasks_is_refused() {
        for (yaml, needle) in [
            ("desired_count: 0\n    min_tasks: 0", "desired_count 0"),
            ("min_tasks: 0", "min_tasks 0"),
        ] {
            let file = parse(&format!("environments:\n  dev:\n    {yaml}\n")).expect("yaml");
            let err = resolve(file, "dev", Path::new("")).expect_err(yaml);
            assert_eq!(classify(&err), Exit::Usage, "{yaml}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn jwt_settings_are_per_environment_and_the_jwks_url_must_be_https() {
        let text = "environments:\n  prod:\n    jwt:\n      jwks_url: https://idp.example/jwks.json\n      \
                    issuer: https://idp.example\n";
        let prod = resolve(parse(text).expect("yaml"), "prod", Path::new("")).expect("valid");
        assert_eq!(prod.jwt.jwks_url, "https://idp.example/jwks.json");
        assert_eq!(prod.jwt.issuer, "https://idp.example");
        assert_eq!(prod.jwt.audience, "");
        let dev = resolve(parse(text).expect("yaml"), "dev", Path::new("")).expect("valid");
        assert_eq!(dev.jwt.jwks_url, "", "dev keeps the generated secret");

        let plain = "environments:\n  prod:\n    jwt:\n      jwks_url: http://idp.example/jwks\n";
        let err = resolve(parse(plain).expect("yaml"), "prod", Path::new("")).expect_err("http");
        assert_eq!(classify(&err), Exit::Usage);
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn environment_names_must_fit_aws_names() {
        for bad in [
            "",
            "Prod",
            "prod_1",
            "1prod",
            "a-very-long-environment-name",
        ] {
            let err = resolve(File::default(), bad, Path::new("")).expect_err(bad);
            assert_eq!(classify(&err), Exit::Usage, "{bad}");
        }
    }
}
