//! A small chat service whose every read and write path goes through cutover's data-access
//! layer (`cutover::access`), on the local stack (MariaDB + DynamoDB Local + the broker).
//!
//! ```text
//! localstack/up.sh && source .localstack/env
//! cargo run --example chat_service -- --config examples/chat_service/cutover.toml --traffic 50
//! # in another terminal, move one path at a time, or per tenant:
//! cargo run -- -c examples/chat_service/cutover.toml flags set message.write dualwrite
//! cargo run -- -c examples/chat_service/cutover.toml flags set message.list shadow --tenant acme
//! cargo run -- -c examples/chat_service/cutover.toml flags list
//! ```
//! HTTP (127.0.0.1:8088 by default; the `X-Tenant` header picks the flag context):
//! - `GET  /conversations/{id}`             path `conversation.read`
//! - `PUT  /conversations/{id}`             path `conversation.write` (JSON body: title)
//! - `GET  /conversations/{id}/messages`    path `message.list`
//! - `POST /conversations/{id}/messages`    path `message.write` (JSON body: sender_id, body)
//!
//! With `--traffic N` it also generates N requests per second itself and prints, every
//! second, each path's stage, requests, errors and shadow mismatches, so a flag flip shows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use cutover::access::{repair, Access, Store};
use cutover::flags::FlagContext;
use cutover::Config;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[path = "chat_service/chat.rs"]
mod chat;
#[path = "support/mod.rs"]
mod support;

use chat::{Conversation, Message};

#[derive(Default)]
struct PathStats {
    ok: u64,
    err: u64,
}

#[derive(Clone)]
struct App {
    access: Access,
    conversations: Store<Conversation>,
    messages: Store<Message>,
    next_id: Arc<AtomicI64>,
    stats: Arc<Mutex<BTreeMap<&'static str, PathStats>>>,
}

fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

impl App {
    fn count<T, E>(&self, path: &'static str, r: &Result<T, E>) {
        let mut s = self.stats.lock().unwrap();
        let e = s.entry(path).or_default();
        if r.is_ok() {
            e.ok += 1
        } else {
            e.err += 1
        }
    }

    async fn post_message(
        &self,
        ctx: &FlagContext,
        conversation_id: i64,
        sender_id: i64,
        body: String,
    ) -> Result<Message, String> {
        let m = Message {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            conversation_id,
            sender_id,
            body: Some(body),
            created_at: now_iso(),
            edited: false,
            meta: None,
        };
        let r = self.messages.put("message.write", ctx, &m).await;
        self.count("message.write", &r);
        r.map(|_| m).map_err(|e| e.to_string())
    }

    async fn list(&self, ctx: &FlagContext, conversation_id: i64) -> Result<Vec<Message>, String> {
        let r = self
            .messages
            .query(
                "message.list",
                ctx,
                &serde_json::json!({"conversation_id": conversation_id}),
                50,
            )
            .await;
        self.count("message.list", &r);
        r.map_err(|e| e.to_string())
    }
}

fn ctx(headers: &HeaderMap) -> FlagContext {
    match headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
        Some(t) => FlagContext::tenant(t),
        None => FlagContext::default(),
    }
}

type Reply = (StatusCode, String);

fn reply<T: Serialize>(r: Result<T, String>) -> Reply {
    match r {
        Ok(v) => (
            StatusCode::OK,
            serde_json::to_string(&v).unwrap_or_default(),
        ),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// 200 while the repair worker runs; 503 with its error once it stopped.
async fn health(State(app): State<App>) -> Reply {
    match app.access.repair_worker_failure() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("repair worker stopped: {e}\n"),
        ),
    }
}

async fn get_conversation(State(app): State<App>, h: HeaderMap, Path(id): Path<i64>) -> Reply {
    let r = app
        .conversations
        .get(
            "conversation.read",
            &ctx(&h),
            &serde_json::json!({"id": id}),
        )
        .await;
    app.count("conversation.read", &r);
    match r {
        Ok(None) => (StatusCode::NOT_FOUND, String::new()),
        other => reply(other.map_err(|e| e.to_string())),
    }
}

async fn put_conversation(
    State(app): State<App>,
    h: HeaderMap,
    Path(id): Path<i64>,
    body: String,
) -> Reply {
    #[derive(Deserialize)]
    struct In {
        title: String,
    }
    let Ok(input) = serde_json::from_str::<In>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected {\"title\": ...}".into());
    };
    let c = Conversation {
        id,
        title: input.title,
        created_at: now_iso(),
    };
    let r = app
        .conversations
        .put("conversation.write", &ctx(&h), &c)
        .await;
    app.count("conversation.write", &r);
    reply(r.map(|_| c).map_err(|e| e.to_string()))
}

async fn list_messages(State(app): State<App>, h: HeaderMap, Path(id): Path<i64>) -> Reply {
    reply(app.list(&ctx(&h), id).await)
}

