//! Forwarding client requests to the agents' SQS queues.
//!
//! The body of the SQS message is the client's `data` object byte for byte; who sent it and for
//! what goes into message attributes, so agents can route and filter without parsing the body.
//! A failure (queue unset, unreachable, throttled, access denied) becomes an error reply naming
//! the queue; it never ends the connection.

use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::value::RawValue;

use crate::config::QueueUrls;
use crate::protocol::{ErrorCode, QueueKind, RequestError};

/// Every AWS action the server's code calls, the task role's whole grant (templates/ecs.yaml;
/// `tests/it/task_role.rs` compares the two both ways). A new call goes here with the code.
pub const AWS_ACTIONS: &[&str] = &["sqs:SendMessage"];

/// One message to send.
#[derive(Debug)]
pub struct Forward {
    /// The agent queue it goes to.
    pub queue: QueueKind,
    /// The project it is about, as a message attribute.
    pub project_id: Option<String>,
    /// The body of the SQS message, byte for byte.
    pub data: Box<RawValue>,
    /// The connection that sent it, as a message attribute.
    pub connection_id: String,
    /// The sender's authenticated `sub`, so an agent knows who asked.
    pub user_id: String,
    /// The client's `request_id`, echoed in the reply.
    pub request_id: Option<Box<RawValue>>,
}

#[derive(Clone, Debug)]
/// Sends forwards to SQS, one client shared by every connection.
pub struct Forwarder {
    client: aws_sdk_sqs::Client,
    queues: QueueUrls,
}

impl Forwarder {
    /// `timeout` bounds one forward including the SDK's retries.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        queues: QueueUrls,
        timeout: std::time::Duration,
    ) -> Self {
        let conf = aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .connect_timeout(timeout.min(std::time::Duration::from_secs(3)))
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(conf),
            queues,
        }
    }

    /// Sends the message and returns its SQS MessageId.
    pub async fn send(&self, f: &Forward) -> Result<String, RequestError> {
        let queue = f.queue;
        let Some(url) = self.queues.get(queue) else {
            return Err(RequestError::new(
                ErrorCode::QueueNotConfigured,
                format!(
                    "queue \"{queue}\" is not configured on this server ({} is unset)",
                    queue.url_variable()
                ),
            ));
        };
        let mut req = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(f.data.get())
            .message_attributes("connection_id", string_attr(&f.connection_id)?)
            .message_attributes("type", string_attr(queue.as_str())?)
            .message_attributes("user_id", string_attr(&f.user_id)?);
        if let Some(p) = &f.project_id {
            req = req.message_attributes("project_id", string_attr(p)?);
        }
        if let Some(id) = &f.request_id {
            let text =
                serde_json::from_str::<String>(id.get()).unwrap_or_else(|_| id.get().to_owned());
            req = req.message_attributes("request_id", string_attr(&text)?);
        }
        match req.send().await {
            Ok(out) => out.message_id.ok_or_else(|| {
                RequestError::new(
                    ErrorCode::QueueError,
                    format!("queue \"{queue}\" accepted the message but returned no MessageId"),
                )
            }),
            Err(e) => {
                tracing::warn!(
                    queue = queue.as_str(),
                    connection_id = %f.connection_id,
                    error = %DisplayErrorContext(&e),
                    "forward to SQS failed"
                );
                Err(RequestError::new(
                    ErrorCode::QueueError,
                    format!(
                        "queue \"{queue}\" did not take the message: {}",
                        describe(&e)
                    ),
                ))
            }
        }
    }
}

fn string_attr(v: &str) -> Result<MessageAttributeValue, RequestError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| RequestError::new(ErrorCode::QueueError, format!("message attribute: {e}")))
}

/// A short cause for the client: the service's error code, or the kind of transport failure.
fn describe<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => "the service refused the request".to_owned(),
            }
        }
        SdkError::TimeoutError(_) => "SQS did not answer in time; try again later".to_owned(),
        SdkError::DispatchFailure(_) => "SQS is unreachable; try again later".to_owned(),
        SdkError::ResponseError(_) => "SQS sent an unreadable response".to_owned(),
        _ => "the request could not be built".to_owned(),
    }
}
