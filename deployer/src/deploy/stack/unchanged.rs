//! Whether the stack already is what a change set would make it: the same template,
//! parameters and tags, in a settled state. CloudFormation takes about a second to compute
//! an empty change set (most of a deploy with nothing changed); these two reads take
//! milliseconds. Anything uncertain (a read that fails, a hidden NoEcho value) answers "no",
//! and the change set decides as before.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::TemplateStage;

use super::changeset::Request;
use super::state::{self, Stack};

/// The states in which the stack's template and parameters are the ones in effect.
const SETTLED: [&str; 4] = [
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
];

/// `true` when a change set for `req` would have nothing to change.
pub async fn already_applied(cfn: &Client, req: &Request<'_>) -> bool {
    let template = cfn
        .get_template()
        .stack_name(req.stack_name)
        .template_stage(TemplateStage::Original)
        .send();
    let (stack, template) = tokio::join!(state::read(cfn, req.stack_name), template);
    match (stack, template) {
        (Ok(Some(stack)), Ok(template)) => {
            difference(&stack, template.template_body().unwrap_or_default(), req).is_none()
        }
        _ => false,
    }
}

/// The first way the stack differs from `req`, or `None` when it does not.
pub fn difference(stack: &Stack, template: &str, req: &Request<'_>) -> Option<String> {
    if !SETTLED.contains(&stack.status.as_str()) {
        return Some(format!("status {}", stack.status));
    }
    if template != req.template_body {
        return Some("template".into());
    }
    let mut wanted = BTreeMap::new();
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
    // A key left out would fall back to its default; a NoEcho value reads as ****.
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

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::types::{ChangeSetType, Tag};

    use super::super::changeset::{keep, param};
    use super::*;

    const TEMPLATE: &str = "Resources: {}\n";

    fn stack() -> Stack {
        Stack {
            status: "UPDATE_COMPLETE".into(),
            parameters: [("Environment", "dev"), ("ImageUri", "repo:abc")]
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
            "a key left out would reset to its default"
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
}
