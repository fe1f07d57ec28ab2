//! The main AgenticAI stack's outputs: the table and queues the server talks to. Read once,
//! checked for every output the template needs, so a missing one is named before anything
//! changes (passing empty strings on would fail deep inside CloudFormation).

use std::collections::BTreeMap;

use crate::exit::{Exit, fail};

/// Main stack outputs the service stack takes as parameters of the same name.
pub const REQUIRED_OUTPUTS: [&str; 5] = [
    "DataTableName",
    "PMQueueUrl",
    "DevQueueUrl",
    "QAQueueUrl",
    "OpsQueueUrl",
];

/// The values of [`REQUIRED_OUTPUTS`], by name.
pub type MainOutputs = BTreeMap<String, String>;

/// Reads the main stack and returns its required outputs, or names what is missing.
pub async fn outputs(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
) -> anyhow::Result<MainOutputs> {
    let Some(stack) = crate::stack::describe(cfn, name).await? else {
        return Err(fail(
            Exit::Failure,
            format!(
                "main stack {name} does not exist: deploy the AgenticAI main stack first (or set \
                 main_stack in wsctl.yaml; locally: templates/main-stack.yaml)"
            ),
        ));
    };
    required(&stack.outputs, name)
}

fn required(outputs: &BTreeMap<String, String>, name: &str) -> anyhow::Result<MainOutputs> {
    let missing: Vec<&str> = REQUIRED_OUTPUTS
        .iter()
        .copied()
        .filter(|key| outputs.get(*key).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(fail(
            Exit::Failure,
            format!(
                "main stack {name} lacks output(s) {}: the service needs all of {}",
                missing.join(", "),
                REQUIRED_OUTPUTS.join(", ")
            ),
        ));
    }
    Ok(REQUIRED_OUTPUTS
        .iter()
        .map(|key| ((*key).to_owned(), outputs[*key].clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_output() {
        let mut outputs: BTreeMap<String, String> = REQUIRED_OUTPUTS
            .iter()
            .map(|k| ((*k).to_owned(), format!("value-{k}")))
            .collect();
        assert_eq!(required(&outputs, "main").expect("complete").len(), 5);
        outputs.remove("QAQueueUrl");
        outputs.insert("OpsQueueUrl".into(), String::new());
        let err = required(&outputs, "main").expect_err("incomplete");
        assert!(
            err.to_string()
                .contains("lacks output(s) QAQueueUrl, OpsQueueUrl"),
            "{err}"
        );
    }
}
