//! `cutover replay --write-mode rebuild`: an exact rebuild through BatchWriteItem, compared
//! with the conditional rebuild of the same hostile topic (re-delivery, primary-key moves).

use crate::chat;
use crate::common;
use crate::stream::{setup, strip};

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_mode_equals_the_conditional_rebuild_under_redelivery_and_key_moves() {
    let env = setup("rebuild", "dms", 4, "").await;
    let records = chat::generate(20, 1500, 17, true).dms();
    common::produce(&env.topic, &records).await;
    // At-least-once: a third of the topic delivered again, after the newer records.
    common::produce(&env.topic, &records[..records.len() / 3]).await;

    let replay = |table: &str, mode: &str| {
        common::cutover_ok(
            &env.config,
            &[
                "replay",
                "--target-table",
                table,
                "--create-table",
                "--write-mode",
                mode,
                "--idle-timeout",
                "5s",
            ],
        )
    };
    let conditional = common::unique("rebuild-cond");
    replay(&conditional, "conditional");
    let rebuilt = common::unique("rebuild-new");
    let out = replay(&rebuilt, "rebuild");
    assert!(
        out.contains("key-move item writes applied last"),
        "the topic must hold primary-key moves: {out}"
    );
    let want = strip(&common::scan(&env.client, &conditional).await);
    common::assert_same_items(
        &strip(&common::scan(&env.client, &rebuilt).await),
        &want,
        "rebuild mode vs conditional rebuild",
    );

    // The same topic defeats plain batch mode, so the comparison above means something.
    let batch = common::unique("rebuild-batch");
    replay(&batch, "batch");
    assert_ne!(
        strip(&common::scan(&env.client, &batch).await),
        want,
        "batch mode should not be exact on this topic"
    );
}

#[test]
fn rebuild_mode_is_refused_into_a_table_the_replay_did_not_create() {
    let config = common::write_config(
        "rebuild-refused",
        &chat::config("t", "tbl", "g", "t.dlq", "dms", ""),
    );
    let out = common::cutover_cmd(
        &config,
        &[
            "replay",
            "--target-table",
            "existing",
            "--write-mode",
            "rebuild",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--create-table"), "{err}");
}
