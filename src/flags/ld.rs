//! The LaunchDarkly source: each path's migration flag, evaluated by the real server SDK, with
//! the operation's measurements sent back through `track_migration_op` so LaunchDarkly's
//! consistency, latency and error charts work.
//!
//! Invariants:
//! - The SDK key is read from the environment variable named in the config; it is never
//!   stored in the file and never logged.
//! - Startup waits for the first flag data (`init_timeout`); failing that is an error, unless
//!   `offline` (then every path is at `default_stage`, and no event is sent).
//! - Contexts: the request key as a `user` context and the tenant as a context of
//!   `context_kind` (a multi-context when both are present), so flags can target tenants,
//!   cohorts of tenants (segments/rules on that kind) or individual users.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use launchdarkly_server_sdk::{
    Client, Config, ConfigBuilder, Context, ContextBuilder, EvalError, FlagValue,
    MultiContextBuilder, NullEventProcessorBuilder, Reason, ServiceEndpointsBuilder,
};

use super::{
    Decision, FlagContext, FlagError, FlagSource, LaunchDarklyConfig, PathSpec, PathState, Stage,
    Tracking,
};

/// How the LaunchDarkly source evaluates.
#[derive(Clone, Debug)]
pub struct LdOptions {
    /// Returned when the flag is missing or LaunchDarkly cannot be reached.
    pub default_stage: Stage,
    /// Context kind keyed by the tenant.
    pub context_kind: String,
    /// How long startup waits for flag data.
    pub init_timeout: Duration,
}

impl Default for LdOptions {
    fn default() -> Self {
        LdOptions {
            default_stage: Stage::Off,
            context_kind: "tenant".into(),
            init_timeout: Duration::from_secs(10),
        }
    }
}

/// A started LaunchDarkly client.
pub struct LdSource {
    client: Arc<Client>,
    kind: String,
    offline: bool,
    closed: Arc<AtomicBool>,
    /// The last stage each (flag, tenant) evaluated to: the fallback of a failed evaluation.
    last: std::sync::RwLock<std::collections::HashMap<(String, Option<String>), Stage>>,
}

impl LdSource {
    /// Build the SDK configuration from `[flags.launchdarkly]` and start the client.
    pub async fn from_config(
        cfg: &LaunchDarklyConfig,
        default_stage: Stage,
    ) -> Result<LdSource, FlagError> {
        let key = match std::env::var(&cfg.sdk_key_env) {
            Ok(k) if !k.trim().is_empty() => k,
            // Offline never connects, so no key is needed.
            _ if cfg.offline => "offline".to_string(),
            _ => {
                return Err(FlagError::LaunchDarkly(format!(
                    "environment variable {} (flags.launchdarkly.sdk_key_env) is not set: it must hold the server-side SDK key",
                    cfg.sdk_key_env
                )))
            }
        };
        let mut builder = ConfigBuilder::new(&key).offline(cfg.offline);
        let mut endpoints = ServiceEndpointsBuilder::new();
        if let Some(relay) = &cfg.relay_proxy {
            endpoints.relay_proxy(relay);
            builder = builder.service_endpoints(&endpoints);
        } else if let (Some(b), Some(s), Some(e)) =
            (&cfg.base_uri, &cfg.stream_uri, &cfg.events_uri)
        {
            endpoints
                .polling_base_url(b)
                .streaming_base_url(s)
                .events_base_url(e);
            builder = builder.service_endpoints(&endpoints);
        }
        if !cfg.events {
            builder = builder.event_processor(&NullEventProcessorBuilder::new());
        }
        let config = builder
            .build()
            .map_err(|e| FlagError::LaunchDarkly(e.to_string()))?;
        LdSource::start(
            config,
            LdOptions {
                default_stage,
                context_kind: cfg.context_kind.clone(),
                init_timeout: cfg.init_timeout,
            },
        )
        .await
    }

    /// Start a client on the current tokio runtime and wait for its first flag data.
    pub async fn start(config: Config, opts: LdOptions) -> Result<LdSource, FlagError> {
        let offline = config.offline();
        let client = Client::build(config).map_err(|e| FlagError::LaunchDarkly(e.to_string()))?;
        client.start_with_default_executor();
        let src = LdSource {
            client: Arc::new(client),
            kind: opts.context_kind,
            offline,
            closed: Arc::new(AtomicBool::new(false)),
            last: Default::default(),
        };
        match src.client.wait_for_initialization(opts.init_timeout).await {
            Some(true) => {
                tracing::info!(offline, "launchdarkly client initialized");
                Ok(src)
            }
            // Dropping `src` closes the client.
            Some(false) => Err(FlagError::LaunchDarkly(
                "the client failed to initialize (check the SDK key and the endpoints)".into(),
            )),
            None => Err(FlagError::LaunchDarkly(format!(
                "no flag data within {} (flags.launchdarkly.init_timeout); is LaunchDarkly or the relay reachable?",
                humantime::format_duration(opts.init_timeout)
            ))),
        }
    }

