output "topic_name" {
  description = "Name of the change topic (DMS KafkaSettings.Topic, cutover kafka.topics)."
  value       = kafka_topic.changes.name
}

output "dlq_topic_name" {
  description = "Name of the dead-letter topic (cutover kafka.dlq_topic)."
  value       = kafka_topic.dlq.name
}

output "partitions" {
  description = "Partition count of the change topic: the maximum useful number of cutover consumers (pass it to modules/consumer)."
  value       = kafka_topic.changes.partitions
}

output "dlq_partitions" {
  description = "Partition count of the dead-letter topic."
  value       = kafka_topic.dlq.partitions
}

output "topic_config" {
  description = "Effective topic-level config of the change topic, for review."
  value       = kafka_topic.changes.config
}

output "repair_topic_name" {
  description = "Name of the data-access layer's repair topic (access.repair_topic), or null."
  value       = try(kafka_topic.repair[0].name, null)
}
