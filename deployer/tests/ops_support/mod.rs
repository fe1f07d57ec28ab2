//! Shared set-up for the operating-command tests (`ops_*.rs`): the local services started by
//! `scripts/services up`, environments deployed by the real `wsctl deploy` (releases of a tiny
//! image, one git commit each), logs by PutLogEvents, and the real `wsctl` binary run against
//! them.
//!
//! Tests share one emulator with each other and with other test suites, so every test uses an
//! environment name of its own (random suffix) instead of resetting the emulator.

#![allow(dead_code)] // each test file uses a part of this module

use std::process::{Command, Output};
use std::sync::Mutex;

pub mod proxy;

use aws_config::SdkConfig;

// The emulator plumbing (services env file, SDK config, unique names) is the deploy tests'.
#[path = "../deploy_support/mod.rs"]
mod deploy_support;
use deploy_support::{Project, TINY_DOCKERFILE, create_main_stack, deploy_json};
#[allow(unused_imports)] // each test file uses a part of these
pub use deploy_support::{registry_digest, sdk_config, services_env, unique_env};

/// Runs the real `wsctl` against the emulator, with no settings file and no terminal.
pub fn wsctl(args: &[&str]) -> Output {
    wsctl_command(args).output().expect("run wsctl")
}

pub fn wsctl_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsctl"));
    command
        .args(args)
        .args(["--config", "/nonexistent/wsctl.yaml"])
        .envs(services_env())
        .env("CI", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("WSCTL_ENV")
        .stdin(std::process::Stdio::null());
    command
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn repository_uri(env: &str) -> String {
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-{env}")
}

/// An environment deployed by the real `wsctl deploy`: its own main stack, and a tiny image
/// (`deploy_support::TINY_DOCKERFILE`) built from a git repository in a temp dir, one commit
/// per release, so each release has its commit for a tag, its digest in the registry and in
/// the emulator's ECR, and a task definition revision of its own.
pub struct Deployed {
    pub env: String,
    pub config: SdkConfig,
    project: Project,
    /// (label, the deploy's JSON summary), oldest first.
    releases: Mutex<Vec<(String, serde_json::Value)>>,
}

impl Deployed {
    /// The first deploy into a new environment; `label` is the release's content.
    pub async fn create(env: &str, label: &str) -> Self {
        let config = sdk_config().await;
        let main_stack = format!("main-{env}");
        create_main_stack(&config, &main_stack, env).await;
        let project = Project::new(env, &main_stack, TINY_DOCKERFILE);
        git(&project, &["init", "--quiet"]);
        let deployed = Self {
            env: env.to_owned(),
            config,
            project,
            releases: Mutex::new(Vec::new()),
        };
        deployed.release(label).await;
        deployed
    }

    /// Commits a change (`label` as the payload) and deploys it. Returns its task definition.
    pub async fn release(&self, label: &str) -> String {
        self.project.write("payload.txt", &format!("{label}\n"));
        git(&self.project, &["add", "--all"]);
        git(&self.project, &["commit", "--quiet", "--message", label]);
        let summary = deploy_json(&self.project, &self.env);
        assert_eq!(summary["rollout"]["verdict"], "completed", "{summary:#}");
        let arn = summary["task_definition"]
            .as_str()
            .expect("task_definition")
            .to_owned();
        self.releases
            .lock()
            .expect("releases")
            .push((label.to_owned(), summary));
        arn
    }

    /// What the deploy of `label` reported, e.g. `summary("one")["image_digest"]`.
    pub fn summary(&self, label: &str) -> serde_json::Value {
        self.releases
            .lock()
            .expect("releases")
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no release {label}"))
    }

    /// The image tag of release `label` (its commit, made by wsctl).
    pub fn tag(&self, label: &str) -> String {
        self.summary(label)["image_tag"]
            .as_str()
            .expect("image_tag")
            .to_owned()
    }

    /// The image reference release `label` runs (`<repository>:<tag>`).
    pub fn image(&self, label: &str) -> String {
        format!("{}:{}", repository_uri(&self.env), self.tag(label))
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.config)
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.config)
    }

    pub fn cluster(&self) -> String {
        format!("agenticai-cluster-{}", self.env)
    }

    pub fn service(&self) -> String {
        format!("agenticai-websocket-{}", self.env)
    }

    /// The service as ECS describes it now.
    pub async fn described_service(&self) -> aws_sdk_ecs::types::Service {
        let out = self
            .ecs()
            .describe_services()
            .cluster(self.cluster())
            .services(self.service())
            .send()
            .await
            .expect("DescribeServices");
        out.services()[0].clone()
    }

    /// The image of the task definition the service runs now.
    pub async fn running_image(&self) -> String {
        let ecs = self.ecs();
        let td = self
            .described_service()
            .await
            .task_definition()
            .expect("task definition")
            .to_owned();
        let td = ecs
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .expect("td");
        td.task_definition().expect("td").container_definitions()[0]
            .image()
            .expect("image")
            .to_owned()
    }
}

/// Runs git in the project's directory, as a user with a name and an address.
fn git(project: &Project, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(project.dir.path())
        .args([
            "-c",
            "user.name=wsctl tests",
            "-c",
            "user.email=tests@example.invalid",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
