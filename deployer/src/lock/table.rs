//! The DynamoDB table the locks live in: one per account and region, on demand (no capacity to
//! pay for at rest), created by the first wsctl that takes a lock there. `WSCTL_LOCK_TABLE`
//! names another one (an account that keeps its own, or tests).

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use crate::exit::{Exit, fail};

pub const DEFAULT_NAME: &str = "wsctl-locks";

#[derive(Clone)]
pub struct Table {
    pub client: aws_sdk_dynamodb::Client,
    pub name: String,
}

impl Table {
    /// The table named by `WSCTL_LOCK_TABLE`, else [`DEFAULT_NAME`].
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        let name = std::env::var("WSCTL_LOCK_TABLE")
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        Self { client, name }
    }

    /// Creates the table if it does not exist, and waits until it takes writes.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        if self.status().await? == Some(TableStatus::Active) {
            return Ok(());
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(super::KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(super::KEY)
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Created meanwhile by another wsctl (or still being created): wait for it below.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => {
                return Err(crate::aws::error(err)).with_context(|| {
                    format!(
                        "creating the DynamoDB table {} that holds the deploy locks (it is \
                         created on first use; create it once with a partition key {} of type \
                         S, or name an existing one with WSCTL_LOCK_TABLE)",
                        self.name,
                        super::KEY
                    )
                });
            }
        }
        for _ in 0..60 {
            if self.status().await? == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(fail(
            Exit::TimedOut,
            format!(
                "the DynamoDB table {} was not ACTIVE after a minute",
                self.name
            ),
        ))
    }

    async fn status(&self) -> anyhow::Result<Option<TableStatus>> {
        match self
            .client
            .describe_table()
            .table_name(&self.name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .table()
                .and_then(|t| t.table_status())
                .cloned()
                .or(Some(TableStatus::Active))),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(crate::aws::error(err))
                .with_context(|| format!("describing the lock table {}", self.name)),
        }
    }
}
