//! Building the SDK client: the standard AWS chain (no instance-metadata lookups with an
//! endpoint override), and the writer's variant without SDK retries ([`for_writer`]).

use aws_sdk_dynamodb::Client;

use crate::sink::config::DynamoConfig;
#[cfg(doc)]
use crate::sink::RetryPolicy;

/// Build an SDK client from `[dynamodb]` and the standard AWS credential chain.
///
/// What the SDK can do once, it does once: credentials are cached (aws-config's default lazy
/// identity cache), and the endpoint is resolved once per distinct parameters (the generated
/// resolver's cache). The writer's calls take [`for_writer`]'s client instead.
pub async fn client(cfg: &DynamoConfig) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(
        // The SDK retries a few times itself; our writer's loop adds the long tail.
        aws_config::retry::RetryConfig::standard().with_max_attempts(3),
    );
    if let Some(region) = &cfg.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &cfg.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &cfg.endpoint_url {
        loader = local_identity(loader.endpoint_url(url), cfg);
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared);
    if shared.region().is_none() {
        builder = builder.region(aws_config::Region::new("us-east-1"));
    }
    Client::from_conf(builder.build())
}

/// With an endpoint override (DynamoDB Local), credentials and region come from the
/// environment and the profile files only: no web-identity, container or instance-metadata
/// lookups (each a timeout and a WARN line away from any local setup).
fn local_identity(
    loader: aws_config::ConfigLoader,
    cfg: &DynamoConfig,
) -> aws_config::ConfigLoader {
    use aws_config::meta::credentials::CredentialsProviderChain;
    use aws_config::meta::region::RegionProviderChain;
    let mut profile = aws_config::profile::ProfileFileCredentialsProvider::builder();
    let mut profile_region = aws_config::profile::ProfileFileRegionProvider::builder();
    if let Some(p) = &cfg.profile {
        profile = profile.profile_name(p);
        profile_region = profile_region.profile_name(p);
    }
    let credentials = CredentialsProviderChain::first_try(
        "Environment",
        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", profile.build());
    let loader = loader.credentials_provider(credentials);
    if cfg.region.is_some() {
        return loader;
    }
    loader.region(
        RegionProviderChain::first_try(
            aws_config::environment::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(profile_region.build())
        .or_else(aws_config::Region::new("us-east-1")),
    )
}

/// The writer's client: `client` (sharing its HTTP connections and credential cache) with no
/// SDK retries and no stalled-stream protection.
/// - The writer retries throttled and transient failures itself, by [`RetryPolicy`] (full
///   jitter, `[sink]`'s limits); SDK retries under it would multiply the attempts (3 × 13) and
///   add a retry-strategy and token-bucket pass to every request.
/// - Stalled-stream protection wraps every request and response body in a throughput monitor
///   with its own timer: per-request work that buys nothing for small JSON bodies whose calls
///   the writer already retries.
pub fn for_writer(client: &Client) -> Client {
    let conf = client
        .config()
        .to_builder()
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .build();
    Client::from_conf(conf)
}
