//! `cutover flags list | set`: show or change the migration stage of the service's paths.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{Failure, Outcome};
use crate::app::Config;
use crate::cli::{FlagsCommand, ListFormat};
use std::time::Duration;

use crate::access::{plan, repair, AccessConfig};
use crate::flags::{
    FlagContext, FlagError, Flags, FlagsConfig, Origin, RulesConfig, SourceKind, Stage,
};
use crate::kafka::KafkaConfig;

pub enum Settings {
    List {
        flags: FlagsConfig,
        /// The config file's directory (a relative flag file is resolved against it).
        dir: PathBuf,
        ctx: FlagContext,
        format: ListFormat,
    },
    /// Only for a declared path of the file source.
    Set {
        /// The flag file.
        file: PathBuf,
        path: String,
        stage: Stage,
        tenant: Option<String>,
        /// Every declared path (the file is checked against them).
        declared: HashSet<String>,
        /// Skip the repair-backlog check of a change of the authoritative store.
        force: bool,
        /// Where the repair queue is (for that check).
        kafka: KafkaConfig,
        access: AccessConfig,
        /// `[flags.rules]` and the default stage: the edited file must keep them.
        rules: RulesConfig,
        default: Stage,
    },
}

impl Settings {
    pub fn resolve(
        command: FlagsCommand,
        config_file: &Path,
        cfg: &Config,
    ) -> Result<Settings, Failure> {
        let fc = &cfg.flags;
        let dir = crate::config::dir_of(config_file);
        Ok(match command {
            FlagsCommand::List {
                tenant,
                key,
                format,
            } => Settings::List {
                flags: fc.clone(),
                dir: dir.to_path_buf(),
                ctx: FlagContext {
                    key: key.unwrap_or_default(),
                    tenant,
                },
                format,
            },
            FlagsCommand::Set {
                path,
                stage,
                tenant,
                force,
            } => {
                let Some(spec) = fc.path_specs().into_iter().find(|s| *s.path == *path) else {
                    return Err(FlagError::UnknownPath(path).into());
                };
                if fc.source == SourceKind::Launchdarkly {
                    return Err(FlagError::NotFileSource(spec.flag).into());
                }
                Settings::Set {
                    file: fc.file_path(dir),
                    path,
                    stage,
                    tenant,
                    declared: fc.paths.keys().cloned().collect(),
                    force,
                    kafka: cfg.kafka.clone(),
                    access: cfg.access.clone(),
                    rules: fc.rules.clone(),
                    default: fc.default_stage,
                }
            }
        })
    }
}

pub async fn run(s: Settings) -> Result<Outcome, Failure> {
    match s {
        Settings::List {
            flags,
            dir,
            ctx,
            format,
        } => list(&flags, &dir, &ctx, format).await,
        Settings::Set {
            file,
            path,
            stage,
            tenant,
            declared,
            force,
            kafka,
            access,
            rules,
            default,
        } => {
            let before = crate::flags::file::load(&file, Some(&declared))
                .ok()
                .and_then(|st| st.stage_of(&path, tenant.as_deref()));
            if !force {
                refuse_inversion_with_backlog(&path, before, stage, &kafka, &access).await?;
            }
            crate::flags::set_stage_with(&file, &path, stage, tenant.as_deref(), &rules, default)?;
            let who = tenant.map(|t| format!(" (tenant {t})")).unwrap_or_default();
            let before = before.map_or("unset".to_string(), |s| s.to_string());
            println!("{path}{who}: {before} -> {stage} in {}", file.display());
            // The edit itself is valid; say so if the rest of the file is not, since the
            // service would keep its last good flags.
            if let Err(e) = crate::flags::file::load(&file, Some(&declared)) {
                return Err(anyhow::anyhow!("the flag file has other problems; the service will not apply it until they are fixed: {e}").into());
            }
            Ok(Outcome::Done)
        }
    }
}

/// A change that makes the other store authoritative (e.g. complete → off) while the repair
/// queue holds entries is refused: those entries are applied in the new direction, so a write
/// that so far only the old authoritative store has would be overwritten. Drain the queue
/// (the repair worker) first, or pass `--force`. Unknown before-stage: `off` (the default).
async fn refuse_inversion_with_backlog(
    path: &str,
    before: Option<Stage>,
    after: Stage,
    kafka: &KafkaConfig,
    access: &AccessConfig,
) -> Result<(), Failure> {
    let before = before.unwrap_or(Stage::Off);
    let (from, to) = (plan(before).authoritative, plan(after).authoritative);
    if from == to {
        return Ok(());
    }
    let name = |o: Origin| match o {
        Origin::Old => "MySQL",
        Origin::New => "DynamoDB",
    };
    let topic = &access.repair_topic;
    match repair::backlog(kafka, access, Some(path), Duration::from_secs(15), 100_000).await {
        Ok(0) => Ok(()),
        Ok(n) => Err(anyhow::anyhow!(
            "{path}: {before} -> {after} makes {} authoritative instead of {}, but the repair queue (topic {topic}, group {}) holds {n}{} unapplied entries of this path; they would be applied from {} and overwrite writes only {} has. Let the repair worker drain it, or pass --force",
            name(to), name(from), access.repair_group, if n >= 100_000 { "+" } else { "" }, name(to), name(from)
        )
        .into()),
        Err(e) => Err(anyhow::anyhow!(
            "{path}: {before} -> {after} changes the authoritative store, and the repair queue's backlog could not be checked ({e}); fix that, or pass --force"
        )
        .into()),
    }
}

async fn list(
    fc: &FlagsConfig,
    dir: &Path,
    ctx: &FlagContext,
    format: ListFormat,
) -> Result<Outcome, Failure> {
    let flags = match Flags::from_config(fc, dir).await {
        Err(FlagError::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow::anyhow!(
                "flag file {} not found: `cutover flags set <path> <stage>` creates it",
                path.display()
            )
            .into())
        }
        other => other?,
    };
    let states = flags.list(ctx);
    tokio::task::spawn_blocking(move || flags.close()).await?;
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&states)?),
        ListFormat::Text => {
            let w = states
                .iter()
                .map(|s| s.path.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!("{:w$}  {:9}  FROM", "PATH", "STAGE");
            for s in &states {
                let mut from = s.origin.clone();
                if !s.tenants.is_empty() {
                    let t: Vec<String> = s
                        .tenants
                        .iter()
                        .map(|(t, st)| format!("{t}={st}"))
                        .collect();
                    from.push_str(&format!("; tenants: {}", t.join(", ")));
                }
                println!("{:w$}  {:9}  {from}", s.path, s.stage.as_str());
            }
        }
    }
    Ok(Outcome::Done)
}
