//! `cutover tables create | render`: the target tables the mapping implies.

use super::{Failure, Outcome};
use crate::app::Config;
use crate::cli::{RenderFormat, TablesCommand};
use crate::mapping::Mapping;
use crate::sink::DynamoConfig;

pub enum Settings {
    /// Create the tables that do not exist yet (only `only`, when given).
    Create {
        mapping: Mapping,
        only: Vec<String>,
        dynamodb: DynamoConfig,
    },
    /// Print them for infra/ (no AWS access).
    Render {
        mapping: Mapping,
        format: RenderFormat,
    },
}

impl Settings {
    pub fn resolve(command: TablesCommand, cfg: &Config) -> Result<Settings, Failure> {
        let mapping = cfg.mapping()?;
        Ok(match command {
            TablesCommand::Create { tables } => {
                for t in &tables {
                    if !mapping.targets().contains_key(t) {
                        return Err(
                            anyhow::anyhow!("--table {t}: not a target of the mapping").into()
                        );
                    }
                }
                Settings::Create {
                    mapping,
                    only: tables,
                    dynamodb: cfg.dynamodb.clone(),
                }
            }
            TablesCommand::Render { format } => Settings::Render { mapping, format },
        })
    }
}

pub async fn run(s: Settings) -> Result<Outcome, Failure> {
    match s {
        Settings::Render { mapping, format } => {
            let doc = match format {
                RenderFormat::Json => crate::tables::render_json(&mapping),
                RenderFormat::Terraform => crate::tables::render_terraform(&mapping),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Settings::Create {
            mapping,
            only,
            dynamodb,
        } => {
            let client = crate::sink::dynamo::client(&dynamodb).await;
            for (name, spec) in mapping.targets() {
                if !only.is_empty() && !only.contains(name) {
                    continue;
                }
                if crate::tables::create(&client, spec, name).await? {
                    println!("created {name}");
                } else {
                    println!("{name} exists");
                }
            }
        }
    }
    Ok(Outcome::Done)
}
