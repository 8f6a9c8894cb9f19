//! Consumer contexts shared by the commands that read topics, and the one place librdkafka's
//! own events become log lines ([`client_error`], [`client_log`]).

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

/// The context of a consumer that reads to the end of its partitions (`enable.partition.eof`:
/// replay, capture's checkpoint reader, status's probe). librdkafka also reports the end of a
/// partition as a client error, which is expected here and not worth an ERROR line.
pub struct EofContext;

impl ClientContext for EofContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        client_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(error, reason);
    }
}

impl ConsumerContext for EofContext {}

/// What librdkafka reports through its error callback is mostly informational: the end of a
/// partition, a broker connection that dropped and will be re-established. Those are logged at
/// debug / info; only what needs a person (authentication, every broker down, a fatal client
/// state) is a WARN or ERROR line. A failing call returns its own error anyway.
pub fn client_error(error: KafkaError, reason: &str) {
    match error_level(&error) {
        tracing::Level::DEBUG => tracing::debug!(%error, reason, "Kafka client event"),
        tracing::Level::INFO => tracing::info!(%error, reason, "Kafka client event"),
        tracing::Level::WARN => tracing::warn!(%error, reason, "Kafka client error"),
        _ => tracing::error!(%error, reason, "Kafka client error"),
    }
}

/// librdkafka's log lines: its own level, except that connection churn it recovers from
/// (`FAIL`, `REQTMOUT` facilities) is info, not error.
pub fn client_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    let transient = matches!(fac, "FAIL" | "REQTMOUT" | "DISCONNECT" | "CONNECT");
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
            if !transient =>
        {
            tracing::error!(facility = fac, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Warning if !transient => {
            tracing::warn!(facility = fac, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
        _ => tracing::info!(facility = fac, "librdkafka: {message}"),
    }
}

fn error_level(error: &KafkaError) -> tracing::Level {
    use RDKafkaErrorCode as C;
    let code = match error {
        KafkaError::PartitionEOF(_) => return tracing::Level::DEBUG,
        KafkaError::Global(c) => *c,
        other => match other.rdkafka_error_code() {
            Some(c) => c,
            None => return tracing::Level::WARN,
        },
    };
    match code {
        C::PartitionEOF => tracing::Level::DEBUG,
        C::BrokerTransportFailure
        | C::Resolve
        | C::RequestTimedOut
        | C::OperationTimedOut
        | C::NetworkException
        | C::BrokerNotAvailable
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::NotCoordinator
        | C::CoordinatorNotAvailable
        | C::UnknownTopicOrPartition => tracing::Level::INFO,
        C::Fatal
        | C::Authentication
        | C::SaslAuthenticationFailed
        | C::TopicAuthorizationFailed => tracing::Level::ERROR,
        _ => tracing::Level::WARN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn informational_events_are_not_errors() {
        use RDKafkaErrorCode as C;
        assert_eq!(
            error_level(&KafkaError::Global(C::PartitionEOF)),
            tracing::Level::DEBUG
        );
        assert_eq!(
            error_level(&KafkaError::PartitionEOF(3)),
            tracing::Level::DEBUG
        );
        for c in [C::BrokerTransportFailure, C::Resolve, C::RequestTimedOut] {
            assert_eq!(
                error_level(&KafkaError::Global(c)),
                tracing::Level::INFO,
                "{c:?}"
            );
        }
        assert_eq!(
            error_level(&KafkaError::Global(C::AllBrokersDown)),
            tracing::Level::WARN
        );
        assert_eq!(
            error_level(&KafkaError::Global(C::Authentication)),
            tracing::Level::ERROR
        );
    }
}
