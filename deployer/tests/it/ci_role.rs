//! The CI deploy role, enforced: the real `wsctl` runs with the keys of a user that holds
//! exactly the actions of `templates/ci-role.yaml`'s DeployRole, as CloudFormation made its
//! policies, in an emulator that checks every call against IAM (server/tests/common/iam.rs).
//! deploy, status, releases, logs, a second deploy and rollback all pass; with one action
//! removed the command fails with AWS's access-denied error naming that action, and wsctl's
//! hint says what grants it.
//!
//! moto checks these services' calls against resource `*` and evaluates no conditions, so the
//! user holds each action on `*`: this proves the action list is enough and each action
//! needed; the scoping is checked on the template (`deployer/src/permissions.rs`). See
//! docs/testing.md, "IAM enforcement".

#![allow(clippy::unwrap_used)]

#[allow(dead_code, clippy::unwrap_used)]
#[path = "../../../server/tests/it/common/iam.rs"]
mod iam;

use std::process::Output;

use crate::support::*;
use iam::{IamEmulator, Keys};

/// An IAM-enforcing emulator with environment `env`'s main stack and ci-role stack.
struct Ground {
    emulator: IamEmulator,
    env: String,
    project: Project,
    /// The ci-role stack's name and its CloudFormationRoleArn output.
    ci_stack: String,
    cloudformation_role: String,
}

fn ground(prefix: &str) -> Ground {
    // the stack's cache resolves to the local redis (launcher fix 15), as on the shared emulator
    let redis = services_env()
        .get("WS_TEST_REDIS_URL")
        .map(|url| {
            url.trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_owned()
        })
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let emulator = IamEmulator::start_with(&[
        // services run their tasks, so a rollout completes (as on the shared emulator)
        ("MOTO_ECS_SERVICE_RUNNING", "10"),
        ("WSCTL_EMULATOR_REDIS", redis.as_str()),
    ]);
    let env = unique_env(prefix);
    let main_stack = format!("main-{env}");
    emulator.stack(
        &main_stack,
        "templates/main-stack.yaml",
        &[("Environment", &env)],
    );
    let ci_stack = format!("wsctl-ci-{env}");
    let ci = emulator.stack(
        &ci_stack,
        "templates/ci-role.yaml",
        &[
            ("Environment", &env),
            ("MainStackName", &main_stack),
            ("GitHubRepository", "agenticai/websocket"),
            ("GitHubEnvironment", &env),
            // moto's CloudFormation cannot create an AWS::IAM::OIDCProvider
            (
                "OidcProviderArn",
                "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
            ),
        ],
    );
    let cloudformation_role = ci["outputs"]["CloudFormationRoleArn"]
        .as_str()
        .unwrap_or_else(|| panic!("the ci-role stack's outputs: {ci:#}"))
        .to_owned();
    let project = Project::new(&env, &main_stack, TINY_DOCKERFILE);
    Ground {
        emulator,
        env,
        project,
        ci_stack,
        cloudformation_role,
    }
}

impl Ground {
    /// A user with the deploy role's actions, minus `dropped`.
    fn user(&self, name: &str, dropped: &[&str]) -> Keys {
        self.emulator
            .role_actions_user(name, &self.ci_stack, "DeployRole", dropped)
    }

    /// `wsctl ARGS --env ENV --config ...` acting as `keys` against this emulator.
    fn wsctl(&self, keys: &Keys, args: &[&str]) -> Output {
        let config = self.project.config();
        let mut all = args.to_vec();
        all.extend(["--env", &self.env, "--config", config.to_str().unwrap()]);
        let vars = keys.env(&self.emulator.endpoint);
        let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        wsctl_with(&all, &extra)
    }

    fn deploy(&self, keys: &Keys) -> Output {
        self.wsctl(
            keys,
            &[
                "deploy",
                "--yes",
                "--output",
                "json",
                "--cloudformation-role-arn",
                &self.cloudformation_role,
            ],
        )
    }
}

/// Asserts `out` failed with AWS's denial of `action` and wsctl's hint about it.
fn denied(what: &str, out: &Output, action: &str) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded without {action}");
    assert!(
        stderr.contains(&format!("not authorized to perform: {action}")),
        "{what}: the error names {action}:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("hint: the credentials lack {action}")),
        "{what}: the hint names {action}:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_role_is_enough_to_deploy_operate_and_roll_back() {
    let ground = ground("ci");
    let ci = ground.user("ci", &[]);

    let first = succeeded("the first deploy", &ground.deploy(&ci));
    assert_eq!(first["rollout"]["verdict"], "completed", "{first:#}");
    // The stack's changes ran as the CloudFormation service role.
    let admin = ground.emulator.sdk(&ground.emulator.admin).await;
    let stack = aws_sdk_cloudformation::Client::new(&admin)
        .describe_stacks()
        .stack_name(first["stack"].as_str().unwrap())
        .send()
        .await
        .expect("describe the stack as the administrator");
    assert_eq!(
        stack.stacks()[0].role_arn(),
        Some(ground.cloudformation_role.as_str()),
        "the stack's service role"
    );

    let status = succeeded(
        "status",
        &ground.wsctl(&ci, &["status", "--output", "json"]),
    );
    assert!(status.is_object(), "{status:#}");
    let logs = ground.wsctl(&ci, &["logs", "--since", "1h"]);
    assert!(logs.status.success(), "logs: {}", text(&logs.stderr));

    ground.project.write("payload.txt", "release two\n");
    let second = succeeded("the second deploy", &ground.deploy(&ci));
    assert_eq!(second["rollout"]["verdict"], "completed", "{second:#}");
    assert_eq!(second["revision_registered"], true, "{second:#}");
    let releases = succeeded(
        "releases",
        &ground.wsctl(&ci, &["releases", "--output", "json"]),
    );
    assert_eq!(
        releases["releases"].as_array().map(Vec::len),
        Some(2),
        "{releases:#}"
    );
    let rollback = succeeded(
        "rollback",
        &ground.wsctl(&ci, &["rollback", "--output", "json"]),
    );
    assert_eq!(rollback["verdict"]["verdict"], "completed", "{rollback:#}");

    // Without the registration, a release cannot be made: the error says which action.
    let narrow = ground.user("ci-no-register", &["ecs:RegisterTaskDefinition"]);
    ground.project.write("payload.txt", "release three\n");
    denied(
        "a deploy without ecs:RegisterTaskDefinition",
        &ground.deploy(&narrow),
        "ecs:RegisterTaskDefinition",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_one_action_the_deploy_stops_naming_it_and_changes_nothing() {
    let ground = ground("cx");
    let narrow = ground.user("ci-no-execute", &["cloudformation:ExecuteChangeSet"]);
    let out = ground.deploy(&narrow);
    denied(
        "a deploy without cloudformation:ExecuteChangeSet",
        &out,
        "cloudformation:ExecuteChangeSet",
    );
    // The change set was computed but never executed: no stack was created.
    let admin = ground.emulator.sdk(&ground.emulator.admin).await;
    let described = aws_sdk_cloudformation::Client::new(&admin)
        .describe_stacks()
        .stack_name(format!("agenticai-websocket-{}", ground.env))
        .send()
        .await;
    let status = described
        .ok()
        .and_then(|d| d.stacks().first().and_then(|s| s.stack_status().cloned()));
    assert!(
        status
            .as_ref()
            .is_none_or(|s| s.as_str() == "REVIEW_IN_PROGRESS"),
        "the stack was not created: {status:?}"
    );
}
