output "deployment_name" {
  description = "Name of the cutover Deployment."
  value       = kubernetes_deployment_v1.this.metadata[0].name
}

output "namespace" {
  description = "Namespace of the Deployment."
  value       = kubernetes_deployment_v1.this.metadata[0].namespace
}

output "service_account_name" {
  description = "Kubernetes service account the pods run as."
  value       = kubernetes_service_account_v1.this.metadata[0].name
}

output "iam_role_arn" {
  description = "ARN of the IRSA role (annotated on the service account)."
  value       = aws_iam_role.this.arn
}

output "writer_policy_json" {
  description = "The role's only permission policy: statement CutoverWriter (BatchWriteItem, DeleteItem, DescribeTable, PutItem, UpdateItem on the tables)."
  value       = data.aws_iam_policy_document.writer.json
}

output "config_secret_name" {
  description = "Kubernetes Secret holding cutover.toml."
  value       = kubernetes_secret_v1.config.metadata[0].name
}

output "hpa_name" {
  description = "Name of the HorizontalPodAutoscaler (null when autoscaling is off)."
  value       = var.autoscaling_enabled ? kubernetes_horizontal_pod_autoscaler_v2.this[0].metadata[0].name : null
}

output "max_consumers" {
  description = "Effective upper bound of consumers (HPA max_replicas, or replicas without HPA)."
  value       = var.autoscaling_enabled ? local.max_replicas : var.replicas
}
