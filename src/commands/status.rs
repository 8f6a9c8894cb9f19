//! `cutover status`: exit 0 when READY, 1 otherwise.

use std::path::Path;

use super::{print_report, Failure, Outcome};
use crate::app::Config;
use crate::cli::ListFormat;

pub struct Settings {
    status: crate::status::Settings,
    format: ListFormat,
}

impl Settings {
    pub fn resolve(format: ListFormat, config_file: &Path, cfg: &Config) -> Settings {
        Settings {
            status: crate::status::Settings {
                kafka: cfg.kafka.clone(),
                status: cfg.status.clone(),
                sources: cfg.tables.iter().map(|t| t.source.clone()).collect(),
                flags: cfg.flags.clone(),
                config_dir: crate::config::dir_of(config_file).to_path_buf(),
                verify_state: cfg.verify.state_path(config_file),
                capture: cfg.kafka.topics.contains(&cfg.capture.topic).then(|| {
                    (
                        cfg.capture.name.clone(),
                        cfg.capture.checkpoint_topic.clone(),
                    )
                }),
                repair_queue: (
                    cfg.access.repair_topic.clone(),
                    cfg.access.repair_group.clone(),
                ),
            },
            format,
        }
    }
}

pub async fn run(s: Settings) -> Result<Outcome, Failure> {
    let report = crate::status::status(&s.status).await?;
    print_report(s.format, &report, crate::status::render_text, report.ready)
}
