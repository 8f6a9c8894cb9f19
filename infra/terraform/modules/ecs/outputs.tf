output "service_name" {
  description = "Name of the ECS service."
  value       = var.autoscaling_enabled ? aws_ecs_service.scaled[0].name : aws_ecs_service.fixed[0].name
}

output "task_definition_arn" {
  description = "ARN of the task definition revision."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_arn" {
  description = "ARN of the task role (CutoverWriter)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the execution role (config secret, logs, image pull)."
  value       = aws_iam_role.execution.arn
}

output "writer_policy_json" {
  description = "The task role's only permission policy: statement CutoverWriter."
  value       = data.aws_iam_policy_document.writer.json
}

output "log_group_name" {
  description = "CloudWatch log group of both containers (JSON logs of cutover)."
  value       = aws_cloudwatch_log_group.this.name
}

output "max_consumers" {
  description = "Effective upper bound of consumers (autoscaling max_count, or desired_count)."
  value       = var.autoscaling_enabled ? local.max_count : var.desired_count
}

output "container_definitions" {
  description = "The task's container definitions (JSON), for review."
  value       = aws_ecs_task_definition.this.container_definitions
}
