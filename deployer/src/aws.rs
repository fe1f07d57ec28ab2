//! The AWS layer every command shares: the AWS flags and the one place that turns them into
//! the SDK configuration (so every command resolves profile, region and endpoint the same
//! way), and how AWS errors read and are classified ([`AwsResultExt`]).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Region used when neither the flag, the settings file nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The AWS flags every command understands. Profile, region and endpoint also come from the
/// standard AWS variables (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// AWS profile (else AWS_PROFILE, else the default chain).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (else the environment's settings, else AWS_REGION, else us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS endpoint override, e.g. a local emulator (else AWS_ENDPOINT_URL).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// Builds the SDK config. Precedence for the region: `--region`, the environment's
    /// settings, the standard AWS chain (AWS_REGION, profile), then [`DEFAULT_REGION`].
    pub async fn sdk_config(&self, settings_region: Option<&str>) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = self.chosen_region(settings_region) {
            loader = loader.region(Region::new(region.to_owned()));
        }
        or_default_region(loader.load().await)
    }

    /// The region wsctl names itself (flag, else settings); `None` leaves it to the AWS chain.
    fn chosen_region<'a>(&'a self, settings_region: Option<&'a str>) -> Option<&'a str> {
        self.region.as_deref().or(settings_region)
    }
}

/// The config as loaded, with [`DEFAULT_REGION`] when the chain named no region either.
fn or_default_region(config: SdkConfig) -> SdkConfig {
    if config.region().is_some() {
        return config;
    }
    config
        .into_builder()
        .region(Region::from_static(DEFAULT_REGION))
        .build()
}

/// What every AWS call's result needs: its error as "Code: message" with what wsctl was
/// doing, and "does not exist" as a value instead of an error.
pub trait AwsResultExt<T, E> {
    /// The error as [`sdk_error`] (transient ones marked), under `what` wsctl was doing.
    fn aws_context<C>(self, what: impl FnOnce() -> C) -> anyhow::Result<T>
    where
        C: std::fmt::Display + Send + Sync + 'static;

    /// `Ok(None)` when `missing` says the error means "does not exist"; other errors as
    /// [`AwsResultExt::aws_context`].
    fn or_missing<C>(
        self,
        missing: impl FnOnce(&E) -> bool,
        what: impl FnOnce() -> C,
    ) -> anyhow::Result<Option<T>>
    where
        C: std::fmt::Display + Send + Sync + 'static;
}

impl<T, E> AwsResultExt<T, E> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws_context<C>(self, what: impl FnOnce() -> C) -> anyhow::Result<T>
    where
        C: std::fmt::Display + Send + Sync + 'static,
    {
        self.map_err(|err| sdk_error(err).context(what()))
    }

    fn or_missing<C>(
        self,
        missing: impl FnOnce(&E) -> bool,
        what: impl FnOnce() -> C,
    ) -> anyhow::Result<Option<T>>
    where
        C: std::fmt::Display + Send + Sync + 'static,
    {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.as_service_error().is_some_and(missing) => Ok(None),
            Err(err) => Err(sdk_error(err).context(what())),
        }
    }
}

/// An AWS SDK error as "Code: message" (the SDK's own Display says only "service error"),
/// falling back to the full error context for transport and other errors.
pub fn error<E>(err: E) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
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
pub fn sdk_error<E>(err: SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(region: Option<&str>) -> AwsArgs {
        AwsArgs {
            region: region.map(str::to_owned),
            ..AwsArgs::default()
        }
    }

    #[tokio::test]
    async fn the_region_flag_beats_the_settings_and_the_settings_beat_the_chain() {
        let config = flags(Some("eu-west-1")).sdk_config(Some("us-west-2")).await;
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        // AWS_REGION may be set where tests run: the settings' region still wins over it.
        let config = flags(None).sdk_config(Some("us-west-2")).await;
        assert_eq!(config.region().map(Region::as_ref), Some("us-west-2"));
        assert_eq!(flags(None).chosen_region(None), None, "the chain decides");
    }

    #[test]
    fn no_region_anywhere_is_the_default_one() {
        let config = or_default_region(SdkConfig::builder().build());
        assert_eq!(config.region().map(Region::as_ref), Some(DEFAULT_REGION));
        let chained = SdkConfig::builder()
            .region(Region::from_static("ap-south-1"))
            .build();
        let config = or_default_region(chained);
        assert_eq!(config.region().map(Region::as_ref), Some("ap-south-1"));
    }

    #[tokio::test]
    async fn an_endpoint_flag_reaches_the_config() {
        let aws = AwsArgs {
            endpoint_url: Some("http://127.0.0.1:5000".into()),
            ..flags(Some("eu-west-1"))
        };
        let config = aws.sdk_config(None).await;
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
    }
}
