output "topic_name" {
  description = "Change topic DMS writes and cutover reads."
  value       = module.topic.topic_name
}

output "dlq_topic_name" {
  description = "Dead-letter topic of cutover."
  value       = module.topic.dlq_topic_name
}

output "partitions" {
  description = "Partitions of the change topic (the most consumers that can work at once)."
  value       = module.topic.partitions
}

output "repair_topic_name" {
  description = "The data-access layer's repair topic (access.repair_topic)."
  value       = module.topic.repair_topic_name
}

output "access_policy_arn" {
  description = "CutoverAccess: the policy the service's role needs for the data-access layer."
  value       = module.access.service_policy_arn
}

output "dynamodb_table_names" {
  description = "DynamoDB tables created from tables.json."
  value       = module.tables.table_names
}

output "dynamodb_table_arns" {
  description = "ARNs of the DynamoDB tables."
  value       = module.tables.table_arns
}

output "dynamodb_index_arns" {
  description = "ARNs of the GSIs, per table."
  value       = module.tables.index_arns
}

output "dms_replication_task_arn" {
  description = "DMS task ARN: aws dms describe-table-statistics --replication-task-arn <this> (runbook step 2)."
  value       = module.dms.replication_task_arn
}

output "dms_replication_task_id" {
  description = "DMS task identifier (CloudWatch dimension for CDCLatencySource / CDCIncomingChanges)."
  value       = module.dms.replication_task_id
}

output "dms_source_endpoint_arn" {
  description = "DMS MySQL source endpoint ARN."
  value       = module.dms.source_endpoint_arn
}

output "dms_target_endpoint_arn" {
  description = "DMS Kafka target endpoint ARN."
  value       = module.dms.target_endpoint_arn
}

output "consumer_deployment" {
  description = "Namespace/name of the cutover Deployment (kubectl -n <ns> rollout status deploy/<name>)."
  value       = "${module.consumer.namespace}/${module.consumer.deployment_name}"
}

output "consumer_iam_role_arn" {
  description = "IRSA role of the consumers."
  value       = module.consumer.iam_role_arn
}

output "consumer_writer_policy_json" {
  description = "The consumers' only IAM policy (statement CutoverWriter)."
  value       = module.consumer.writer_policy_json
}
