//! Helpers shared by the demo and the benches (not an example of its own).
// Each example uses only some of them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// `--name value` from the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The sum of `group`'s committed offsets on `topic` (0 when nothing is committed yet).
pub fn committed_total(brokers: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    committed(brokers, group, topic, partitions).values().sum()
}

/// `group`'s committed offset per partition of `topic` (partitions without one are absent).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create::<BaseConsumer>()
    else {
        return HashMap::new();
    };
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .map(|t| {
            t.elements()
                .iter()
                .filter_map(|e| Some((e.partition(), e.offset().to_raw()?)))
                .filter(|(_, o)| *o >= 0)
                .collect()
        })
        .unwrap_or_default()
}

/// The sum of every sample of the metric family `name` on `addr`'s `/metrics` (0 if down).
pub fn metric(addr: &str, name: &str) -> f64 {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Create `topic` with `partitions` partitions and its one-partition `<topic>.dlq`.
pub async fn create_topic_and_dlq(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    create_topics(
        brokers,
        &[(topic, partitions), (&format!("{topic}.dlq"), 1)],
    )
    .await
}

/// Create each `(topic, partitions)`.
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await? {
        result.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
    }
    Ok(())
}

/// The peak resident set size (VmHWM) of process `pid` in MB (0 when unreadable).
pub fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
