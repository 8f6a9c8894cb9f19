//! Overhead of the data-access layer (`scripts/bench-access`): per operation, the layer's
//! latency against a direct driver call on the same store, p50 and p99, in `off` (MySQL) and
//! `complete` (DynamoDB); and a shadow read against max(MySQL, DynamoDB) and their sum.
//! Calls alternate between the layer and the direct call so both see the same machine load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use cutover::access::{to_row, Access, NewStore, OldStore, RepairQueue};
use cutover::flags::{self, FlagContext, Flags, Stage};
use cutover::Config;
use mysql_async::prelude::Queryable;

#[path = "chat_service/chat.rs"]
mod chat;
#[path = "support/mod.rs"]
mod support;

use chat::Message;

fn message(id: i64) -> Message {
    Message {
        id,
        conversation_id: 1 + id % 50,
        sender_id: 7,
        body: Some(format!(
            "message body number {id}, about as long as a chat line"
        )),
        created_at: format!(
            "2026-01-02T03:{:02}:{:02}.{:06}Z",
            (id / 60) % 60,
            id % 60,
            id % 1_000_000
        ),
        edited: false,
        meta: None,
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

struct Stats(Vec<Duration>);

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1000.0
    }
}

fn row(name: &str, layer: &Stats, direct: &Stats) {
    let (l50, d50, l99, d99) = (
        layer.pct(0.5),
        direct.pct(0.5),
        layer.pct(0.99),
        direct.pct(0.99),
    );
    println!(
        "| {name} | {d50:.3} | {l50:.3} | {:+.1}% | {d99:.3} | {l99:.3} | {:+.1}% |",
        (l50 / d50 - 1.0) * 100.0,
        (l99 / d99 - 1.0) * 100.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = support::arg("--ops", "2000").parse()?;
    let mysql_base = env(
        "CUTOVER_MYSQL_URL",
        "mysql://cutover:cutover@127.0.0.1:13306/cutover",
    );
    let dynamo = env("CUTOVER_DYNAMODB_ENDPOINT", "http://127.0.0.1:18000");
    let brokers = env("CUTOVER_KAFKA_BROKERS", "127.0.0.1:19092");
    let tag = format!("bench_access_{}", std::process::id());
    let (prefix, _) = mysql_base.rsplit_once('/').expect("url has a database");
    let pool = mysql_async::Pool::new(mysql_base.as_str());
    let mut conn = pool.get_conn().await?;
    conn.query_drop(format!("CREATE DATABASE `{tag}`")).await?;
    conn.query_drop(format!(
        "CREATE TABLE `{tag}`.message (id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL,
         sender_id BIGINT NOT NULL, body TEXT NULL, created_at DATETIME(6) NOT NULL,
         edited BIT(1) NOT NULL DEFAULT b'0', meta JSON NULL)"
    ))
    .await?;
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir)?;
    let flags_file = dir.join("flags.toml");
    std::fs::write(&flags_file, "")?;
    // The chat service's config, renamed; its items carry no derived attribute, as the
    // direct DynamoDB baseline writes them.
    let text = chat::ChatConfig::named(&tag)
        .only(&["message"])
        .table_key("message", "attributes", "{}")
        .set(
            "flags.paths",
            r#"{ "message.read" = {}, "message.write" = {} }"#,
        )
        .merge(&format!(
            r#"
[kafka]
brokers = "{brokers}"
[dynamodb]
endpoint_url = "{dynamo}"
[mysql]
url = "{prefix}/{tag}"
[flags]
file = "{flags}"
reload = "50ms"
"#,
            flags = flags_file.display()
        ))
        .text();
    let cfg = Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mapping = Arc::new(cfg.mapping()?);
    let client = cutover::sink::dynamo::client(&cfg.dynamodb).await;
    cutover::tables::create(&client, &mapping.targets()[&tag], &tag).await?;
    let flags = Flags::from_config(&cfg.flags, &dir).await?;
    let old = OldStore::new(cfg.mysql.pool()?);
    let new = NewStore::connect(&cfg.dynamodb, &cfg.sink, mapping.clone()).await;
    let repair = RepairQueue::new(&cfg.kafka, &cfg.access)?;
    let access = Access::new(
        mapping.clone(),
        flags.clone(),
        old,
        new,
        repair,
        cfg.access.clone(),
    );
    let store = access.store::<Message>(&format!("{tag}.message"))?;
    let ctx = FlagContext::default();
    let set = |stage: Stage| {
        for p in ["message.read", "message.write"] {
            flags::set_stage(&flags_file, p, stage, None).expect("flag file");
        }
    };
    let wait = |stage: Stage| {
        let flags = flags.clone();
        async move {
            while flags
                .decide("message.read", &FlagContext::default())
                .map(|d| d.stage)
                .ok()
                != Some(stage)
                || flags
                    .decide("message.write", &FlagContext::default())
                    .map(|d| d.stage)
                    .ok()
                    != Some(stage)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let view = store.view().clone();
    let get_sql = format!(
        "SELECT id, conversation_id, sender_id, body, created_at, edited, meta FROM `{tag}`.message WHERE id = ?"
    );
    let put_sql = format!(
        "INSERT INTO `{tag}`.message (id, conversation_id, sender_id, body, created_at, edited, meta)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE conversation_id = VALUES(conversation_id),
         sender_id = VALUES(sender_id), body = VALUES(body), created_at = VALUES(created_at),
         edited = VALUES(edited), meta = VALUES(meta)"
    );
    let mut direct = pool.get_conn().await?;
    // A second baseline: what a service without the layer does, a pooled checkout per call.
    let direct_pool = cfg.mysql.pool()?;
    let dynamo_key = |m: &Message| {
        let k = to_row(&m.key()).unwrap();
        let (attrs, _) = mapping
            .key_of(
                &view.source,
                &cutover::mysql::cells_of(&k.into_iter().collect::<Vec<_>>()).unwrap(),
            )
            .unwrap();
        attrs
            .into_iter()
            .map(|a| (a.name.to_string(), a.value))
            .collect::<std::collections::HashMap<_, _>>()
    };

    println!("cutover data-access layer overhead: {n} operations per row, one run, alternating layer/direct calls");
    println!();
    println!("| operation | direct p50 ms | layer p50 ms | p50 overhead | direct p99 ms | layer p99 ms | p99 overhead |");
    println!("|---|---|---|---|---|---|---|");

    // ---- off: MySQL
    set(Stage::Off);
    wait(Stage::Off).await;
    let (mut lp, mut dp, mut lg, mut dg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut pp, mut pg, mut sp) = (Vec::new(), Vec::new(), Vec::new());
    let old_direct = access.old().clone();
    for i in 0..(n + 200) as i64 {
        let m = message(i);
        let t = Instant::now();
        store.put("message.write", &ctx, &m).await?;
        let l = t.elapsed();
        let m = message(500_000 + i); // the direct calls use their own rows
        let t = Instant::now();
        direct
            .exec_drop(
                &put_sql,
                (
                    m.id,
                    m.conversation_id,
                    m.sender_id,
                    m.body.clone(),
                    m.created_at.trim_end_matches('Z').replace('T', " "),
                    0u8,
                    None::<String>,
                ),
            )
            .await?;
        let d = t.elapsed();
        let t = Instant::now();
        let got = store.get("message.read", &ctx, &m.key()).await?;
        let lgd = t.elapsed();
        assert!(got.is_some());
        let t = Instant::now();
        let _r: Option<mysql_async::Row> = direct.exec_first(&get_sql, (m.id,)).await?;
        let dgd = t.elapsed();
        let m = message(900_000 + i); // a fresh row, as the layer's put inserts one
        let t = Instant::now();
        let mut c = direct_pool.get_conn().await?;
        c.exec_drop(
            &put_sql,
            (
                m.id,
                m.conversation_id,
                m.sender_id,
                m.body.clone(),
                m.created_at.trim_end_matches('Z').replace('T', " "),
                0u8,
                None::<String>,
            ),
        )
        .await?;
        drop(c);
        let ppd = t.elapsed();
        // The old store alone (same SQL building and parameters, no flags or stage logic).
        let row_json = to_row(&message(700_000 + i))?;
        let t = Instant::now();
        old_direct.put(&view, &row_json).await?;
        let spd = t.elapsed();
        let t = Instant::now();
        let mut c = direct_pool.get_conn().await?;
        let _r: Option<mysql_async::Row> = c.exec_first(&get_sql, (m.id,)).await?;
        drop(c);
        let pgd = t.elapsed();
        if i >= 200 {
            lp.push(l);
            dp.push(d);
            lg.push(lgd);
            dg.push(dgd);
            pp.push(ppd);
            sp.push(spd);
            pg.push(pgd);
        }
    }
    let (lp, lg, pp) = (Stats(lp), Stats(lg), Stats(pp));
    row(
        "off: put (MySQL upsert) vs a held connection",
        &lp,
        &Stats(dp),
    );
    row("off: put (MySQL upsert) vs a pooled checkout", &lp, &pp);
    row(
        "off: put, the old store alone (no flags, no stage logic) vs a pooled checkout",
        &Stats(sp),
        &pp,
    );
    row(
        "off: get (MySQL by key) vs a held connection",
        &lg,
        &Stats(dg),
    );
    row(
        "off: get (MySQL by key) vs a pooled checkout",
        &lg,
        &Stats(pg),
    );

    // ---- complete: DynamoDB
    for journal in [false, true] {
        let mut acfg = cfg.access.clone();
        acfg.journal_complete = journal;
        let old = OldStore::new(cfg.mysql.pool()?);
        let new = NewStore::connect(&cfg.dynamodb, &cfg.sink, mapping.clone()).await;
        let repair = RepairQueue::new(&cfg.kafka, &acfg)?;
        let a = Access::new(mapping.clone(), flags.clone(), old, new, repair, acfg);
        let st = a.store::<Message>(&format!("{tag}.message"))?;
        set(Stage::Complete);
        wait(Stage::Complete).await;
        let (mut lp, mut dp, mut lg, mut dg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..(n + 200) as i64 {
            let m = message(100_000 + i);
            let t = Instant::now();
            st.put("message.write", &ctx, &m).await?;
            let l = t.elapsed();
            let lm = m.clone();
            // The direct calls use their own rows, so the layer's items stay whole.
            let m = message(500_000 + i);
            let mut item = dynamo_key(&m);
            item.insert("text".into(), AttributeValue::S(m.body.clone().unwrap()));
            item.insert("id".into(), AttributeValue::N(m.id.to_string()));
            item.insert(
                "sender_id".into(),
                AttributeValue::N(m.sender_id.to_string()),
            );
            let t = Instant::now();
            client
                .put_item()
                .table_name(&tag)
                .set_item(Some(item))
                .send()
                .await?;
            let d = t.elapsed();
            let t = Instant::now();
            let got = st.get("message.read", &ctx, &lm.key()).await?;
            let lgd = t.elapsed();
            assert!(got.is_some());
            let t = Instant::now();
            // The same item the layer just read: same size on the wire.
            client
                .get_item()
                .table_name(&tag)
                .set_key(Some(dynamo_key(&lm)))
                .consistent_read(true)
                .send()
                .await?;
            let dgd = t.elapsed();
            if i >= 200 {
                lp.push(l);
                dp.push(d);
                lg.push(lgd);
                dg.push(dgd);
            }
        }
        let j = if journal { "journal on" } else { "journal off" };
        row(
            &format!("complete: put (DynamoDB, {j})"),
            &Stats(lp),
            &Stats(dp),
        );
        if !journal {
            row("complete: get (DynamoDB by key)", &Stats(lg), &Stats(dg));
        }
    }

    // ---- shadow reads: both stores concurrently vs each alone
    set(Stage::Shadow);
    wait(Stage::Shadow).await;
    let (mut sh, mut mx, mut sm) = (Vec::new(), Vec::new(), Vec::new());
    let (oldst, newst) = (access.old().clone(), access.new_store().clone());
    for i in 0..(n + 200) as i64 {
        let m = message(i % n as i64);
        let k = to_row(&m.key())?;
        let t = Instant::now();
        oldst.get(&view, &k).await?;
        let o = t.elapsed();
        let t = Instant::now();
        newst.get(&view, &k).await?;
        let nw = t.elapsed();
        let t = Instant::now();
        store.get("message.read", &ctx, &m.key()).await?;
        let s = t.elapsed();
        if i >= 200 {
            sh.push(s);
            mx.push(o.max(nw));
            sm.push(o + nw);
        }
    }
    let (sh, mx, sm) = (Stats(sh), Stats(mx), Stats(sm));
    println!();
    println!("| shadow read | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| max(MySQL get, DynamoDB get) | {:.3} | {:.3} |",
        mx.pct(0.5),
        mx.pct(0.99)
    );
    println!(
        "| shadow get through the layer (both, concurrently, compared) | {:.3} | {:.3} |",
        sh.pct(0.5),
        sh.pct(0.99)
    );
    println!(
        "| MySQL get + DynamoDB get (serial sum) | {:.3} | {:.3} |",
        sm.pct(0.5),
        sm.pct(0.99)
    );
    println!();
    println!(
        "mismatches reported during the run: {}",
        access.mismatches()
    );

    conn.query_drop(format!("DROP DATABASE `{tag}`")).await?;
    let _ = client.delete_table().table_name(&tag).send().await;
    Ok(())
}
