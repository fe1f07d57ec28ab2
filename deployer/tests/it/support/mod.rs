//! The one set of test helpers: the AWS emulator, Docker engine and registry started by
//! `scripts/services up`, a main-stack stand-in of the test's own, a tiny build context in a
//! temp dir, the real `wsctl` binary, and the lookups tests check AWS with.
//!
//! The emulator is shared with the other suites, so each test deploys an environment of its
//! own (random name, its own main stack) instead of resetting the emulator under them.

pub mod deployed;
pub mod proxy;

pub use deployed::Deployed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The exports `scripts/services up` wrote (the test's own environment wins).
pub fn services_env() -> BTreeMap<String, String> {
    let dir = std::env::var("WSCTL_SERVICES_DIR")
        .map_or_else(|_| workspace().join("target/services"), PathBuf::from);
    let file = dir.join("env");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let mut vars: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(['\'', '"']).to_owned()))
        .collect();
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        if let Ok(value) = std::env::var(key) {
            vars.insert(key.to_owned(), value);
        }
    }
    assert!(
        vars.contains_key("AWS_ENDPOINT_URL"),
        "the AWS emulator is not running: start the services with `scripts/services up` (no \
         AWS_ENDPOINT_URL and no {})",
        file.display()
    );
    vars.entry("AWS_REGION".into())
        .or_insert_with(|| "us-east-1".into());
    vars.entry("AWS_ACCESS_KEY_ID".into())
        .or_insert_with(|| "testing".into());
    vars.entry("AWS_SECRET_ACCESS_KEY".into())
        .or_insert_with(|| "testing".into());
    vars.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    vars
}

pub async fn sdk_config() -> SdkConfig {
    let vars = services_env();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&vars["AWS_ENDPOINT_URL"])
        .region(Region::new(vars["AWS_REGION"].clone()))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// A fresh environment name (the template allows 15 characters).
pub fn unique_env(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos(),
    );
    format!("{prefix}{:08x}", hasher.finish() as u32)
}

/// The main stack of environment `env`, made from the repo's stand-in template.
pub async fn create_main_stack(config: &SdkConfig, name: &str, env: &str) {
    let template = std::fs::read_to_string(workspace().join("templates/main-stack.yaml"))
        .expect("templates/main-stack.yaml");
    create_stack(config, name, &template, env).await;
}

pub async fn create_stack(config: &SdkConfig, name: &str, template: &str, env: &str) {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    cfn.create_stack()
        .stack_name(name)
        .template_body(template)
        .parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key("Environment")
                .parameter_value(env)
                .build(),
        )
        .send()
        .await
        .expect("create the main stack");
}

/// A build context of its own: a FROM scratch image holding one small file, and a
/// wsctl.yaml pointing environment `env` at main stack `main_stack`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(env: &str, main_stack: &str, dockerfile: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
        std::fs::write(dir.path().join(".dockerignore"), "wsctl.yaml\nnot-sent/\n")
            .expect(".dockerignore");
        std::fs::write(
            dir.path().join("wsctl.yaml"),
            format!(
                "build:\n  pre_build: ''\nenvironments:\n  {env}:\n    main_stack: {main_stack}\n    \
                 timeout_seconds: 60\n"
            ),
        )
        .expect("wsctl.yaml");
        let project = Self { dir };
        project.write("payload.txt", "release one\n");
        project
    }

    pub fn write(&self, name: &str, body: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("wsctl.yaml")
    }
}

pub const TINY_DOCKERFILE: &str = "FROM scratch\nCOPY payload.txt /payload.txt\n";

/// The real `wsctl` with the emulator's variables and no terminal (stdin empty, stdout and
/// stderr pipes, so progress is plain lines). `CI`, `AWS_PROFILE` and `WSCTL_ENV` from the
/// caller's shell are removed, so a run sees only what the test gives it.
fn wsctl_base(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsctl"));
    command
        .args(args)
        .envs(services_env())
        .env_remove("CI")
        .env_remove("AWS_PROFILE")
        .env_remove("WSCTL_ENV")
        .stdin(std::process::Stdio::null());
    command
}

