//! Kafka client settings shared by every consumer and producer (`[kafka]`).
//!
//! Broker-agnostic: only plain librdkafka properties. `kafka.properties` pass through verbatim,
//! after our defaults, so TLS/SASL (`security.protocol`, `sasl.*`, `ssl.*`) and any tuning reach
//! librdkafka unchanged. Property values are never logged (they hold credentials).

pub mod config;
mod context;
pub mod dlq;
mod record;

use rdkafka::ClientConfig;

pub use self::config::KafkaConfig;
pub use context::{client_error, client_log, EofContext};
pub use record::Record;

/// Brokers plus the pass-through properties that `keep` accepts. Always built from the
/// `KafkaConfig` itself: `ClientConfig::config_map` masks secrets such as `sasl.password`, so
/// copying one client config into another would hand librdkafka the mask instead.
fn apply(c: &mut ClientConfig, k: &KafkaConfig, keep: impl Fn(&str) -> bool) {
    c.set("bootstrap.servers", &k.brokers);
    c.set("client.id", "cutover");
    for (key, value) in &k.properties {
        if keep(key) {
            c.set(key, value);
        }
    }
}

/// Base settings: brokers plus every pass-through property.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    apply(&mut c, k, |_| true);
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
    apply(&mut c, k, |_| true);
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
    apply(&mut c, k, |key| !is_consumer_only(key));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_sasl_settings_pass_through_to_every_client() {
        let mut k = KafkaConfig {
            brokers: "b1:9096,b2:9096".into(),
            ..Default::default()
        };
        for (key, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "cutover"),
            ("sasl.password", "secret"),
            ("ssl.ca.location", "/etc/ssl/ca.pem"),
            ("session.timeout.ms", "6000"),
        ] {
            k.properties.insert(key.into(), v.into());
        }
        let consumer = consumer_config(&k, "g");
        let producer = producer_config(&k);
        for key in [
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "sasl.password",
            "ssl.ca.location",
        ] {
            assert_eq!(
                consumer.get(key),
                k.properties.get(key).map(String::as_str),
                "{key}"
            );
            assert_eq!(
                producer.get(key),
                k.properties.get(key).map(String::as_str),
                "{key}"
            );
        }
        assert_eq!(
            consumer.get("session.timeout.ms"),
            Some("6000"),
            "user tuning wins"
        );
        assert_eq!(
            producer.get("session.timeout.ms"),
            None,
            "consumer-only keys stay off the producer"
        );
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("bootstrap.servers"), Some("b1:9096,b2:9096"));
    }
}
