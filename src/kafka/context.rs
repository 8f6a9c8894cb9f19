//! Consumer contexts shared by the commands that read topics.

use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

/// The context of a consumer that reads to the end of its partitions (`enable.partition.eof`:
/// replay, capture's checkpoint reader). librdkafka also reports the end of a partition as a
/// client error, which is expected here and not worth an ERROR line.
pub struct EofContext;

impl ClientContext for EofContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(reason, "end of partition");
        } else {
            tracing::error!(%error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for EofContext {}
