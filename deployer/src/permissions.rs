//! Least privilege for CI, checked against the code: every AWS action `wsctl deploy`,
//! `status`, `logs`, `releases` and `rollback` call, and the scope each is granted on in
//! `templates/ci-role.yaml` (the Sid of its statement there). This list is the one place that
//! says what the deploy role needs: the tests below compare it with the template statement by
//! statement, and `tests/ci_role.rs` runs the commands against an emulator that enforces IAM
//! with exactly the role's policy (and fails them with one action removed).
//!
//! An action belongs here when one of those commands calls it, through the SDK or through the
//! registry (`docker push` is authorized as ECR actions). `teardown`, `scale` and `exec` are not
//! CI's: what only they call is not here.

/// One action and the statement of `templates/ci-role.yaml` that grants it.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub action: &'static str,
    /// The Sid of the statement in the DeployRole's policies.
    pub scope: &'static str,
    /// Which commands call it, and where.
    pub used_by: &'static str,
}

const fn grant(action: &'static str, scope: &'static str, used_by: &'static str) -> Grant {
    Grant {
        action,
        scope,
        used_by,
    }
}

/// The deploy role's grants.
pub const CI_GRANTS: &[Grant] = &[
    // the environment's stack
    grant(
        "cloudformation:DescribeStacks",
        "Stack",
        "every command (stack/state.rs, live_service.rs)",
    ),
    grant(
        "cloudformation:DescribeStackEvents",
        "Stack",
        "deploy (stack/events.rs)",
    ),
    grant(
        "cloudformation:GetTemplate",
        "Stack",
        "deploy (stack/unchanged.rs)",
    ),
    grant(
        "cloudformation:CreateChangeSet",
        "StackChange",
        "deploy (stack/changeset.rs)",
    ),
    grant(
        "cloudformation:DescribeChangeSet",
        "StackChange",
        "deploy (stack/changeset.rs)",
    ),
    grant(
        "cloudformation:ExecuteChangeSet",
        "StackChange",
        "deploy (stack/changeset.rs)",
    ),
    grant(
        "cloudformation:DeleteChangeSet",
        "StackChange",
        "deploy, a declined or empty change set",
    ),
    grant(
        "cloudformation:DescribeStacks",
        "MainStack",
        "deploy (main_stack.rs)",
    ),
    grant(
        "iam:PassRole",
        "PassStackRole",
        "deploy: the change set runs as CloudFormationRole",
    ),
    grant(
        "iam:PassRole",
        "PassTaskRoles",
        "deploy: a release's task definition names the stack's roles",
    ),
    // the image
    grant(
        "ecr:GetAuthorizationToken",
        "Unscoped",
        "deploy (image/push.rs)",
    ),
    grant(
        "ecr:BatchGetImage",
        "Repository",
        "deploy (image/existing.rs), releases and rollback (release/presence.rs)",
    ),
    grant(
        "ecr:BatchCheckLayerAvailability",
        "Repository",
        "deploy: docker push",
    ),
    grant(
        "ecr:InitiateLayerUpload",
        "Repository",
        "deploy: docker push",
    ),
    grant("ecr:UploadLayerPart", "Repository", "deploy: docker push"),
    grant(
        "ecr:CompleteLayerUpload",
        "Repository",
        "deploy: docker push",
    ),
    grant("ecr:PutImage", "Repository", "deploy: docker push"),
    // the network preflight
    grant("ec2:DescribeVpcs", "Unscoped", "deploy (network.rs)"),
    grant("ec2:DescribeSubnets", "Unscoped", "deploy (network.rs)"),
    grant("ec2:DescribeRouteTables", "Unscoped", "deploy (subnets.rs)"),
    grant(
        "ec2:DescribeVpcEndpoints",
        "Unscoped",
        "deploy (subnets.rs)",
    ),
    // releases and the service
    grant(
        "ecs:DescribeTaskDefinition",
        "Unscoped",
        "deploy (release.rs), releases, rollback, the rollout wait",
    ),
    grant(
        "ecs:RegisterTaskDefinition",
        "Unscoped",
        "deploy (release.rs)",
    ),
    grant(
        "ecs:ListTaskDefinitions",
        "Unscoped",
        "releases and rollback (release/list.rs)",
    ),
    grant(
        "ecs:TagResource",
        "Release",
        "deploy (release.rs: the release's tags)",
    ),
    grant(
        "ecs:DescribeServices",
        "Service",
        "every command (live_service.rs, rollout/wait.rs)",
    ),
    grant(
        "ecs:UpdateService",
        "Service",
        "deploy, rollback, and the rollout wait's restore",
    ),
    grant(
        "ecs:ListTasks",
        "ClusterTasks",
        "status and the rollout wait",
    ),
    grant("ecs:DescribeTasks", "Tasks", "status and the rollout wait"),
    // what the verdict and status read
    grant(
        "elasticloadbalancing:DescribeTargetHealth",
        "Unscoped",
        "status and the rollout wait",
    ),
    grant(
        "cloudwatch:DescribeAlarms",
        "Unscoped",
        "status and the rollout wait (rollout/alarms.rs)",
    ),
    grant(
        "cloudwatch:GetMetricData",
        "Unscoped",
        "status (status/metrics.rs)",
    ),
    grant(
        "logs:GetLogEvents",
        "Logs",
        "the rollout wait (a stopped task's last lines)",
    ),
    grant("logs:FilterLogEvents", "Logs", "logs (logs/fetch.rs)"),
    grant(
        "logs:DescribeLogStreams",
        "Logs",
        "logs --task (logs/streams.rs)",
    ),
    grant("logs:StartLiveTail", "Logs", "logs --follow (logs/live.rs)"),
    grant(
        "logs:DescribeLogGroups",
        "Unscoped",
        "logs --follow (logs/live.rs: the group's ARN)",
    ),
    // the deploy lock (DynamoDB table wsctl-locks, one item per stack) and the smoke test's
    // token: deploy and rollback take the lock and smoke-test (issue 10, points 3 and 5)
    grant(
        "dynamodb:DescribeTable",
        "LockTable",
        "deploy and rollback: the lock's table",
    ),
    grant(
        "dynamodb:CreateTable",
        "LockTable",
        "deploy: the lock's table, on first use",
    ),
    grant("dynamodb:GetItem", "Lock", "deploy and rollback: the lock"),
    grant("dynamodb:PutItem", "Lock", "deploy and rollback: the lock"),
    grant(
        "dynamodb:UpdateItem",
        "Lock",
        "deploy and rollback: the lock's lease",
    ),
    grant(
        "dynamodb:DeleteItem",
        "Lock",
        "deploy and rollback: releasing the lock",
    ),
    grant(
        "secretsmanager:GetSecretValue",
        "Secrets",
        "the smoke test's token (as wsctl token)",
    ),
    // deploy --image-from: the source environment, read only (when PromoteFromEnvironment is set)
    grant(
        "cloudformation:DescribeStacks",
        "SourceStack",
        "deploy --image-from (live_service.rs)",
    ),
    grant(
        "ecs:DescribeServices",
        "SourceService",
        "deploy --image-from (live_service.rs)",
    ),
    grant(
        "ecr:BatchGetImage",
        "SourceRepository",
        "deploy --image-from: the manifest (promote.rs)",
    ),
    grant(
        "ecr:BatchCheckLayerAvailability",
        "SourceRepository",
        "deploy --image-from (promote.rs)",
    ),
    grant(
        "ecr:GetDownloadUrlForLayer",
        "SourceRepository",
        "deploy --image-from: a blob copy (promote.rs)",
    ),
];

