//! A Kafka record as the pipeline handles it: detached from the consumer that read it.

/// A Kafka record, detached from the consumer.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Broker or create time, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    pub fn from_message<M: rdkafka::Message>(m: &M) -> Record {
        use rdkafka::message::Headers;
        Record {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis(),
        }
    }
}
