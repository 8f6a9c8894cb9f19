//! `[flags.rules]` (a read path may not be ahead of its write path), enforced by `flags set`,
//! the flag-file loaders and at decision time; and failed evaluations or deleted entries
//! keeping the last known stage instead of the default.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cutover::flags::{FlagContext, Flags, RulesConfig, Stage};
use launchdarkly_server_sdk::{FlagBuilder, FlagValue, TestData};

use crate::common::{brokers, cutover_cmd, cutover_ok, unique, write_config};

fn rules_config(name: &str) -> (PathBuf, PathBuf) {
    let file_name = format!("{name}-flags.toml");
    let config = write_config(
        name,
        &format!(
            r#"
[kafka]
brokers = "{brokers}"
[access]
repair_topic = "{name}-repair"
[flags]
file = "{file_name}"
reload = "100ms"
[flags.paths."message.read"]
[flags.paths."message.write"]
[flags.rules.reads]
"message.read" = "message.write"
[[table]]
source = "chat.message"
target = "chat"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "MSG#{{id}}" }}
"#,
            brokers = brokers()
        ),
    );
    let file = config.with_file_name(file_name);
    let _ = std::fs::remove_file(&file);
    (config, file)
}

fn set_fails(config: &PathBuf, args: &[&str]) -> String {
    let mut all = vec!["flags", "set"];
    all.extend_from_slice(args);
    let out = cutover_cmd(config, &all).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} is refused: {stderr}");
    stderr
}

fn stage(flags: &Flags, path: &str) -> Stage {
    flags
        .decide(path, &FlagContext::default())
        .expect("declared")
        .stage
}

/// `flags set` refuses to move a read path ahead of its write path (either way round), and
/// per tenant; the loader rejects a hand-edited file that breaks the rule, at start and on
/// reload (the last good state keeps serving). Failed before: no rule existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_set_and_the_loaders_enforce_the_read_write_rule() {
    let (config, file) = rules_config(&unique("flags-rules"));
    let err = set_fails(&config, &["message.read", "dualwrite"]);
    assert!(
        err.contains("paths.\"message.read\".stage") && err.contains("move message.write first"),
        "names the key and the fix: {err}"
    );
    cutover_ok(&config, &["flags", "set", "message.write", "live"]);
    cutover_ok(&config, &["flags", "set", "message.read", "live"]);
    set_fails(&config, &["message.write", "shadow"]);
    set_fails(&config, &["message.read", "complete", "--tenant", "acme"]);
    cutover_ok(
        &config,
        &[
            "flags",
            "set",
            "message.write",
            "complete",
            "--tenant",
            "acme",
        ],
    );
    cutover_ok(
        &config,
        &[
            "flags",
            "set",
            "message.read",
            "complete",
            "--tenant",
            "acme",
        ],
    );

    let cfg = cutover::Config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let dir = config.parent().unwrap().to_path_buf();
    let flags = Flags::from_config(&cfg.flags, &dir)
        .await
        .expect("valid file");
    assert_eq!(stage(&flags, "message.read"), Stage::Live);
    // A hand edit that puts the read path ahead: rejected on reload.
    std::fs::write(
        &file,
        "[paths.\"message.read\"]\nstage = \"live\"\n[paths.\"message.write\"]\nstage = \"shadow\"\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(stage(&flags, "message.read"), Stage::Live, "last good kept");
    assert_eq!(
        stage(&flags, "message.write"),
        Stage::Live,
        "last good kept"
    );
    // ... and at start.
    let err = Flags::from_config(&cfg.flags, &dir)
        .await
        .expect_err("a file that breaks a rule is not loaded")
        .to_string();
    assert!(err.contains("flags.rules.reads"), "{err}");
    drop(flags);

    // The config itself: a rule naming an undeclared path is a config error, with its key.
    let mut fc = cfg.flags.clone();
    fc.rules
        .reads
        .insert("message.read".into(), "message.delete".into());
    let issues: Vec<String> = fc.validate().iter().map(|i| i.to_string()).collect();
    assert!(
        issues
            .iter()
            .any(|i| i.contains("flags.rules.reads.\"message.read\"")),
        "{issues:?}"
    );
}

