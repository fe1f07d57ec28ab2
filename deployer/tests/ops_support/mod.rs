//! Shared set-up for the operating-command tests (`ops_*.rs`): the AWS emulator started by
//! `scripts/services up`, environments created directly with the SDK (the stack from
//! `templates/ecs.yaml`, releases as task definition revisions, images by PutImage, logs by
//! PutLogEvents), and the real `wsctl` binary run against them.
//!
//! Tests share one emulator with each other and with other test suites, so every test uses an
//! environment name of its own (random suffix) instead of resetting the emulator.

#![allow(dead_code)] // each test file uses a part of this module

use std::process::{Command, Output};

pub mod proxy;

use aws_config::SdkConfig;

// The emulator plumbing (services env file, SDK config, unique names) is the deploy tests'.
#[path = "../deploy_support/mod.rs"]
mod deploy_support;
pub use deploy_support::{sdk_config, services_env, unique_env, workspace};

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

/// An environment deployed the way wsctl leaves it: the stack from `templates/ecs.yaml`
/// (first revision naming `<repo>:<first_tag>`) and that image in the repository.
pub struct Deployed {
    pub env: String,
    pub config: SdkConfig,
}

impl Deployed {
    pub async fn create(env: &str, first_tag: &str) -> Self {
        let config = sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let vpcs = ec2
            .describe_vpcs()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("isDefault")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .expect("default VPC");
        let vpc = vpcs.vpcs()[0].vpc_id().expect("vpc id").to_owned();
        let subnets = ec2
            .describe_subnets()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc)
                    .build(),
            )
            .send()
            .await
            .expect("subnets");
        let subnets: Vec<&str> = subnets
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id())
            .take(2)
            .collect();
        let queue = "https://sqs.us-east-1.amazonaws.com/123456789012/agenticai";
        let template =
            std::fs::read_to_string(workspace().join("templates/ecs.yaml")).expect("template");
        let param = |k: &str, v: &str| {
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        };
        aws_sdk_cloudformation::Client::new(&config)
            .create_stack()
            .stack_name(format!("agenticai-websocket-{env}"))
            .template_body(template)
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .parameters(param("Environment", env))
            .parameters(param("VpcId", &vpc))
            .parameters(param("SubnetIds", &subnets.join(",")))
            .parameters(param("DataTableName", "agenticai-data"))
            .parameters(param("PMQueueUrl", &format!("{queue}-pm")))
            .parameters(param("DevQueueUrl", &format!("{queue}-dev")))
            .parameters(param("QAQueueUrl", &format!("{queue}-qa")))
            .parameters(param("OpsQueueUrl", &format!("{queue}-ops")))
            .parameters(param(
                "ImageUri",
                &format!("{}:{first_tag}", repository_uri(env)),
            ))
            .send()
            .await
            .expect("create the stack from templates/ecs.yaml");
        let deployed = Self {
            env: env.to_owned(),
            config,
        };
        deployed.put_image(first_tag).await;
        deployed
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

    /// Puts an image under `tag` into the environment's repository (a manifest, as a push
    /// would leave it).
    pub async fn put_image(&self, tag: &str) {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1234,
                "digest": format!("sha256:{:0>64}", tag),
            },
            "layers": [],
        });
        self.ecr()
            .put_image()
            .repository_name(self.service())
            .image_manifest(manifest.to_string())
            .image_tag(tag)
            .send()
            .await
            .expect("put image");
    }

    /// Registers a release the way deploy does: a copy of revision 1 naming `<repo>:<tag>`,
    /// with the commit in the tags. Returns the new revision's ARN.
    pub async fn register_release(&self, tag: &str) -> String {
        let ecs = self.ecs();
        let first = ecs
            .describe_task_definition()
            .task_definition(format!("{}:1", self.service()))
            .send()
            .await
            .expect("first revision");
        let first = first.task_definition().expect("task definition");
        let containers: Vec<_> = first
            .container_definitions()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.image = Some(format!("{}:{tag}", repository_uri(&self.env)));
                c.memory = Some(1024);
                c
            })
            .collect();
        let registered = ecs
            .register_task_definition()
            .family(self.service())
            .set_container_definitions(Some(containers))
            .cpu("512")
            .memory("1024")
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key("wsctl:git-commit")
                    .value(tag)
                    .build(),
            )
            .send()
            .await
            .expect("register release");
        registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .expect("arn")
            .to_owned()
    }

    /// Deploys a release: registers it, puts its image and points the service at it.
    pub async fn release(&self, tag: &str) -> String {
        self.put_image(tag).await;
        let arn = self.register_release(tag).await;
        self.ecs()
            .update_service()
            .cluster(self.cluster())
            .service(self.service())
            .task_definition(&arn)
            .send()
            .await
            .expect("update service");
        arn
    }

    /// The image of the task definition the service runs now.
    pub async fn running_image(&self) -> String {
        let ecs = self.ecs();
        let service = ecs
            .describe_services()
            .cluster(self.cluster())
            .services(self.service())
            .send()
            .await
            .expect("service");
        let td = service.services()[0]
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