async fn post_message(
    State(app): State<App>,
    h: HeaderMap,
    Path(id): Path<i64>,
    body: String,
) -> Reply {
    #[derive(Deserialize)]
    struct In {
        sender_id: i64,
        body: String,
    }
    let Ok(input) = serde_json::from_str::<In>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"sender_id\": .., \"body\": ..}".into(),
        );
    };
    reply(
        app.post_message(&ctx(&h), id, input.sender_id, input.body)
            .await,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter("warn,cutover=info")
        .init();
    let config = PathBuf::from(support::arg(
        "--config",
        "examples/chat_service/cutover.toml",
    ));
    let listen = support::arg("--listen", "127.0.0.1:8088");
    let traffic: u64 = support::arg("--traffic", "0").parse()?;
    let cfg = Config::load(&config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let dir = config.parent().map(|p| p.to_path_buf()).unwrap_or_default();

    // The schema, the DynamoDB table and the flag file, if this is the first start.
    let url = cfg.mysql.url.clone();
    let (server, db) = url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("mysql.url needs a database"))?;
    let admin = mysql_async::Pool::new(format!("{server}/mysql").as_str());
    let mut conn = admin.get_conn().await?;
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .await?;
    conn.query_drop(format!("USE `{db}`")).await?;
    for ddl in chat::DDL {
        conn.query_drop(ddl).await?;
    }
    let max_id: Option<Option<i64>> = conn.query_first("SELECT MAX(id) FROM message").await?;
    drop(conn);
    admin.disconnect().await?;
    let mapping = cfg.mapping()?;
    let client = cutover::sink::dynamo::client(&cfg.dynamodb).await;
    for (name, spec) in mapping.targets() {
        cutover::tables::create(&client, spec, name).await?;
    }
    let flags_file = cfg.flags.file_path(&dir);
    if !flags_file.exists() {
        std::fs::write(
            &flags_file,
            "# stages per path: cutover flags set <path> <stage>\n",
        )?;
    }

    let access = Access::connect(&cfg, &dir).await?;
    let app = App {
        conversations: access.store(&format!("{db}.conversation"))?,
        messages: access.store(&format!("{db}.message"))?,
        access: access.clone(),
        next_id: Arc::new(AtomicI64::new(max_id.flatten().unwrap_or(0) + 1)),
        stats: Arc::default(),
    };
    let cancel = CancellationToken::new();
    // Failed second writes are repaired in the background. A worker that stops is loud: on
    // stderr now, on every status line below, and on GET /health (503).
    let worker = tokio::spawn(repair::run_worker(
        access.clone(),
        cfg.kafka.clone(),
        cfg.access.clone(),
        cancel.clone(),
    ));
    tokio::spawn(async move {
        if let Ok(Err(e)) = worker.await {
            eprintln!("REPAIR WORKER STOPPED: {e}\n  repairs and the complete-stage journal wait until this is fixed and the service restarted");
        }
    });

    if traffic > 0 {
        let gen = app.clone();
        tokio::spawn(async move {
            let app = gen;
            let ctx = FlagContext::default();
            for id in 1..=20 {
                let c = Conversation {
                    id,
                    title: format!("conversation {id}"),
                    created_at: now_iso(),
                };
                let r = app.conversations.put("conversation.write", &ctx, &c).await;
                app.count("conversation.write", &r);
            }
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / traffic));
            let mut n = 0i64;
            loop {
                tick.tick().await;
                let conv = 1 + n % 20;
                let tenant = FlagContext::tenant(if n % 2 == 0 { "acme" } else { "globex" });
                let _ = app
                    .post_message(&tenant, conv, 7, format!("hello #{n}"))
                    .await;
                let _ = app.list(&tenant, conv).await;
                n += 1;
            }
        });
        let app = app.clone();
        tokio::spawn(async move {
            let mut last_mismatch = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let stages: Vec<String> = app
                    .access
                    .flags()
                    .list(&FlagContext::default())
                    .into_iter()
                    .map(|p| format!("{}={}", p.path, p.stage))
                    .collect();
                let stats = std::mem::take(&mut *app.stats.lock().unwrap());
                let counts: Vec<String> = stats
                    .iter()
                    .map(|(p, s)| format!("{p} {}ok/{}err", s.ok, s.err))
                    .collect();
                let m = app.access.mismatches();
                let worker = app
                    .access
                    .repair_worker_failure()
                    .map(|e| format!(" | REPAIR WORKER STOPPED: {e}"))
                    .unwrap_or_default();
                println!(
                    "[{}] {} | {} | mismatches +{}{worker}",
                    chrono::Utc::now().format("%H:%M:%S"),
                    stages.join(" "),
                    counts.join(", "),
                    m - last_mismatch
                );
                last_mismatch = m;
            }
        });
    }

    let router = Router::new()
        .route(
            "/conversations/{id}",
            get(get_conversation).put(put_conversation),
        )
        .route(
            "/conversations/{id}/messages",
            get(list_messages).post(post_message),
        )
        .route("/health", get(health))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "chat service on http://{listen} (config {}); Ctrl-C to stop",
        config.display()
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        })
        .await?;
    Ok(())
}