/// Actions a CI command calls that the deploy role deliberately does not grant, and why.
pub const NOT_GRANTED: &[(&str, &str)] = &[(
    "cloudformation:DeleteStack",
    "deploy deletes the stack only when it is an empty REVIEW_IN_PROGRESS shell (deploy/mod.rs, \
     remove_empty_stack), but IAM cannot tell that stack from a running one: granting it would \
     let CI tear the environment down. An operator removes such a shell (docs/ci.md).",
)];

/// What to tell a user whose call was denied: the action AWS names ("... is not authorized
/// to perform: ecs:UpdateService ...") and whether the deploy role grants it.
pub fn denial_hint(error: &str) -> Option<String> {
    let (_, rest) = error.split_once("not authorized to perform: ")?;
    let action: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-')
        .collect();
    if action.is_empty() {
        return None;
    }
    let hint = if let Some((_, why)) = NOT_GRANTED.iter().find(|(a, _)| *a == action) {
        format!("{action} is deliberately not granted to the CI deploy role: {why}")
    } else if let Some(grant) = CI_GRANTS.iter().find(|g| g.action == action) {
        format!(
            "the credentials lack {action}, which wsctl calls in {} (scope {} of the CI \
             deploy role, templates/ci-role.yaml)",
            grant.used_by, grant.scope
        )
    } else {
        format!(
            "the credentials lack {action}; the CI deploy role does not grant it (teardown, \
             scale and exec need an operator's credentials)"
        )
    };
    Some(format!("hint: {hint}"))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_yaml::Value;

    use super::*;

    const TEMPLATE: &str = include_str!("../../templates/ci-role.yaml");

    /// The resource each scope's statement must name (a fragment of its `!Sub` or `!GetAtt`).
    const SCOPES: &[(&str, &str)] = &[
        ("Stack", ":stack/agenticai-websocket-${Environment}/*"),
        ("StackChange", ":stack/agenticai-websocket-${Environment}/*"),
        ("MainStack", ":stack/${MainStackName}/*"),
        ("PassStackRole", "CloudFormationRole.Arn"),
        (
            "PassTaskRoles",
            ":role/agenticai-websocket-${Environment}-*",
        ),
        (
            "Repository",
            ":repository/agenticai-websocket-${Environment}",
        ),
        (
            "Service",
            ":service/agenticai-cluster-${Environment}/agenticai-websocket-${Environment}",
        ),
        ("Tasks", ":task/agenticai-cluster-${Environment}/*"),
        ("ClusterTasks", "*"),
        (
            "Release",
            ":task-definition/agenticai-websocket-${Environment}:*",
        ),
        (
            "Logs",
            ":log-group:/ecs/agenticai-websocket-${Environment}*",
        ),
        ("Unscoped", "*"),
        ("LockTable", ":table/wsctl-locks"),
        ("Lock", ":table/wsctl-locks"),
        ("Secrets", ":secret:agenticai-websocket-${Environment}/*"),
        (
            "SourceStack",
            ":stack/agenticai-websocket-${PromoteFromEnvironment}/*",
        ),
        (
            "SourceService",
            ":service/agenticai-cluster-${PromoteFromEnvironment}/agenticai-websocket-${PromoteFromEnvironment}",
        ),
        (
            "SourceRepository",
            ":repository/agenticai-websocket-${PromoteFromEnvironment}",
        ),
    ];

    /// A `!Tag value` or plain value as text (`!GetAtt A.B` is `A.B`, `!Sub s` is `s`).
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Tagged(t) => text(&t.value),
            other => serde_yaml::to_string(other).unwrap_or_default(),
        }
    }

    /// A value that may be one item or a list, as a list; `!If [C, x, !Ref AWS::NoValue]`
    /// items count as `x` (the option is on).
    fn items(v: &Value) -> Vec<Value> {
        let list = match v {
            Value::Sequence(s) => s.clone(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        };
        list.into_iter()
            .map(|item| match item {
                Value::Tagged(t) if t.tag == "!If" => t.value[1].clone(),
                other => other,
            })
            .collect()
    }

    struct Statement {
        sid: String,
        actions: BTreeSet<String>,
        resource: String,
        condition: Option<Value>,
        /// Whether it is in an optional policy (the promotion source's).
        optional: bool,
    }

    fn statements(template: &str, role: &str) -> Vec<Statement> {
        let doc: Value = serde_yaml::from_str(template).expect("ci-role.yaml is YAML");
        let mut found = Vec::new();
        let policies = &doc["Resources"][role]["Properties"]["Policies"];
        let optional: Vec<bool> = match policies {
            Value::Sequence(s) => s.iter().map(|p| matches!(p, Value::Tagged(_))).collect(),
            _ => Vec::new(),
        };
        for (policy, optional) in items(policies).iter().zip(optional) {
            for s in items(&policy["PolicyDocument"]["Statement"]) {
                assert_eq!(text(&s["Effect"]), "Allow", "only Allow statements");
                let resources: Vec<String> = items(&s["Resource"]).iter().map(text).collect();
                assert_eq!(resources.len(), 1, "one resource per statement: {s:?}");
                found.push(Statement {
                    sid: text(&s["Sid"]),
                    actions: items(&s["Action"]).iter().map(text).collect(),
                    resource: resources[0].clone(),
                    condition: s.get("Condition").cloned(),
                    optional,
                });
            }
        }
        found
    }

    /// (scope, action) pairs: the code's list and the template's DeployRole disagree on, one
    /// line each.
    fn compare(grants: &[Grant], template: &str) -> Vec<String> {
        let code: BTreeSet<(String, String)> = grants
            .iter()
            .map(|g| (g.scope.to_owned(), g.action.to_owned()))
            .collect();
        let granted: BTreeSet<(String, String)> = statements(template, "DeployRole")
            .into_iter()
            .flat_map(|s| {
                let sid = s.sid.clone();
                s.actions.into_iter().map(move |a| (sid.clone(), a))
            })
            .collect();
        let mut problems: Vec<String> = code
            .difference(&granted)
            .map(|(scope, action)| {
                format!("wsctl calls {action} (scope {scope}) but the deploy role does not grant it there")
            })
            .collect();
        problems.extend(granted.difference(&code).map(|(scope, action)| {
            format!(
                "the deploy role grants {action} (statement {scope}), which is not in \
                 deployer/src/permissions.rs CI_GRANTS"
            )
        }));
        problems
    }

    #[test]
    fn a_denial_names_the_action_and_who_grants_it() {
        let denied = "updating service x: AccessDenied: User: arn:aws:iam::123456789012:user/ci \
                      is not authorized to perform: ecs:UpdateService on resource: *";
        let hint = denial_hint(denied).expect("a hint");
        assert!(hint.contains("lack ecs:UpdateService"), "{hint}");
        assert!(hint.contains("templates/ci-role.yaml"), "{hint}");
        let teardown =
            denial_hint("... not authorized to perform: ecr:BatchDeleteImage").expect("a hint");
        assert!(teardown.contains("operator"), "{teardown}");
        let deliberate =
            denial_hint("not authorized to perform: cloudformation:DeleteStack").expect("a hint");
        assert!(deliberate.contains("deliberately"), "{deliberate}");
        assert_eq!(denial_hint("ValidationError: Stack does not exist"), None);
    }

    #[test]
    fn the_deploy_role_grants_exactly_the_listed_actions() {
        let problems = compare(CI_GRANTS, TEMPLATE);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_comparison_fails_both_ways() {
        // One more grant in the template than the code calls.
        let wider = TEMPLATE.replacen(
            "                  - elasticloadbalancing:DescribeTargetHealth\n",
            "                  - elasticloadbalancing:DescribeTargetHealth\n                  - s3:GetObject\n",
            1,
        );
        assert_ne!(wider, TEMPLATE);
        assert_eq!(
            compare(CI_GRANTS, &wider),
            [
                "the deploy role grants s3:GetObject (statement Unscoped), which is not in \
              deployer/src/permissions.rs CI_GRANTS"
            ]
        );
        // A call the role lacks, and one granted on the wrong scope.
        let mut grants = CI_GRANTS.to_vec();
        grants.push(grant("ecs:StopTask", "Tasks", "-"));
        let problems = compare(&grants, TEMPLATE);
        assert_eq!(
            problems,
            ["wsctl calls ecs:StopTask (scope Tasks) but the deploy role does not grant it there"]
        );
        let moved: Vec<Grant> = CI_GRANTS
            .iter()
            .map(|g| match g.action {
                "ecs:UpdateService" => grant(g.action, "Unscoped", g.used_by),
                _ => *g,
            })
            .collect();
        assert_eq!(
            compare(&moved, TEMPLATE).len(),
            2,
            "{:?}",
            compare(&moved, TEMPLATE)
        );
    }

    #[test]
    fn each_scope_names_this_environments_resources() {
        let scopes: BTreeMap<&str, &str> = SCOPES.iter().copied().collect();
        for s in &statements(TEMPLATE, "DeployRole") {
            let Some(expected) = scopes.get(s.sid.as_str()) else {
                panic!("statement {} has no scope in SCOPES", s.sid);
            };
            if *expected == "*" {
                assert_eq!(s.resource, "*", "{}", s.sid);
            } else {
                assert!(
                    s.resource.contains(expected),
                    "statement {} names {}, not {expected}",
                    s.sid,
                    s.resource
                );
            }
        }
        // `*` only where AWS allows nothing narrower, and with the cluster condition for ListTasks.
        let tasks = statements(TEMPLATE, "DeployRole")
            .into_iter()
            .find(|s| s.sid == "ClusterTasks")
            .expect("ClusterTasks");
        assert!(
            text(&tasks.condition.expect("a condition")["ArnEquals"]["ecs:cluster"])
                .ends_with(":cluster/agenticai-cluster-${Environment}")
        );
    }

    #[test]
    fn stack_changes_run_as_the_cloudformation_role_and_roles_pass_to_one_service_each() {
        for s in statements(TEMPLATE, "DeployRole") {
            let condition = s
                .condition
                .as_ref()
                .map(|c| serde_yaml::to_string(c).expect("a condition serializes"));
            match s.sid.as_str() {
                "StackChange" => assert!(
                    condition
                        .as_deref()
                        .is_some_and(|c| c.contains("cloudformation:RoleArn")
                            && c.contains("CloudFormationRole.Arn")),
                    "{condition:?}"
                ),
                "PassStackRole" => assert!(
                    condition.as_deref().is_some_and(
                        |c| c.contains("iam:PassedToService: cloudformation.amazonaws.com")
                    ),
                    "{condition:?}"
                ),
                "PassTaskRoles" => {
                    assert!(
                        condition.as_deref().is_some_and(
                            |c| c.contains("iam:PassedToService: ecs-tasks.amazonaws.com")
                        ),
                        "{condition:?}"
                    )
                }
                _ => {}
            }
        }
    }

    #[test]
    fn teardown_and_other_environments_are_out_of_reach() {
        let granted: BTreeSet<String> = statements(TEMPLATE, "DeployRole")
            .into_iter()
            .flat_map(|s| s.actions)
            .collect();
        for action in [
            "cloudformation:DeleteStack",
            "cloudformation:ListStackResources",
            "ecr:BatchDeleteImage",
            "ecr:DeleteRepository",
            "ecr:ListImages",
            "ecs:DeregisterTaskDefinition",
            "iam:CreateRole",
            "iam:PutRolePolicy",
        ] {
            assert!(!granted.contains(action), "the deploy role grants {action}");
        }
        for (action, _) in NOT_GRANTED {
            assert!(!granted.contains(*action), "{action} is granted");
        }
        // The promotion source is read only: its stack, service and image, nothing written.
        for s in statements(TEMPLATE, "DeployRole")
            .iter()
            .filter(|s| s.optional)
        {
            assert!(
                s.resource.contains("${PromoteFromEnvironment}"),
                "{}",
                s.sid
            );
            for action in &s.actions {
                let verb = action.split(':').nth(1).unwrap_or_default();
                assert!(
                    ["Describe", "BatchGet", "BatchCheck", "GetDownload"]
                        .iter()
                        .any(|p| verb.starts_with(p)),
                    "the promotion source grants {action}"
                );
            }
        }
    }
}
