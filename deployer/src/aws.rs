//! The one place that builds the AWS SDK configuration, so every command resolves profile,
//! region and endpoint the same way.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::cli::Global;

/// Region used when neither the flag, the settings file nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Builds the SDK config. Precedence for the region: `--region`, the environment's settings,
/// the standard AWS chain (AWS_REGION, profile), then [`DEFAULT_REGION`].
pub async fn sdk_config(global: &Global, settings_region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &global.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &global.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = global.region.as_deref().or(settings_region) {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let config = loader.load().await;
    if config.region().is_some() {
        return config;
    }
    config
        .into_builder()
        .region(Region::from_static(DEFAULT_REGION))
        .build()
}

/// An AWS SDK error as "Code: message" (the SDK's own Display says only "service error"),
/// falling back to the full error context for transport and other errors.
pub fn error<E>(err: E) -> anyhow::Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => anyhow::anyhow!("{code}: {message}"),
        (Some(code), None) => anyhow::anyhow!("{code}"),
        _ => anyhow::anyhow!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        ),
    }
}

/// An AWS error that may heal on its own: throttling, a 5xx, a timeout, a dropped connection.
/// Marked in the error chain by [`sdk_error`], so a wait can retry it instead of giving up.
#[derive(Debug)]
pub struct Transient(String);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

/// Error codes AWS services use for "slow down" or "try again" (besides any 5xx or 429).
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServerException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Like [`error`], and marks the errors worth retrying ([`is_transient`]).
pub fn sdk_error<E>(
    err: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> anyhow::Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    E: Send + Sync,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 429
                || status >= 500
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    };
    let err = error(err);
    if transient {
        anyhow::Error::new(Transient(format!("{err:#}")))
    } else {
        err
    }
}

/// Whether an error (or one of its causes) is [`Transient`].
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Transient>())
}