fn migration_flag(key: &str) -> FlagBuilder {
    FlagBuilder::new(key).variations(
        Stage::ALL
            .into_iter()
            .map(|s| FlagValue::Str(s.as_str().into())),
    )
}

fn idx(s: Stage) -> usize {
    Stage::ALL.iter().position(|x| *x == s).unwrap()
}

/// LaunchDarkly serves `message.read` at complete while `message.write` is off: the read is
/// held at off (the write path's stage). Then `message.read`'s flag stops being a migration
/// flag (an evaluation error): it keeps its last known stage, not the default. Failed before:
/// complete was served, and the error fell back to the default stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launchdarkly_is_held_to_the_rule_and_errors_keep_the_last_known_stage() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let td = TestData::new();
    td.update(migration_flag("message-read").variation_for_all_index(idx(Stage::Complete)));
    td.update(migration_flag("message-write").variation_for_all_index(idx(Stage::Off)));
    let flags = Flags::launchdarkly_test_data(
        &td,
        ["message.read".to_string(), "message.write".to_string()],
    )
    .await
    .expect("ld client");
    let mut rules = RulesConfig::default();
    rules
        .reads
        .insert("message.read".into(), "message.write".into());
    let flags = flags.with_rules(&rules).expect("rules");
    assert_eq!(
        stage(&flags, "message.read"),
        Stage::Off,
        "held at the write path's stage"
    );
    td.update(
        td.flag("message-write")
            .variation_for_all_index(idx(Stage::Live)),
    );
    assert_eq!(stage(&flags, "message.read"), Stage::Live, "held at live");
    td.update(
        td.flag("message-write")
            .variation_for_all_index(idx(Stage::Complete)),
    );
    assert_eq!(stage(&flags, "message.read"), Stage::Complete);
    // Not a stage any more: an evaluation error.
    td.update(
        FlagBuilder::new("message-read")
            .variations([FlagValue::Str("bogus".into())])
            .variation_for_all_index(0),
    );
    assert_eq!(
        stage(&flags, "message.read"),
        Stage::Complete,
        "the last known stage, not the default (off)"
    );
}

/// A path's entry deleted from the flag file keeps its last known stage (and is counted and
/// logged), instead of silently going to the default. Failed before: it went to `off`.
#[test]
fn a_deleted_entry_keeps_the_last_known_stage() {
    let (config, file) = rules_config(&unique("flags-deleted"));
    std::fs::write(
        &file,
        "[paths.\"message.write\"]\nstage = \"live\"\n[paths.\"message.read\"]\nstage = \"shadow\"\n",
    )
    .unwrap();
    let src = cutover::flags::file::FileSource::open(
        &file,
        ["message.read".to_string(), "message.write".to_string()]
            .into_iter()
            .collect(),
        Duration::from_millis(100),
        true,
    )
    .expect("load");
    let flags = Flags::new(
        src,
        vec![
            cutover::flags::PathSpec::new("message.read"),
            cutover::flags::PathSpec::new("message.write"),
        ],
        Stage::Off,
    )
    .unwrap();
    std::fs::write(&file, "[paths.\"message.read\"]\nstage = \"live\"\n").unwrap();
    let start = Instant::now();
    while stage(&flags, "message.read") != Stage::Live {
        assert!(start.elapsed() < Duration::from_secs(5), "reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = flags
        .decide("message.write", &FlagContext::default())
        .unwrap();
    assert_eq!(d.stage, Stage::Live, "kept: {}", d.origin_of_stage);
    assert!(
        d.origin_of_stage.contains("last known"),
        "{}",
        d.origin_of_stage
    );
    let _ = config;
}
