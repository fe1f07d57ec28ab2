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
