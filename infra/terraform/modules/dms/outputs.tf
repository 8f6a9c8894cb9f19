output "replication_task_arn" {
  description = "ARN of the full-load-and-cdc replication task (aws dms describe-table-statistics --replication-task-arn ...)."
  value       = aws_dms_replication_task.this.replication_task_arn
}

output "replication_task_id" {
  description = "Identifier of the replication task (CloudWatch dimension ReplicationTaskIdentifier for CDCLatencySource, CDCIncomingChanges, ...)."
  value       = aws_dms_replication_task.this.replication_task_id
}

output "source_endpoint_arn" {
  description = "ARN of the MySQL source endpoint."
  value       = aws_dms_endpoint.mysql_source.endpoint_arn
}

output "target_endpoint_arn" {
  description = "ARN of the Kafka target endpoint."
  value       = aws_dms_endpoint.kafka_target.endpoint_arn
}

output "replication_instance_arn" {
  description = "ARN of the replication instance."
  value       = aws_dms_replication_instance.this.replication_instance_arn
}

output "secrets_access_role_arn" {
  description = "ARN of the role DMS assumes to read the MySQL credentials secret."
  value       = aws_iam_role.secrets_access.arn
}

output "table_mappings" {
  description = "The table-mappings JSON given to the task (selection + object-mapping rules), for review."
  value       = local.table_mappings
}

output "task_settings" {
  description = "The replication task settings JSON given to the task, for review."
  value       = local.task_settings
}
