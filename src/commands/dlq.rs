//! `cutover dlq list | redrive`: the dead-letter topic read back, and re-driven after a
//! mapping fix. `redrive` exits 1 when any record is dead-lettered again.

use std::time::Duration;

use super::{print_report, Failure, Outcome};
use crate::app::Config;
use crate::cli::{DlqCommand, DlqFilterArgs, ListFormat};
use crate::dlq::{Filter, Letter, RedriveSummary};

/// How long a partition of the dead-letter topic (or the redrive log) may go without a record
/// or its end before the read fails.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Settings {
    List {
        kafka: crate::kafka::KafkaConfig,
        filter: Filter,
        show_values: bool,
        format: ListFormat,
    },
    Redrive {
        stream: Box<crate::run::Settings>,
        filter: Filter,
        format: ListFormat,
    },
}

fn filter(f: DlqFilterArgs, reason_contains: Option<String>) -> Filter {
    Filter {
        since: f.since,
        stage: f.stage.map(|s| s.as_str().to_string()),
        reason_contains,
    }
}

impl Settings {
    pub fn resolve(command: DlqCommand, cfg: &Config) -> Result<Settings, Failure> {
        Ok(match command {
            DlqCommand::List {
                filter: f,
                show_values,
                format,
            } => Settings::List {
                kafka: cfg.kafka.clone(),
                filter: filter(f, None),
                show_values,
                format,
            },
            DlqCommand::Redrive {
                filter: f,
                reason_contains,
                format,
            } => Settings::Redrive {
                stream: Box::new(super::run::stream(cfg)?),
                filter: filter(f, reason_contains),
                format,
            },
        })
    }
}

pub async fn run(s: Settings) -> Result<Outcome, Failure> {
    match s {
        Settings::List {
            kafka,
            filter,
            show_values,
            format,
        } => {
            let letters = tokio::task::spawn_blocking(move || {
                crate::dlq::list(&kafka, &filter, show_values, READ_TIMEOUT)
            })
            .await??;
            let text: fn(&Vec<Letter>) -> String = |l| crate::dlq::render_text(l);
            print_report(format, &letters, text, true)
        }
        Settings::Redrive {
            stream,
            filter,
            format,
        } => {
            let summary = crate::dlq::redrive(*stream, filter, READ_TIMEOUT).await?;
            let ok = summary.ok();
            print_report(format, &summary, RedriveSummary::text, ok)
        }
    }
}
