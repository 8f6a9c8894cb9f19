# IAM for the data-access layer (cutover::access) and its repair worker: the service's own
# DynamoDB calls during the cutover, nothing else.
#
# The layer runs inside your service (EKS, ECS, Lambda, EC2: its role is yours), so this module
# creates customer managed policies and attaches them to the roles you name:
#
# - CutoverAccess (the service, every stage): GetItem and Query with consistent reads (shadow and
#   live reads, compared reads), and the guarded PutItem/UpdateItem/DeleteItem of dual writes.
#   Query is on the base table only (the layer never queries an index), so no /index/* ARN.
# - CutoverRepair (the repair worker, in the service or as its own job): GetItem to copy an
#   item's current state into MySQL, PutItem/UpdateItem/DeleteItem to copy a row into DynamoDB.
#
# Kafka: the layer produces repair entries to access.repair_topic and the worker consumes them
# as access.repair_group; those are Kafka ACLs (modules/topic: access_principal and
# repair_worker_principal), not IAM. MySQL and the flag store (LaunchDarkly or a file) need no
# AWS permission either.

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Validated (terraform validate + test) on 5.100.0; see infra/README.md, "Provider notes".
      version = ">= 5.100.0, < 7.0.0"
    }
  }
}

data "aws_iam_policy_document" "service" {
  statement {
    sid    = "CutoverAccess"
    effect = "Allow"
    actions = [
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ]
    resources = var.table_arns
  }
}

data "aws_iam_policy_document" "repair_worker" {
  statement {
    sid    = "CutoverRepair"
    effect = "Allow"
    actions = [
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
    ]
    resources = var.table_arns
  }
}

resource "aws_iam_policy" "service" {
  name        = "${var.name}-cutover-access"
  path        = var.policy_path
  description = "cutover data-access layer: reads and guarded writes on the migrated DynamoDB tables."
  policy      = data.aws_iam_policy_document.service.json
  tags        = var.tags
}

resource "aws_iam_policy" "repair_worker" {
  name        = "${var.name}-cutover-repair"
  path        = var.policy_path
  description = "cutover repair worker: copies rows between MySQL and the migrated DynamoDB tables."
  policy      = data.aws_iam_policy_document.repair_worker.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "service" {
  for_each   = toset(var.service_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.service.arn
}

resource "aws_iam_role_policy_attachment" "repair_worker" {
  for_each   = toset(var.repair_worker_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.repair_worker.arn
}
