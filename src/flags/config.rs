//! `[flags]`: where stages come from (the flag file or LaunchDarkly), the declared paths, and
//! the LaunchDarkly client's settings; every problem with its key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{PathSpec, RulesConfig, Stage};
use crate::config::ConfigIssue;

/// Where stages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The local flag file, hot-reloaded.
    #[default]
    File,
    /// LaunchDarkly migration flags.
    Launchdarkly,
}

/// `[flags]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FlagsConfig {
    /// Where stages come from: `file` (the local flag file) or `launchdarkly`.
    pub source: SourceKind,
    /// The local flag file: TOML, or JSON if its name ends in `.json`. A relative path is
    /// resolved against the configuration file's directory.
    pub file: PathBuf,
    /// How quickly edits of the flag file are picked up: changes are watched, and the file is
    /// also polled at this interval (for file systems without change events).
    #[serde(with = "humantime_serde")]
    pub reload: Duration,
    /// The stage of a path that has no entry in the file, or when LaunchDarkly is unreachable
    /// or does not have the flag.
    pub default_stage: Stage,
    /// Every path the service uses (`message.read`, `conversation.list`, ...). Deciding a path
    /// that is not declared here is an error.
    pub paths: BTreeMap<String, PathConfig>,
    /// Cross-path rules (see [`super::rules`]).
    pub rules: RulesConfig,
    /// The LaunchDarkly client, used when `source = "launchdarkly"`.
    pub launchdarkly: LaunchDarklyConfig,
}

impl Default for FlagsConfig {
    fn default() -> Self {
        FlagsConfig {
            source: SourceKind::File,
            file: PathBuf::from("cutover-flags.toml"),
            reload: Duration::from_secs(1),
            default_stage: Stage::Off,
            paths: BTreeMap::new(),
            rules: RulesConfig::default(),
            launchdarkly: LaunchDarklyConfig::default(),
        }
    }
}

/// `[flags.paths."<path>"]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PathConfig {
    /// LaunchDarkly flag key; default: the path with every character other than letters,
    /// digits, `_` and `-` replaced by `-` (`message.read` → `message-read`).
    pub flag: Option<String>,
}

/// `[flags.launchdarkly]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchDarklyConfig {
    /// Name of the environment variable that holds the server-side SDK key. The key itself
    /// never appears in the file and is never logged.
    pub sdk_key_env: String,
    /// A Relay Proxy's base URL, used for polling, streaming and events.
    pub relay_proxy: Option<String>,
    /// Polling base URL (set all three of base_uri, stream_uri, events_uri, or none).
    pub base_uri: Option<String>,
    /// Streaming base URL.
    pub stream_uri: Option<String>,
    /// Events base URL.
    pub events_uri: Option<String>,
    /// Do not connect: every flag evaluates to `flags.default_stage`, no events are sent.
    pub offline: bool,
    /// Send analytics and migration-op events (consistency, latency, errors) to LaunchDarkly.
    pub events: bool,
    /// Context kind for per-tenant targeting: requests with a tenant are evaluated with a
    /// context of this kind keyed by the tenant (plus a `user` context for the request key).
    pub context_kind: String,
    /// How long startup waits for the first flag data before failing.
    #[serde(with = "humantime_serde")]
    pub init_timeout: Duration,
}

impl Default for LaunchDarklyConfig {
    fn default() -> Self {
        LaunchDarklyConfig {
            sdk_key_env: "LD_SDK_KEY".into(),
            relay_proxy: None,
            base_uri: None,
            stream_uri: None,
            events_uri: None,
            offline: false,
            events: true,
            context_kind: "tenant".into(),
            init_timeout: Duration::from_secs(10),
        }
    }
}

fn is_path_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
}

