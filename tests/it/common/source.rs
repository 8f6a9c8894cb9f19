//! The source MySQL database of the local stack: a throw-away database per test, and the
//! `cutover` binary's full output (exit code, stdout, stderr) for commands that report with
//! their exit code (`verify`, `status`).

use std::path::PathBuf;

use mysql_async::prelude::Queryable;

pub fn mysql_url() -> String {
    std::env::var("CUTOVER_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://cutover:cutover@127.0.0.1:13306/cutover".into())
}

/// A new, empty database with a unique name; panics loudly when MariaDB is unreachable.
pub async fn create_database(prefix: &str) -> (mysql_async::Pool, String) {
    let name = super::unique(prefix).replace('-', "_");
    let pool = mysql_async::Pool::new(
        mysql_async::Opts::from_url(&mysql_url()).expect("CUTOVER_MYSQL_URL is a mysql:// URL"),
    );
    let mut conn = pool.get_conn().await.unwrap_or_else(|e| {
        panic!("MariaDB is not reachable at CUTOVER_MYSQL_URL: start the local stack with `localstack/up.sh` ({e})")
    });
    conn.query_drop(format!("CREATE DATABASE `{name}`"))
        .await
        .expect("create database");
    (pool, name)
}

/// Run statements in `db`, in order.
pub async fn exec(pool: &mysql_async::Pool, db: &str, statements: &[String]) {
    let mut conn = pool.get_conn().await.expect("MariaDB connection");
    conn.query_drop(format!("USE `{db}`"))
        .await
        .expect("use db");
    for s in statements {
        conn.query_drop(s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// Every row of `db.table` ordered by `order`, read with the binary protocol as `verify` and
/// capture read them, and the table's column model.
pub async fn rows(
    pool: &mysql_async::Pool,
    db: &str,
    table: &str,
    order: &str,
) -> (cutover::mysql::TableSchema, Vec<mysql_async::Row>) {
    let mut conn = pool.get_conn().await.expect("MariaDB connection");
    let schema = cutover::mysql::table_schema(&mut conn, db, table)
        .await
        .expect("table schema");
    let rows = conn
        .exec(
            format!(
                "SELECT {} FROM `{db}`.`{table}` ORDER BY {order}",
                cutover::mysql::select_list(&schema)
            ),
            (),
        )
        .await
        .expect("select rows");
    (schema, rows)
}

pub async fn drop_database(pool: &mysql_async::Pool, db: &str) {
    let mut conn = pool.get_conn().await.expect("MariaDB connection");
    let _ = conn.query_drop(format!("DROP DATABASE `{db}`")).await;
}

/// Run `cutover` to completion and return its exit code, stdout and stderr.
pub fn cutover_output(config: &PathBuf, args: &[&str]) -> (i32, String, String) {
    let out = super::cutover_cmd(config, args)
        .output()
        .expect("run cutover");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cutover <args> --format json`, expecting exit code `code`; the parsed report.
pub fn cutover_json(config: &PathBuf, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (got, stdout, stderr) = cutover_output(config, &all);
    assert_eq!(
        got, code,
        "cutover {all:?} exited {got}, expected {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("cutover {all:?}: not JSON ({e}):\n{stdout}\n{stderr}"))
}
