//! `flags`: the real binary's `flags set | list`, hot reload of the flag file (events,
//! atomic rename, polling only, invalid edits), and LaunchDarkly through the real SDK on
//! TestData, with migration-op events captured by a local HTTP endpoint (no internet here).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover::flags::file::FileSource;
use cutover::flags::{FlagContext, Flags, OpKind, Origin, PathSpec, Stage};
use launchdarkly_server_sdk::{FlagBuilder, FlagValue, Kind, TestData};
use serde_json::Value;

use crate::common::{cutover_cmd, cutover_ok, unique, write_config};

const TABLE: &str = r#"
[[table]]
source = "chat.message"
target = "chat"
primary_key = ["id"]
partition_key = { name = "pk", template = "MSG#{id}" }
"#;

/// A config with `[flags]` and `[[table]]` but no Kafka topics; the flag file sits next to it.
fn flags_config(name: &str) -> (PathBuf, PathBuf) {
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
reload = "200ms"
[flags.paths."message.read"]
[flags.paths."message.write"]
flag = "cutover-message-write"
{TABLE}"#,
            brokers = crate::common::brokers(),
        ),
    );
    let file = config.with_file_name(file_name);
    let _ = std::fs::remove_file(&file);
    (config, file)
}

fn stage_of(list: &Value, path: &str) -> (String, String) {
    let p = list
        .as_array()
        .and_then(|a| a.iter().find(|p| p["path"] == path))
        .unwrap_or_else(|| panic!("{path} not listed in {list}"));
    (
        p["stage"].as_str().unwrap_or_default().to_string(),
        p["origin"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn cli_set_then_list_shows_it() {
    let (config, file) = flags_config(&unique("flags-cli"));
    let out = cutover_ok(&config, &["flags", "set", "message.read", "shadow"]);
    assert!(out.contains("message.read: unset -> shadow"), "{out}");
    cutover_ok(
        &config,
        &["flags", "set", "message.read", "live", "--tenant", "acme"],
    );
    let list: Value =
        serde_json::from_str(&cutover_ok(&config, &["flags", "list", "--format", "json"]))
            .expect("json");
    assert_eq!(
        stage_of(&list, "message.read"),
        ("shadow".into(), "file paths.\"message.read\"".into())
    );
    assert_eq!(stage_of(&list, "message.write").0, "off");
    assert_eq!(list[1]["flag"], "cutover-message-write");
    assert_eq!(list[0]["tenants"]["acme"], "live");
    let acme: Value = serde_json::from_str(&cutover_ok(
        &config,
        &["flags", "list", "--tenant", "acme", "--format", "json"],
    ))
    .expect("json");
    assert_eq!(
        stage_of(&acme, "message.read"),
        (
            "live".into(),
            "file paths.\"message.read\".tenants.acme".into()
        )
    );
    let text = cutover_ok(&config, &["flags", "list"]);
    assert!(
        text.contains("message.read") && text.contains("tenants: acme=live"),
        "{text}"
    );

    // Undeclared paths and unknown stages are refused, and the file is untouched.
    let before = std::fs::read_to_string(&file).expect("flag file");
    let out = cutover_cmd(&config, &["flags", "set", "message.delete", "live"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown path `message.delete`"));
    let out = cutover_cmd(&config, &["flags", "set", "message.read", "shadw"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown stage `shadw`"));
    assert_eq!(std::fs::read_to_string(&file).expect("flag file"), before);

    // `validate` stays strict: the same config lacks the topics `run` needs.
    let out = cutover_cmd(&config, &["validate"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.topics"));
}

#[test]
fn cli_set_with_launchdarkly_explains_where_flags_change() {
    let name = unique("flags-ld-cli");
    let config = write_config(
        &name,
        &format!("[flags]\nsource = \"launchdarkly\"\n[flags.paths.\"message.read\"]\n{TABLE}"),
    );
    let out = cutover_cmd(&config, &["flags", "set", "message.read", "live"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("change the stage of flag `message-read` in LaunchDarkly"),
        "{err}"
    );
}

fn write_atomically(file: &Path, text: &str) {
    let tmp = file.with_extension("tmp-edit");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, file).expect("rename");
}

/// Waits for `path` to reach `want`; returns how long it took.
fn wait_stage(flags: &Flags, path: &str, want: Stage, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = flags
            .decide(path, &FlagContext::default())
            .expect("declared")
            .stage;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{path} still {got} after {within:?}, wanted {want}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn reload_errors() -> f64 {
    let text = cutover::telemetry::metrics_handle().render();
    text.lines()
        .find(|l| l.starts_with("cutover_flags_reload_errors_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn file_edits_are_picked_up_within_the_reload_interval() {
    cutover::telemetry::metrics_handle();
    let (_, file) = flags_config(&unique("flags-reload"));
    std::fs::write(&file, "[paths.\"message.read\"]\nstage = \"off\"\n").expect("write");
    let reload = Duration::from_millis(300);
    let flags = Flags::file(&file, ["message.read".to_string()], reload).expect("load");
    assert_eq!(
        flags
            .decide("message.read", &FlagContext::default())
            .expect("declared")
            .stage,
        Stage::Off
    );

    // In place.
    std::fs::write(&file, "[paths.\"message.read\"]\nstage = \"dualwrite\"\n").expect("write");
    let t1 = wait_stage(&flags, "message.read", Stage::DualWrite, reload);
    // Editors' write-temp-then-rename.
    write_atomically(&file, "[paths.\"message.read\"]\nstage = \"shadow\"\n");
    let t2 = wait_stage(&flags, "message.read", Stage::Shadow, reload);
    // Through the CLI's own writer.
    cutover::flags::set_stage(&file, "message.read", Stage::Live, None).expect("set");
    let t3 = wait_stage(&flags, "message.read", Stage::Live, reload);
    eprintln!("reload latency: in place {t1:?}, rename {t2:?}, set_stage {t3:?}");

    // An invalid edit is rejected: the last good state keeps serving, the error is counted.
    let errors = reload_errors();
    write_atomically(
        &file,
        "[paths.\"message.read\"]\nstage = \"complete\"\ntenants = { acme = \"shadw\" }\n",
    );
    let start = Instant::now();
    while reload_errors() <= errors {
        assert!(start.elapsed() < reload * 3, "reload error not counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(reload * 2);
    assert_eq!(
        flags
            .decide("message.read", &FlagContext::tenant("acme"))
            .expect("declared")
            .stage,
        Stage::Live,
        "kept the last good state"
    );
    // An undeclared path is rejected the same way.
    write_atomically(&file, "[paths.\"message.reed\"]\nstage = \"complete\"\n");
    std::thread::sleep(reload * 2);
    assert_eq!(
        flags
            .decide("message.read", &FlagContext::default())
            .expect("declared")
            .stage,
        Stage::Live
    );
    // Fixed: recovers.
    write_atomically(
        &file,
        "[paths.\"message.read\"]\nstage = \"rampdown\"\ntenants = { acme = \"complete\" }\n",
    );
    wait_stage(&flags, "message.read", Stage::RampDown, reload * 2);
    assert_eq!(
        flags
            .decide("message.read", &FlagContext::tenant("acme"))
            .expect("declared")
            .stage,
        Stage::Complete
    );
}

#[test]
fn polling_alone_picks_up_edits() {
    let (_, file) = flags_config(&unique("flags-poll"));
    std::fs::write(&file, "[paths.\"message.read\"]\nstage = \"off\"\n").expect("write");
    let reload = Duration::from_millis(200);
    let src = FileSource::open(
        &file,
        ["message.read".to_string()].into_iter().collect(),
        reload,
        false,
    )
    .expect("load");
    let flags = Flags::new(src, vec![PathSpec::new("message.read")], Stage::Off).expect("flags");
    write_atomically(&file, "[paths.\"message.read\"]\nstage = \"live\"\n");
    // One poll interval, plus scheduling slack.
    wait_stage(&flags, "message.read", Stage::Live, reload * 2);
}

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn migration_flag(key: &str) -> FlagBuilder {
    FlagBuilder::new(key).variations(
        Stage::ALL
            .into_iter()
            .map(|s| FlagValue::Str(s.as_str().into())),
    )
}

fn idx(s: Stage) -> usize {
    Stage::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launchdarkly_flips_and_tenant_targeting_are_seen_while_running() {
    install_crypto();
    let td = TestData::new();
    td.update(migration_flag("message-read").variation_for_all_index(idx(Stage::Off)));
    let flags = Flags::launchdarkly_test_data(&td, ["message.read".to_string()])
        .await
        .expect("ld client");
    let decide = |ctx: FlagContext| flags.decide("message.read", &ctx).expect("declared").stage;
    assert_eq!(decide(FlagContext::default()), Stage::Off);
    let d = flags
        .decide("message.read", &FlagContext::default())
        .expect("declared");
    assert_eq!(d.origin_of_stage, "launchdarkly flag message-read");

    td.update(
        td.flag("message-read")
            .variation_for_all_index(idx(Stage::Shadow)),
    );
    assert_eq!(decide(FlagContext::default()), Stage::Shadow);

    let tenant_kind = Kind::try_from("tenant".to_string()).expect("kind");
    td.update(td.flag("message-read").variation_index_for_key(
        tenant_kind,
        "acme",
        idx(Stage::Live),
    ));
    assert_eq!(decide(FlagContext::tenant("acme")), Stage::Live);
    assert_eq!(
        decide(FlagContext {
            key: "user-7".into(),
            tenant: Some("acme".into())
        }),
        Stage::Live,
        "multi-context: the tenant part is targeted"
    );
    assert_eq!(decide(FlagContext::tenant("globex")), Stage::Shadow);
    assert_eq!(
        decide(FlagContext {
            key: "acme".into(),
            tenant: None
        }),
        Stage::Shadow,
        "a user keyed acme is not the tenant acme"
    );

    // `list` explains where each stage comes from; a flag LaunchDarkly lacks is the default.
    let listed = flags.list(&FlagContext::tenant("acme"));
    assert_eq!(listed[0].stage, Stage::Live);
    assert_eq!(
        listed[0].origin,
        "launchdarkly flag message-read (individual target)"
    );
    let missing = Flags::launchdarkly_test_data(&td, ["conversation.list".to_string()])
        .await
        .expect("ld client");
    let l = missing.list(&FlagContext::default());
    assert_eq!(l[0].stage, Stage::Off);
    assert_eq!(
        l[0].origin,
        "default (flag conversation-list not found in launchdarkly)"
    );
    tokio::task::spawn_blocking(move || {
        flags.close();
        missing.close();
    })
    .await
    .expect("close");
}

/// A local events endpoint: every POST body, decoded as JSON.
async fn events_endpoint() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| {
        let sink = sink.clone();
        async move {
            if let Ok(v) = serde_json::from_str::<Value>(&body) {
                sink.lock().expect("events").push(v);
            }
            axum::http::StatusCode::ACCEPTED
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_ops_reach_launchdarkly_events() {
    install_crypto();
    let (url, events) = events_endpoint().await;
    let td = TestData::new();
    td.update(migration_flag("message-read").variation_for_all_index(idx(Stage::Shadow)));
    // checkRatio 0: LaunchDarkly never samples the consistency check for this flag.
    let mut never: Value = serde_json::to_value(
        migration_flag("message-write")
            .variation_for_all_index(idx(Stage::Live))
            .build(),
    )
    .expect("flag json");
    never["migration"] = serde_json::json!({ "checkRatio": 0 });
    td.use_preconfigured_flag(serde_json::from_value(never).expect("flag"));

    let mut endpoints = launchdarkly_server_sdk::ServiceEndpointsBuilder::new();
    endpoints
        .polling_base_url(&url)
        .streaming_base_url(&url)
        .events_base_url(&url);
    let mut ev: launchdarkly_server_sdk::EventProcessorBuilder =
        launchdarkly_server_sdk::EventProcessorBuilder::new();
    ev.compress_events(false);
    let config = launchdarkly_server_sdk::ConfigBuilder::new("sdk-test")
        .data_source(&td)
        .service_endpoints(&endpoints)
        .event_processor(&ev)
        .build()
        .expect("config");
    let flags = Flags::launchdarkly(
        config,
        vec![
            PathSpec::new("message.read"),
            PathSpec::new("message.write"),
        ],
        Default::default(),
    )
    .await
    .expect("ld client");

    let ctx = FlagContext {
        key: "req-1".into(),
        tenant: Some("acme".into()),
    };
    let mut d = flags.decide("message.read", &ctx).expect("declared");
    assert_eq!(d.stage, Stage::Shadow);
    d.operation(OpKind::Read);
    d.latency(Origin::Old, Duration::from_millis(4));
    d.latency(Origin::New, Duration::from_millis(2));
    assert_eq!(d.consistent(|| false), Some(false), "no checkRatio: always");
    d.finish();

    let mut w = flags.decide("message.write", &ctx).expect("declared");
    assert_eq!(w.stage, Stage::Live);
    w.operation(OpKind::Write);
    w.latency(Origin::New, Duration::from_millis(3));
    w.error(Origin::Old);
    assert_eq!(w.consistent(|| true), None, "checkRatio 0: never sampled");
    w.finish();

    // Closing flushes the outbox.
    tokio::task::spawn_blocking(move || flags.close())
        .await
        .expect("close");
    let ops: Vec<Value> = events
        .lock()
        .expect("events")
        .iter()
        .flat_map(|batch| batch.as_array().cloned().unwrap_or_default())
        .filter(|e| e["kind"] == "migration_op")
        .collect();
    assert_eq!(ops.len(), 2, "{ops:#?}");
    let read = ops
        .iter()
        .find(|e| e["evaluation"]["key"] == "message-read")
        .expect("read op");
    assert_eq!(read["operation"], "read");
    assert_eq!(read["evaluation"]["value"], "shadow");
    let measurements = read["measurements"].to_string();
    assert!(measurements.contains("\"consistent\""), "{measurements}");
    assert!(measurements.contains("\"latency_ms\""), "{measurements}");
    let write = ops
        .iter()
        .find(|e| e["evaluation"]["key"] == "message-write")
        .expect("write op");
    assert_eq!(write["operation"], "write");
    assert!(
        write["measurements"].to_string().contains("\"error\""),
        "{write}"
    );
    assert!(
        !write["measurements"].to_string().contains("\"consistent\""),
        "{write}"
    );
    let context = write["context"].to_string();
    assert!(
        context.contains("\"tenant\"") && context.contains("acme"),
        "{context}"
    );
}