    /// The SDK client, e.g. to flush events in tests.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    fn context(&self, ctx: &FlagContext) -> Result<Context, String> {
        let tenant = ctx.tenant.as_deref().filter(|t| !t.is_empty());
        let tenant_ctx = |t: &str| ContextBuilder::new(t).kind(self.kind.as_str()).build();
        match (ctx.key.is_empty(), tenant) {
            (false, Some(t)) => MultiContextBuilder::new()
                .add_context(ContextBuilder::new(ctx.key.as_str()).build()?)
                .add_context(tenant_ctx(t)?)
                .build(),
            (false, None) => ContextBuilder::new(ctx.key.as_str()).build(),
            (true, Some(t)) => tenant_ctx(t),
            // LaunchDarkly needs a key; an anonymous context only sees the fallthrough.
            (true, None) => ContextBuilder::new("cutover").anonymous(true).build(),
        }
    }

    fn origin(&self, flag: &str) -> String {
        if self.offline {
            "default (launchdarkly offline)".into()
        } else if !self.client.initialized() {
            "default (launchdarkly unreachable)".into()
        } else {
            format!("launchdarkly flag {flag}")
        }
    }
}

impl FlagSource for LdSource {
    fn evaluate(&self, spec: &PathSpec, ctx: &FlagContext, default: Stage) -> Decision {
        match self.context(ctx) {
            Ok(c) => {
                // An evaluation that fails (client unreachable, flag deleted, wrong type)
                // returns the fallback given here: the last stage this flag evaluated to for
                // this tenant, not the configured default.
                let key = (spec.flag.clone(), ctx.tenant.clone());
                let last = self
                    .last
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .copied();
                let fallback = last.unwrap_or(default);
                let (stage, tracker) =
                    self.client
                        .migration_variation(&c, &spec.flag, fallback.into());
                let stage = Stage::try_from(stage).unwrap_or(fallback);
                let mut origin = self.origin(&spec.flag);
                if !self.offline && !self.client.initialized() {
                    metrics::counter!("cutover_flags_evaluation_errors_total", "path" => spec.path.clone())
                        .increment(1);
                    if last.is_some() {
                        origin = "last known stage (launchdarkly unreachable)".into();
                    }
                } else if last != Some(stage) {
                    self.last
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, stage);
                }
                Decision::with(
                    spec.path.clone(),
                    stage,
                    origin,
                    Tracking::LaunchDarkly {
                        client: self.client.clone(),
                        tracker,
                    },
                )
            }
            Err(e) => Decision::sampled(
                spec.path.clone(),
                default,
                format!("default (invalid launchdarkly context: {e})"),
                0.0,
            ),
        }
    }

    fn list(&self, paths: &[PathSpec], ctx: &FlagContext, default: Stage) -> Vec<PathState> {
        let context = self.context(ctx);
        paths
            .iter()
            .map(|spec| {
                let (stage, origin) = match &context {
                    Ok(c) => {
                        let d = self.client.variation_detail(
                            c,
                            &spec.flag,
                            FlagValue::Str(default.as_str().into()),
                        );
                        let stage = match &d.value {
                            Some(FlagValue::Str(s)) => s.parse().ok(),
                            _ => None,
                        };
                        let flag = &spec.flag;
                        match (stage, d.reason) {
                            (_, Reason::Error { error }) => (
                                default,
                                match error {
                                    EvalError::FlagNotFound => {
                                        format!("default (flag {flag} not found in launchdarkly)")
                                    }
                                    EvalError::ClientNotReady => self.origin(flag),
                                    other => {
                                        format!("default (launchdarkly flag {flag}: {other:?})")
                                    }
                                },
                            ),
                            (None, _) => (
                                default,
                                format!("default (flag {flag} is not a migration flag)"),
                            ),
                            (Some(s), reason) => {
                                let why = match reason {
                                    Reason::Off => "targeting off",
                                    Reason::TargetMatch => "individual target",
                                    Reason::RuleMatch { .. } => "rule",
                                    Reason::Fallthrough { .. } => "default rule",
                                    Reason::PrerequisiteFailed { .. } => "prerequisite failed",
                                    _ => "evaluated",
                                };
                                (s, format!("launchdarkly flag {flag} ({why})"))
                            }
                        }
                    }
                    Err(e) => (
                        default,
                        format!("default (invalid launchdarkly context: {e})"),
                    ),
                };
                PathState {
                    path: spec.path.to_string(),
                    flag: spec.flag.clone(),
                    stage,
                    origin,
                    tenants: Default::default(),
                    check_ratio: None,
                }
            })
            .collect()
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.client.close();
        }
    }
}

impl Drop for LdSource {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            // `close` blocks on the final event flush; never do that on an async worker.
            let client = self.client.clone();
            let _ = std::thread::Builder::new()
                .name("cutover-ld-close".into())
                .spawn(move || client.close());
        }
    }
}
