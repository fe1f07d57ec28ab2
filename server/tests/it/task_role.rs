//! Least privilege, checked against the code: the task role in `templates/ecs.yaml` grants
//! exactly the AWS actions the server calls (`server::forward::AWS_ACTIONS`), on exactly the
//! agent queues, and the execution role reads exactly the secrets the task definition names.
//! `iam_enforced.rs` proves the same grant with the emulator enforcing IAM.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use crate::common::template::{self, Template};
use serde_json::{Value, json};

/// What the template grants and the code calls disagree on, one line each.
fn compare(code: &[&str], granted: &BTreeSet<String>) -> Vec<String> {
    let code: BTreeSet<String> = code.iter().map(|a| (*a).to_owned()).collect();
    let mut problems: Vec<String> = code
        .difference(granted)
        .map(|a| format!("the server calls {a} but the task role does not grant it"))
        .collect();
    problems.extend(granted.difference(&code).map(|a| {
        format!(
            "the task role grants {a}, which the server never calls (server/src/forward.rs \
             AWS_ACTIONS)"
        )
    }));
    problems
}

#[test]
fn the_task_role_grants_exactly_the_actions_the_server_calls() {
    let t = Template::load();
    let granted = template::actions(&t.role_statements("TaskRole"));
    let problems = compare(server::forward::AWS_ACTIONS, &granted);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        t.resource("TaskRole")["Properties"]
            .get("ManagedPolicyArns")
            .is_none(),
        "no managed policies on the task role: they grant what the code does not call"
    );
}

#[test]
fn the_comparison_fails_both_ways() {
    let mut t = Template::load();
    // A broader grant, as the replaced deployment's role had: more than the code calls.
    t.add_task_role_actions(&["sqs:ReceiveMessage", "dynamodb:Scan"]);
    let problems = compare(
        server::forward::AWS_ACTIONS,
        &template::actions(&t.role_statements("TaskRole")),
    );
    assert_eq!(
        problems.len(),
        2,
        "two extra grants reported: {problems:#?}"
    );
    assert!(problems.iter().any(|p| p.contains("grants dynamodb:Scan")));
    // A call the role lacks.
    let problems = compare(
        &["sqs:SendMessage", "secretsmanager:GetSecretValue"],
        &template::actions(&Template::load().role_statements("TaskRole")),
    );
    assert_eq!(
        problems,
        ["the server calls secretsmanager:GetSecretValue but the task role does not grant it"]
    );
}

#[test]
fn send_message_is_granted_on_the_four_agent_queues_only() {
    let t = Template::load();
    let statements = t.role_statements("TaskRole");
    let mut queues = BTreeSet::new();
    for statement in &statements {
        for resource in template::list(&statement["Resource"]) {
            assert_ne!(resource, json!("*"), "a wildcard resource: {statement:#}");
            let refs = template::refs(&resource);
            assert_eq!(refs.len(), 1, "each resource names one queue: {resource:#}");
            queues.extend(refs);
        }
    }
    let expected: BTreeSet<String> = ["PMQueueUrl", "DevQueueUrl", "QAQueueUrl", "OpsQueueUrl"]
        .map(String::from)
        .into();
    assert_eq!(queues, expected);
}

#[test]
fn the_execution_role_pulls_this_image_writes_this_log_group_and_reads_only_the_named_secrets() {
    let t = Template::load();
    let statements = t.role_statements("ExecutionRole");
    let container = &t.resource("TaskDefinition")["Properties"]["ContainerDefinitions"][0];

    // Secrets: what the task definition names, nothing else, never plain environment.
    let named: BTreeSet<String> = template::list(&container["Secrets"])
        .iter()
        .flat_map(template::branches)
        .map(|s| s["ValueFrom"].to_string())
        .collect();
    let mut readable = BTreeSet::new();
    for s in &statements {
        let actions = template::actions(std::slice::from_ref(s));
        if actions
            .iter()
            .any(|a| a.starts_with("secretsmanager:") || a.starts_with("ssm:"))
        {
            readable.extend(template::list(&s["Resource"]).iter().map(Value::to_string));
        }
    }
    assert_eq!(readable, named, "secrets readable vs. named by the task");
    let secret_names: BTreeSet<String> = template::list(&container["Secrets"])
        .iter()
        .flat_map(template::branches)
        .map(|s| s["Name"].as_str().unwrap().to_owned())
        .collect();
    assert!(secret_names.contains("WS_JWT_SECRET"), "{secret_names:?}");
    for env in template::list(&container["Environment"])
        .iter()
        .flat_map(template::branches)
    {
        let name = env["Name"].as_str().unwrap();
        assert!(
            !secret_names.contains(name) && !name.contains("SECRET") && !name.contains("TOKEN"),
            "{name} is in plain environment"
        );
    }

    // Images and logs: this repository, this log group.
    for s in &statements {
        let actions = template::actions(std::slice::from_ref(s));
        let resource = &s["Resource"];
        if actions
            .iter()
            .any(|a| a.starts_with("ecr:") && a != "ecr:GetAuthorizationToken")
        {
            assert_eq!(resource, &json!({"Fn::GetAtt": ["Repository", "Arn"]}));
        } else if actions.iter().any(|a| a.starts_with("logs:")) {
            let group = t.resource("LogGroup")["Properties"]["LogGroupName"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                resource
                    .to_string()
                    .contains(&format!(":log-group:{group}:*")),
                "logs only for {group}: {resource}"
            );
        } else if resource == &json!("*") {
            // ECR's token call has no resource-level permissions.
            assert_eq!(actions, ["ecr:GetAuthorizationToken".to_owned()].into());
        }
    }
    let all = template::actions(&statements);
    let expected: BTreeSet<String> = [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "ssm:GetParameters",
    ]
    .map(String::from)
    .into();
    assert_eq!(all, expected);
}
