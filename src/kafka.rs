//! Kafka client settings shared by every consumer and producer (`[kafka]`).
//!
//! Broker-agnostic: only plain librdkafka properties. `kafka.properties` pass through verbatim,
//! after our defaults, so TLS/SASL (`security.protocol`, `sasl.*`, `ssl.*`) and any tuning reach
//! librdkafka unchanged. Property values are never logged (they hold credentials).

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Base settings: brokers plus every pass-through property.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    c.set("client.id", "cutover");
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// A group consumer that stores offsets only when told to (after the write is durable) and
/// commits them in the background and on revocation.
pub fn consumer_config(k: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (key, value) in [
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "1000"),
        ("statistics.interval.ms", "5000"),
        // Bounded prefetch keeps memory flat whatever the topic size.
        ("queued.max.messages.kbytes", "8192"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "1000"),
    ] {
        c.set(key, value);
    }
    let base = client_config(k);
    for (key, value) in base.config_map() {
        c.set(key, value);
    }
    c.set("group.id", group_id);
    // Our delivery rule: an offset is stored only after its record is written or dead-lettered.
    c.set("enable.auto.offset.store", "false");
    c
}

/// A producer for the dead-letter topic: every in-sync replica must have the record before the
/// source offset is stored.
pub fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("acks", "all");
    c.set("message.timeout.ms", "60000");
    c.set("compression.type", "zstd");
    for (key, value) in client_config(k).config_map() {
        if !is_consumer_only(key) {
            c.set(key, value);
        }
    }
    c
}

fn is_consumer_only(key: &str) -> bool {
    key.starts_with("session.")
        || key.starts_with("heartbeat.")
        || key.starts_with("fetch.")
        || key.starts_with("queued.")
        || key.starts_with("auto.offset")
        || key.starts_with("enable.auto")
        || key.starts_with("auto.commit")
        || key.starts_with("max.poll")
        || key.starts_with("partition.assignment")
        || key.starts_with("group.")
        || key == "isolation.level"
}

/// Enqueue every record at once (waiting briefly while librdkafka's queue is full), then wait
/// for every delivery. Returns (partition, offset) per record, in order. `FutureProducer::send`
/// would enqueue only when awaited, one record per round trip.
pub async fn send_all<'a, K, P, I>(
    producer: &rdkafka::producer::FutureProducer,
    records: I,
) -> Result<Vec<(i32, i64)>, rdkafka::error::KafkaError>
where
    I: IntoIterator<Item = rdkafka::producer::FutureRecord<'a, K, P>>,
    K: rdkafka::message::ToBytes + ?Sized + 'a,
    P: rdkafka::message::ToBytes + ?Sized + 'a,
{
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let mut pending = Vec::new();
    for record in records {
        let mut record = record;
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    let mut out = Vec::with_capacity(pending.len());
    for delivery in pending {
        match delivery.await {
            Ok(Ok(d)) => out.push((d.partition, d.offset)),
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(out)
}
