//! An AWS emulator of the test's own that enforces IAM (scripts/emulator/iam_enforcing.py),
//! with an administrator for set-up and users that hold exactly a role's policies. Reusable by
//! any test that must prove a grant: create the resources and the stack as the administrator,
//! then act with [`IamEmulator::role_user`]'s keys only.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Keys {
    fn from_json(v: &Value) -> Self {
        Self {
            access_key_id: v["access_key_id"]
                .as_str()
                .expect("access_key_id")
                .to_owned(),
            secret_access_key: v["secret_access_key"]
                .as_str()
                .expect("secret_access_key")
                .to_owned(),
        }
    }

    /// The variables the SDK's default chain reads (for a process run with these keys).
    pub fn env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

pub struct IamEmulator {
    pub endpoint: String,
    pub admin: Keys,
    child: Child,
    // closing it ends the emulator (it serves until its stdin closes)
    stdin: Option<ChildStdin>,
}

fn script() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/emulator/iam_enforcing.py"
    )
    .to_owned()
}

impl IamEmulator {
    /// Starts it on a free port and waits until its administrator exists.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Self::start`], with moto settings in the emulator's environment (e.g.
    /// `MOTO_ECS_SERVICE_RUNNING`, for a deploy whose rollout completes).
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let mut child = Command::new("python3")
            .args([script().as_str(), "serve"])
            .envs(settings.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "python3 runs scripts/emulator/iam_enforcing.py (moto is installed by \
                 `scripts/services up`)",
            );
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the emulator's address");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the IAM-enforcing emulator did not start ({e}): {line:?}"));
        Self {
            endpoint: ready["endpoint"].as_str().expect("endpoint").to_owned(),
            admin: Keys::from_json(&ready["admin"]),
            child,
            stdin,
        }
    }

    /// An SDK configuration acting with `keys`.
    pub async fn sdk(&self, keys: &Keys) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            // (the one Credentials type of every SDK crate; this one both crates' tests have)
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                None,
                None,
                "iam-emulator",
            ))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    /// Runs one of the script's administrator commands and returns its JSON answer.
    fn admin(&self, args: &[&str]) -> Value {
        let out = Command::new("python3")
            .arg(script())
            .args(args)
            .envs(self.admin.env(&self.endpoint))
            .output()
            .expect("run iam_enforcing.py");
        assert!(
            out.status.success(),
            "iam_enforcing.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("iam_enforcing.py prints JSON")
    }

    /// Creates a stack from `template` (relative to the workspace) in the default VPC;
    /// returns {"outputs": {...}, "resources": {logical id: physical id}}.
    pub fn stack(&self, name: &str, template: &str, parameters: &[(&str, &str)]) -> Value {
        let path = format!("{}/../{template}", env!("CARGO_MANIFEST_DIR"));
        let mut args = vec![
            "stack".to_owned(),
            name.to_owned(),
            path,
            "--default-network".to_owned(),
        ];
        for (k, v) in parameters {
            args.push(format!("--parameter={k}={v}"));
        }
        self.admin(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A new user holding the inline policies of role `role` of `stack` as CloudFormation made
    /// them, minus the statements that grant any of `without`.
    pub fn role_user(&self, user: &str, stack: &str, role: &str, without: &[&str]) -> Keys {
        let mut args = vec!["role-user", user, "--stack", stack, "--role", role];
        for action in without {
            args.extend(["--without", action]);
        }
        Keys::from_json(&self.admin(&args))
    }

    /// A new user holding role `role`'s actions as CloudFormation made its policies, minus
    /// `dropped`, each granted on `*` without conditions: what moto can enforce for services
    /// it checks against resource `*` (docs/testing.md, "IAM enforcement").
    pub fn role_actions_user(&self, user: &str, stack: &str, role: &str, dropped: &[&str]) -> Keys {
        let mut args = vec![
            "role-user",
            user,
            "--stack",
            stack,
            "--role",
            role,
            "--any-resource",
        ];
        for action in dropped {
            args.extend(["--drop-action", action]);
        }
        Keys::from_json(&self.admin(&args))
    }
}

impl Drop for IamEmulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
