//! An environment deployed by the real `wsctl deploy` for the operating-command tests
//! (`ops_*.rs`, `ground_rollback.rs`): releases of a tiny image, one git commit each.

use std::process::Command;
use std::sync::Mutex;

use aws_config::SdkConfig;

use super::{Project, TINY_DOCKERFILE, create_main_stack, deploy_json, running, sdk_config};

pub fn repository_uri(env: &str) -> String {
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/agenticai-websocket-{env}")
}

/// An environment deployed by the real `wsctl deploy`: its own main stack, and a tiny image
/// ([`TINY_DOCKERFILE`]) built from a git repository in a temp dir, one commit
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

    /// The project its releases are built from.
    pub fn project(&self) -> &Project {
        &self.project
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
        running(&self.config, &self.cluster(), &self.service())
            .await
            .1
    }
}

/// Runs git in the project's directory, as a user with a name and an address.
pub fn git(project: &Project, args: &[&str]) {
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