fn is_flag_key(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The LaunchDarkly flag key a path uses when `flag` is not set.
pub fn default_flag_key(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `"message.read"` as a key segment: bare when TOML allows it, quoted otherwise.
pub(crate) fn key_segment(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > "https://".len()
        && !s.chars().any(char::is_whitespace)
}

impl FlagsConfig {
    /// Every semantic problem of `[flags]`, with its key. Pure.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.reload.is_zero() {
            issues.push(ConfigIssue::new("flags.reload", "must be > 0, e.g. \"1s\""));
        }
        if self.source == SourceKind::File && self.file.as_os_str().is_empty() {
            issues.push(ConfigIssue::new(
                "flags.file",
                "must name the flag file when flags.source = \"file\"",
            ));
        }
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (path, pc) in &self.paths {
            let key = format!("flags.paths.{}", key_segment(path));
            if path.trim().is_empty() {
                issues.push(ConfigIssue::new(key, "path must not be empty"));
                continue;
            }
            if !is_path_name(path) {
                issues.push(ConfigIssue::new(
                    &key,
                    "path may contain only letters, digits, '_', '-', '.', ':' and '/', and must not start or end with '.'",
                ));
            }
            if let Some(other) = seen.insert(path.to_ascii_lowercase(), path) {
                issues.push(ConfigIssue::new(
                    &key,
                    format!("duplicate of path `{other}` (paths differ only in case)"),
                ));
            }
            if let Some(flag) = &pc.flag {
                if !is_flag_key(flag) {
                    issues.push(ConfigIssue::new(
                        format!("{key}.flag"),
                        "a LaunchDarkly flag key: letters, digits, '.', '_' and '-', not empty",
                    ));
                }
            }
        }
        issues.extend(
            self.rules
                .validate(&self.paths.keys().map(String::as_str).collect()),
        );
        let ld = &self.launchdarkly;
        let needs_ld = self.source == SourceKind::Launchdarkly;
        if needs_ld && !ld.offline && ld.sdk_key_env.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "flags.launchdarkly.sdk_key_env",
                "name the environment variable that holds the SDK key",
            ));
        }
        let kind = ld.context_kind.as_str();
        if kind.is_empty()
            || !kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            issues.push(ConfigIssue::new(
                "flags.launchdarkly.context_kind",
                "letters, digits, '.', '_' and '-', not empty",
            ));
        } else if matches!(kind, "kind" | "multi" | "user") {
            issues.push(ConfigIssue::new(
                "flags.launchdarkly.context_kind",
                "must not be \"kind\", \"multi\" or \"user\" (the request key is already the user context)",
            ));
        }
        for (name, url) in [
            ("relay_proxy", &ld.relay_proxy),
            ("base_uri", &ld.base_uri),
            ("stream_uri", &ld.stream_uri),
            ("events_uri", &ld.events_uri),
        ] {
            if let Some(u) = url {
                if !is_http_url(u) {
                    issues.push(ConfigIssue::new(
                        format!("flags.launchdarkly.{name}"),
                        "must be an http:// or https:// URL",
                    ));
                }
            }
        }
        let three = [&ld.base_uri, &ld.stream_uri, &ld.events_uri];
        let set = three.iter().filter(|u| u.is_some()).count();
        if ld.relay_proxy.is_some() && set > 0 {
            issues.push(ConfigIssue::new(
                "flags.launchdarkly.relay_proxy",
                "set either relay_proxy or base_uri/stream_uri/events_uri, not both",
            ));
        } else if set != 0 && set != 3 {
            issues.push(ConfigIssue::new(
                "flags.launchdarkly.base_uri",
                "set all three of base_uri, stream_uri and events_uri (or none)",
            ));
        }
        if ld.init_timeout.is_zero() {
            issues.push(ConfigIssue::new(
                "flags.launchdarkly.init_timeout",
                "must be > 0",
            ));
        }
        issues
    }

    /// The declared paths with their flag keys.
    pub fn path_specs(&self) -> Vec<PathSpec> {
        self.paths
            .iter()
            .map(|(p, c)| match &c.flag {
                Some(f) => PathSpec::with_flag(p, f),
                None => PathSpec::new(p),
            })
            .collect()
    }

    /// The flag file, resolved against `config_dir` when relative.
    pub fn file_path(&self, config_dir: &Path) -> PathBuf {
        if self.file.is_absolute() {
            self.file.clone()
        } else {
            config_dir.join(&self.file)
        }
    }
}
