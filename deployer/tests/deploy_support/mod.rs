//! Shared set-up for the `wsctl deploy` tests: the AWS emulator, Docker engine and registry
//! started by `scripts/services up`, a main-stack stand-in of the test's own, a tiny build
//! context in a temp dir, and the real `wsctl` binary.
//!
//! The emulator is shared with the other suites, so each test deploys an environment of its
//! own (random name, its own main stack) instead of resetting the emulator under them.

#![allow(dead_code)] // each test file uses a part of this module

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

/// Runs the real `wsctl` with the emulator's variables, no terminal, and `extra` variables.
pub fn wsctl(args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsctl"));
    command.args(args).envs(services_env()).env_remove("CI");
    for (key, value) in extra {
        command.env(key, value);
    }
    command.output().expect("run wsctl")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `wsctl deploy --env ENV --config <project's> ARGS...` with `extra` variables.
pub fn deploy(project: &Project, env: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let config = project.config();
    let mut all = vec![
        "deploy",
        "--env",
        env,
        "--config",
        config.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    wsctl(&all, extra)
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
