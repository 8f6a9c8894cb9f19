output "service_policy_arn" {
  description = "ARN of the CutoverAccess policy (attach it to the service's role if service_role_names is empty)."
  value       = aws_iam_policy.service.arn
}

output "repair_worker_policy_arn" {
  description = "ARN of the CutoverRepair policy."
  value       = aws_iam_policy.repair_worker.arn
}

output "service_policy_json" {
  description = "The CutoverAccess policy document."
  value       = data.aws_iam_policy_document.service.json
}

output "repair_worker_policy_json" {
  description = "The CutoverRepair policy document."
  value       = data.aws_iam_policy_document.repair_worker.json
}
