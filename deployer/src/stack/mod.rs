//! A CloudFormation stack as wsctl reads it, and what it does with one: the one DescribeStacks
//! reader ([`describe`]) every command uses, whether a deploy can go on from a stack's state
//! ([`readiness`]), the change set that creates or updates it ([`changeset`]; skipped when
//! [`unchanged`] finds the stack already as asked), and the stack events shown while
//! CloudFormation works ([`events`], also for teardown).

pub mod changeset;
pub mod events;
pub mod readiness;
pub mod unchanged;

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use crate::aws::AwsResultExt as _;
use crate::exit::{Exit, fail};

/// A stack's identity, status, parameters, tags and outputs.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    /// The stack's ARN (a deleted stack stays reachable by it).
    pub id: String,
    pub name: String,
    /// e.g. `UPDATE_COMPLETE`; `UNKNOWN` when CloudFormation gave none.
    pub status: String,
    pub reason: Option<String>,
    /// The last update, else the creation.
    pub updated_at: Option<DateTime<Utc>>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
}

impl Stack {
    /// An output's value, or an error naming the output and the stack.
    pub fn output(&self, key: &str, stack_name: &str) -> anyhow::Result<&str> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| {
            fail(
                Exit::Failure,
                format!(
                    "stack {stack_name} has no output {key} (outputs: {}); is it made from \
                     this version's template?",
                    list(self.outputs.keys())
                ),
            )
        })
    }

    fn from_sdk(s: &aws_sdk_cloudformation::types::Stack, name: &str) -> Self {
        Self {
            id: s.stack_id().unwrap_or(name).to_owned(),
            name: s.stack_name().unwrap_or(name).to_owned(),
            status: s
                .stack_status()
                .map_or("UNKNOWN", |st| st.as_str())
                .to_owned(),
            reason: s.stack_status_reason().map(str::to_owned),
            updated_at: s
                .last_updated_time()
                .or(s.creation_time())
                .and_then(crate::when::utc),
            parameters: s
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_owned(),
                        p.parameter_value()?.to_owned(),
                    ))
                })
                .collect(),
            tags: s
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
        }
    }
}

fn list<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<&str> = keys.map(String::as_str).collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// Whether an error says the stack does not exist (CloudFormation has no dedicated code).
pub fn is_missing(err: &impl ProvideErrorMetadata) -> bool {
    err.message().is_some_and(|m| m.contains("does not exist"))
}

/// DescribeStacks for one stack, by name or id; `None` when it does not exist.
pub async fn describe(cfn: &Client, name: &str) -> anyhow::Result<Option<Stack>> {
    let out = cfn
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .or_missing(is_missing, || format!("describing stack {name}"))?;
    Ok(out
        .as_ref()
        .and_then(|out| out.stacks().first())
        .map(|s| Stack::from_sdk(s, name)))
}
