//! Whether the stack already is what a change set would make it: the same template,
//! parameters and tags, in a settled state. CloudFormation takes about a second to compute
//! an empty change set (most of a deploy with nothing changed); these two reads take
//! milliseconds. Anything uncertain (a read that fails, a hidden NoEcho value) answers "no",
//! and the change set decides as before.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::TemplateStage;

use super::Stack;
use super::changeset::Request;

/// The states in which the stack's template and parameters are the ones in effect.
const SETTLED: [&str; 4] = [
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
];

/// The stack, when a change set for `req` would have nothing to change in it.
pub async fn already_applied(cfn: &Client, req: &Request<'_>) -> Option<Stack> {
    let template = cfn
        .get_template()
        .stack_name(req.stack_name)
        .template_stage(TemplateStage::Original)
        .send();
    let (stack, template) = tokio::join!(super::describe(cfn, req.stack_name), template);
    let (stack, template) = (stack.ok()??, template.ok()?);
    difference(&stack, template.template_body().unwrap_or_default(), req)
        .is_none()
        .then_some(stack)
}

/// The first way the stack differs from `req`, or `None` when it does not.
pub fn difference(stack: &Stack, template: &str, req: &Request<'_>) -> Option<String> {
    if !SETTLED.contains(&stack.status.as_str()) {
        return Some(format!("status {}", stack.status));
    }
    if template != req.template_body {
        return Some("template".into());
    }
    // CloudFormation lists every parameter, those left to their default too.
    let defaults = defaults(req.template_body);
    let mut wanted: BTreeMap<&str, &str> = defaults
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for p in &req.parameters {
        let key = p.parameter_key().unwrap_or_default();
        if p.use_previous_value() == Some(true) {
            match stack.parameters.get(key) {
                Some(previous) => wanted.insert(key, previous.as_str()),
                None => return Some(format!("parameter {key} has no previous value")),
            };
        } else {
            wanted.insert(key, p.parameter_value().unwrap_or_default());
        }
    }
    let deployed: BTreeMap<&str, &str> = stack
        .parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A NoEcho value reads as ****, so it never matches.
    if wanted != deployed {
        return Some("parameters".into());
    }
    let tags: BTreeMap<&str, &str> = req
        .tags
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    let deployed_tags: BTreeMap<&str, &str> = stack
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    (tags != deployed_tags).then(|| "tags".into())
}

/// The template's parameter defaults, as CloudFormation writes them (numbers as text).
fn defaults(template: &str) -> BTreeMap<String, String> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(template) else {
        return BTreeMap::new();
    };
    let Some(parameters) = doc.get("Parameters").and_then(|p| p.as_mapping()) else {
        return BTreeMap::new();
    };
    parameters
        .iter()
        .filter_map(|(key, spec)| {
            let value = match spec.get("Default")? {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((key.as_str()?.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::types::{ChangeSetType, Tag};

    use super::super::changeset::{keep, param};
    use super::*;

    const TEMPLATE: &str = "Parameters:\n  Environment: {Type: String}\n  ImageUri: {Type: String}\n  \
                            Port: {Type: Number, Default: 8080}\nResources: {}\n";

    fn stack() -> Stack {
        Stack {
            status: "UPDATE_COMPLETE".into(),
            parameters: [
                ("Environment", "dev"),
                ("ImageUri", "repo:abc"),
                ("Port", "8080"),
            ]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
            tags: [("ManagedBy".to_owned(), "wsctl".to_owned())].into(),
            ..Stack::default()
        }
    }

    fn request(image: Option<&str>) -> Request<'static> {
        Request {
            stack_name: "s",
            kind: ChangeSetType::Update,
            template_body: TEMPLATE,
            parameters: vec![
                param("Environment", "dev"),
                image.map_or_else(|| keep("ImageUri"), |i| param("ImageUri", i)),
            ],
            tags: vec![Tag::builder().key("ManagedBy").value("wsctl").build()],
            role_arn: None,
        }
    }

    #[test]
    fn the_same_template_parameters_and_tags_need_no_change_set() {
        assert_eq!(difference(&stack(), TEMPLATE, &request(None)), None);
        assert_eq!(
            difference(&stack(), TEMPLATE, &request(Some("repo:abc"))),
            None
        );
    }

    #[test]
    fn any_difference_goes_through_a_change_set() {
        assert_eq!(
            difference(&stack(), TEMPLATE, &request(Some("repo:def"))).as_deref(),
            Some("parameters")
        );
        assert_eq!(
            difference(&stack(), "Resources: {X: 1}\n", &request(None)).as_deref(),
            Some("template")
        );
        let mut left_out = request(None);
        left_out.parameters.truncate(1);
        assert_eq!(
            difference(&stack(), TEMPLATE, &left_out).as_deref(),
            Some("parameters"),
            "a key left out without a default"
        );
        let mut moved = stack();
        moved.parameters.insert("Port".into(), "9090".into());
        assert_eq!(
            difference(&moved, TEMPLATE, &request(None)).as_deref(),
            Some("parameters"),
            "a parameter left out goes back to its default"
        );
        let mut retagged = request(None);
        retagged
            .tags
            .push(Tag::builder().key("Team").value("ai").build());
        assert_eq!(
            difference(&stack(), TEMPLATE, &retagged).as_deref(),
            Some("tags")
        );
        let mut failed = stack();
        failed.status = "UPDATE_ROLLBACK_FAILED".into();
        assert!(difference(&failed, TEMPLATE, &request(None)).is_some());
    }

    #[test]
    fn reads_the_defaults_of_the_service_template() {
        let defaults = defaults(include_str!("../../../templates/ecs.yaml"));
        assert_eq!(
            defaults.get("IdleTimeoutSeconds").map(String::as_str),
            Some("3600")
        );
        assert_eq!(
            defaults.get("UseFargateSpot").map(String::as_str),
            Some("false")
        );
        assert_eq!(defaults.get("CertificateArn").map(String::as_str), Some(""));
        assert!(!defaults.contains_key("VpcId"), "no default");
    }
}