/// Runs `wsctl ARGS...` with `extra` variables; the settings file is the one ARGS name.
pub fn wsctl_with(args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = wsctl_base(args);
    command.envs(extra.iter().copied());
    command.output().expect("run wsctl")
}

/// `wsctl ARGS...` with no settings file: every name follows the environment's name.
pub fn wsctl_command(args: &[&str]) -> Command {
    let mut command = wsctl_base(args);
    command.args(["--config", "/nonexistent/wsctl.yaml"]);
    command
}

/// Runs [`wsctl_command`].
pub fn wsctl(args: &[&str]) -> Output {
    wsctl_command(args).output().expect("run wsctl")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stdout(output: &Output) -> String {
    text(&output.stdout)
}

pub fn stderr(output: &Output) -> String {
    text(&output.stderr)
}

/// Runs `wsctl deploy --env ENV --config <project's> ARGS...` with `extra` variables.
pub fn deploy(project: &Project, env: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    deploy_command(project, env, args, extra)
        .output()
        .expect("run wsctl deploy")
}

/// The command [`deploy`] runs, to start it in the background.
pub fn deploy_command(
    project: &Project,
    env: &str,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Command {
    let config = project.config();
    let mut all = vec![
        "deploy",
        "--env",
        env,
        "--config",
        config.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    let mut command = wsctl_base(&all);
    command.envs(extra.iter().copied());
    command
}

/// The JSON document on stdout of a command that must succeed, failing the test with its
/// stderr otherwise.
pub fn succeeded(what: &str, out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is one JSON document ({e}):\n{}",
            text(&out.stdout)
        )
    })
}

/// Runs `wsctl deploy --yes --output json` for `env` and returns the parsed summary, failing
/// the test with wsctl's stderr when it does not succeed.
pub fn deploy_json(project: &Project, env: &str) -> serde_json::Value {
    let out = deploy(project, env, &["--yes", "--output", "json"], &[]);
    assert!(
        out.status.success(),
        "wsctl deploy failed ({:?}):\n{}",
        out.status,
        text(&out.stderr)
    );
    eprintln!("{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", text(&out.stdout)))
}

/// The digest the registry serves for `image` (asked through the engine's distribution API,
/// with the emulator's ECR credentials), or why it serves none.
pub async fn registry_digest(image: &str) -> Result<String, String> {
    let docker = bollard::Docker::connect_with_defaults().map_err(|e| e.to_string())?;
    let credentials = bollard::auth::DockerCredentials {
        username: Some("AWS".into()),
        password: Some("123456789012-auth-token".into()),
        ..Default::default()
    };
    let inspected = docker
        .inspect_registry_image(image, Some(credentials))
        .await
        .map_err(|e| e.to_string())?;
    inspected
        .descriptor
        .digest
        .ok_or_else(|| "no digest".into())
}

/// Whether stack `name` exists: described, and not DELETE_COMPLETE (a deleted stack stays
/// describable by its id for a while).
pub async fn stack_exists(config: &SdkConfig, name: &str) -> bool {
    aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .is_ok_and(|out| {
            out.stacks().iter().any(|s| {
                s.stack_status()
                    .is_some_and(|st| st.as_str() != "DELETE_COMPLETE")
            })
        })
}

/// What a service runs now: (task definition ARN, image of its container).
pub async fn running(config: &SdkConfig, cluster: &str, service: &str) -> (String, String) {
    let ecs = aws_sdk_ecs::Client::new(config);
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .expect("describe the service");
    let td = out.services()[0]
        .task_definition()
        .expect("a task definition")
        .to_owned();
    let described = ecs
        .describe_task_definition()
        .task_definition(&td)
        .send()
        .await
        .expect("describe the task definition");
    let image = described
        .task_definition()
        .expect("task definition")
        .container_definitions()[0]
        .image()
        .expect("an image")
        .to_owned();
    (td, image)
}

/// A stack's outputs by key (the stack must exist).
pub async fn stack_outputs(config: &SdkConfig, stack: &str) -> BTreeMap<String, String> {
    let out = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("the stack");
    out.stacks()[0]
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap_or_default().to_owned(),
                o.output_value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
