//! `cutover replay`: re-read the topics from an offset or a time and rebuild a table. Every
//! argument is checked against the mapping before any table is created or record read.

use std::io::IsTerminal;

use super::{shutdown_signal, Failure, Outcome};
use crate::app::Config;
use crate::cli::ReplayArgs;
use crate::replay::ReplayOptions;

#[derive(Debug)]
pub struct Settings {
    replay: crate::replay::Settings,
    json: bool,
}

impl Settings {
    pub fn resolve(args: ReplayArgs, cfg: &Config) -> Result<Settings, Failure> {
        let opts = ReplayOptions {
            from: args.from,
            until: args.until,
            tables: args.tables,
            target_table: args.target_table,
            create_table: args.create_table,
            write_mode: args.write_mode.map(Into::into),
            force_batch: args.force_batch,
            idle_timeout: args.idle_timeout,
            progress: false,
        };
        let replay = crate::replay::Settings::new(super::run::stream(cfg)?, &cfg.tables, opts)?;
        Ok(Settings {
            replay,
            json: args.json,
        })
    }
}

pub async fn run(mut s: Settings) -> Result<Outcome, Failure> {
    crate::telemetry::metrics_handle();
    s.replay.progress = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let summary = crate::replay::replay(s.replay, shutdown_signal()).await?;
    if s.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let t = &summary.stats;
        println!(
            "replayed {} records from {} partition(s) in {:.1}s: {} changes, {} items applied, {} stale, {} skipped, {} dead-lettered",
            t.records,
            summary.partitions,
            started.elapsed().as_secs_f64(),
            t.changes,
            t.applied,
            t.stale,
            t.skipped,
            t.dead_lettered
        );
        let d = &summary.key_moves;
        if d.writes > 0 {
            println!(
                "rebuild: {} key-move item writes applied last under the version guard: {} applied, {} stale",
                d.writes, d.applied, d.stale
            );
        }
        for p in &summary.per_partition {
            println!(
                "  {}[{}]: offsets {}..{}, read to {}, {} records, {:?}",
                p.topic, p.partition, p.start, p.end, p.read_to, p.records, p.ended
            );
        }
    }
    if summary.complete {
        return Ok(Outcome::Done);
    }
    for p in summary.short() {
        tracing::error!(
            topic = %p.topic,
            partition = p.partition,
            read_to = p.read_to,
            end = p.end,
            "replay ended short of the partition's end offset; re-run it with --from {}:{} to finish",
            p.partition,
            p.read_to
        );
    }
    Ok(Outcome::NotOk)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::replay::ReplayError;

    const MERGE: &str = r#"
        [kafka]
        topics = ["t"]
        [[table]]
        source = "app.users"
        target = "users"
        primary_key = ["id"]
        partition_key = { name = "pk", template = "USER#{id}" }
        merge = true
        owner = true
        columns = ["id", "name"]
        [[table]]
        source = "app.prefs"
        target = "users"
        primary_key = ["user_id"]
        partition_key = { name = "pk", template = "USER#{user_id}" }
        merge = true
        columns = ["theme"]
    "#;

    /// `cutover replay <args>` resolved against `cfg`.
    fn resolve_in(cfg: &str, args: &[&str]) -> Result<Settings, Failure> {
        let cli = Cli::try_parse_from(["cutover", "replay"].iter().chain(args)).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("not replay")
        };
        Settings::resolve(args, &Config::from_toml(cfg).unwrap())
    }

    fn resolve(args: &[&str]) -> Result<Settings, Failure> {
        resolve_in(MERGE, args)
    }

    /// `replay --create-table --write-mode batch` of a merge table is refused while resolving,
    /// before anything (the table) is created.
    #[test]
    fn batch_replay_of_merge_tables_is_refused_before_any_io() {
        let refused = resolve(&[
            "--target-table",
            "users-v2",
            "--create-table",
            "--write-mode",
            "batch",
        ]);
        match refused {
            Err(Failure::Failed(e)) => {
                assert!(
                    matches!(e.downcast_ref(), Some(ReplayError::Refused(_))),
                    "{e:#}"
                );
                assert!(e.to_string().contains("merge-mode"), "{e:#}");
            }
            other => panic!("not refused: {other:?}"),
        }
        let ok = resolve(&["--target-table", "users-v2", "--create-table"]).unwrap();
        let target = ok.replay.target_table.expect("target table");
        assert_eq!(target.name, "users-v2");
        assert!(target.create);
        assert_eq!(ok.replay.write_targets, vec!["users-v2".to_string()]);
    }

    #[test]
    fn unmapped_tables_and_split_targets_are_refused() {
        let err = |args: &[&str]| match resolve(args) {
            Err(Failure::Failed(e)) => e.to_string(),
            other => panic!("not refused: {other:?}"),
        };
        assert!(err(&["--table", "app.nope"]).contains("no [[table]] block maps it"));
        let split = MERGE.replace(
            "target = \"users\"\n        primary_key = [\"user_id\"]",
            "target = \"prefs\"\n        primary_key = [\"user_id\"]",
        );
        match resolve_in(&split, &["--target-table", "x-v2"]) {
            Err(Failure::Failed(e)) => assert!(e.to_string().contains("share one target")),
            other => panic!("not refused: {other:?}"),
        }
    }

    /// Item 8: batch mode (no version checks) only into a table this replay creates, or with
    /// --force-batch; refused while resolving, before any I/O.
    #[test]
    fn batch_mode_goes_only_into_a_table_the_replay_creates() {
        const PLAIN: &str = r#"
            [kafka]
            topics = ["t"]
            [[table]]
            source = "app.users"
            target = "users"
            primary_key = ["id"]
            partition_key = { name = "pk", template = "USER#{id}" }
        "#;
        for args in [
            &["--write-mode", "batch"][..],
            &["--write-mode", "batch", "--target-table", "users-v2"][..],
        ] {
            match resolve_in(PLAIN, args) {
                Err(Failure::Failed(e)) => {
                    assert!(e.to_string().contains("--force-batch"), "{e:#}")
                }
                other => panic!("{args:?} not refused: {other:?}"),
            }
        }
        let batch = |args: &[&str]| {
            let s = resolve_in(PLAIN, args).expect("allowed");
            assert_eq!(
                s.replay.stream.sink.write_mode,
                crate::sink::WriteMode::Batch
            );
        };
        batch(&[
            "--write-mode",
            "batch",
            "--target-table",
            "users-v2",
            "--create-table",
        ]);
        batch(&["--write-mode", "batch", "--force-batch"]);
        // sink.write_mode = "batch" in the file counts too.
        let file_batch = PLAIN.replace("[kafka]", "[sink]\nwrite_mode = \"batch\"\n[kafka]");
        assert!(resolve_in(&file_batch, &[]).is_err());
        assert!(resolve_in(&file_batch, &["--force-batch"]).is_ok());
    }
}
