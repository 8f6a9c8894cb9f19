//! What a person sees when a command fails (issue 13.1): every fatal error once, in one or two
//! lines (what failed, the key or resource, a hint); no SDK Debug dumps, no IMDS noise when
//! `dynamodb.endpoint_url` is set, and no librdkafka ERROR lines for its informational events.

use crate::chat;
use crate::common;
use crate::stream::setup;

/// The error part of a failed command's stderr: exactly one `error:` line (plus at most one
/// continuation line), no ERROR log line repeating it, no Debug dump of an SDK error.
fn assert_one_short_error(stderr: &str, what: &str) {
    assert!(
        !stderr.contains("DispatchFailure(") && !stderr.contains("ConnectorError {"),
        "{what}: an SDK Debug dump on stderr:\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: one `error:` line:\n{stderr}");
    let tail: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .collect();
    assert!(
        tail.len() <= 2 && tail.iter().all(|l| l.len() <= 400),
        "{what}: the error must fit one or two short lines:\n{stderr}"
    );
    assert_no_error_log(stderr, what);
}

/// No ERROR-level log line (librdkafka's or ours): a failure is printed once, as `error:`.
fn assert_no_error_log(stderr: &str, what: &str) {
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        logged.is_empty(),
        "{what}: ERROR log lines:\n{}\n--- stderr:\n{stderr}",
        logged.join("\n")
    );
}

#[test]
fn missing_credentials_say_which_chain_was_tried_and_what_to_set() {
    let name = common::unique("no-creds");
    let home = std::env::temp_dir().join(format!("cutover-it-home-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let config = common::write_config(
        &name,
        &chat::config(&name, &name, "g", &format!("{name}.dlq"), "dms", ""),
    );
    let mut cmd = common::cutover_cmd(&config, &["tables", "create"]);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", &home);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_one_short_error(&err, "tables create without credentials");
    for want in [
        "credentials",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "endpoint_url",
    ] {
        assert!(err.contains(want), "`{want}` missing from:\n{err}");
    }
    assert!(
        !err.contains("IMDS") && !err.contains(" WARN "),
        "no instance-metadata noise with an endpoint override:\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_stops_run_with_one_short_error() {
    common::require_stack();
    let topic = common::unique("short-fatal");
    common::create_topic(&topic, 1).await;
    let table = common::unique("never-created");
    let config = common::write_config(
        &topic,
        &chat::config(&topic, &table, "g", &format!("{topic}.dlq"), "dms", ""),
    );
    let out = common::cutover_cmd(&config, &["run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_one_short_error(&err, "run on a missing table");
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains(&table) && line.contains("tables create"),
        "names the table and the fix: {line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_prints_no_librdkafka_errors() {
    let env = setup("quiet-status", "dms", 4, "").await;
    common::produce(&env.topic, &chat::scenario().dms()).await;
    for rust_log in [None, Some("info")] {
        let mut cmd = common::cutover_cmd(&env.config, &["status"]);
        match rust_log {
            None => cmd.env_remove("RUST_LOG"),
            Some(l) => cmd.env("RUST_LOG", l),
        };
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !String::from_utf8_lossy(&out.stdout).is_empty(),
            "status prints its table:\n{err}"
        );
        assert_no_error_log(&err, &format!("status (RUST_LOG={rust_log:?})"));
        assert!(
            !err.contains("PartitionEOF") && !err.contains("librdkafka"),
            "status (RUST_LOG={rust_log:?}): librdkafka noise:\n{err}"
        );
    }
}
