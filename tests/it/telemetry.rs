//! Telemetry per command (issue 13.2): `capture` and `run` started with one config on one host
//! serve `/metrics` side by side with `--listen`; without it, the second names the key and the
//! flag that fix the clash.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{self, source, Cutover};

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let status = body.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body))
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_and_run_serve_metrics_side_by_side_with_listen() {
    common::require_stack();
    let (pool, db) = source::create_database("listen").await;
    source::exec(
        &pool,
        &db,
        &["CREATE TABLE note (id INT PRIMARY KEY, body VARCHAR(40))".into()],
    )
    .await;
    source::exec(
        &pool,
        &db,
        &["INSERT INTO note VALUES (1,'a'),(2,'b')".into()],
    )
    .await;
    let topic = common::unique("listen");
    common::create_topic(&topic, 2).await;
    common::create_topic(&format!("{topic}.dlq"), 1).await;
    let table = common::unique("listen");
    // One config for both commands, with one telemetry.listen: the clash of issue 13.
    let shared = free_addr();
    let config = common::write_config(
        &topic,
        &format!(
            r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{topic}-g"
dlq_topic = "{topic}.dlq"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
[mysql]
url = "{url}"
[capture]
name = "{topic}"
topic = "{topic}"
checkpoint_topic = "{topic}.cp"
[telemetry]
listen = "{shared}"
[[table]]
source = "{db}.note"
target = "{table}"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "NOTE#{{id}}" }}
"#,
            brokers = common::brokers(),
            url = source::mysql_url(),
        ),
    );
    common::cutover_ok(&config, &["tables", "create"]);

    let (a, b) = (free_addr(), free_addr());
    let capture = Cutover::start(&config, &["capture", "--listen", &a]);
    let run = Cutover::start(&config, &["--listen", &b, "run"]);
    for (what, addr) in [("capture", a.clone()), ("run", b.clone())] {
        common::wait_until(
            &format!("{what} to serve /metrics on {addr}"),
            Duration::from_secs(60),
            move || {
                let addr = addr.clone();
                async move { get(&addr, "/metrics").is_some_and(|(s, _)| s == 200) }
            },
        )
        .await;
    }
    // run's metrics come from run: the snapshot's records reach it through the topic.
    let addr = b.clone();
    common::wait_until("run to count records", Duration::from_secs(90), move || {
        let addr = addr.clone();
        async move {
            get(&addr, "/metrics")
                .is_some_and(|(_, body)| body.contains("cutover_records_in_total"))
        }
    })
    .await;
    assert!(
        get(&shared, "/metrics").is_none(),
        "nothing listens on the config's address"
    );
    // The environment variable overrides the file as well.
    let c = free_addr();
    let mut env_run = common::cutover_cmd(&config, &["run"]);
    env_run
        .env("CUTOVER_TELEMETRY__LISTEN", &c)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut env_run = env_run.spawn().unwrap();
    let addr = c.clone();
    common::wait_until(
        "CUTOVER_TELEMETRY__LISTEN",
        Duration::from_secs(60),
        move || {
            let addr = addr.clone();
            async move { get(&addr, "/healthz").is_some_and(|(s, _)| s == 200) }
        },
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-INT", &env_run.id().to_string()])
        .status();
    let _ = env_run.wait();

    // Without --listen, a second run on a taken address says what to change.
    let out = common::cutover_cmd(&config, &["run", "--listen", &b])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&b) && err.contains("--listen") && err.contains("telemetry.listen"),
        "{err}"
    );
    assert!(capture.stop() && run.stop(), "both exit cleanly");
    source::drop_database(&pool, &db).await;
}
