# terraform test (plan only, mocked AWS provider: no credentials, no cloud calls).
# Run by scripts/test; by hand: terraform init -backend=false && terraform test

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  name                     = "chat"
  table_arns               = ["arn:aws:dynamodb:eu-west-1:123456789012:table/chat"]
  service_role_names       = ["chat-api"]
  repair_worker_role_names = ["chat-repair"]
}

run "policies_cover_exactly_the_layer_calls_on_tables" {
  command = plan

  assert {
    condition = toset(one(data.aws_iam_policy_document.service.statement).actions) == toset([
      "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem",
    ])
    error_message = "CutoverAccess grants exactly the layer's calls."
  }
  assert {
    condition     = toset(one(data.aws_iam_policy_document.service.statement).resources) == toset(var.table_arns)
    error_message = "CutoverAccess covers the tables and nothing else (no index ARNs: the layer queries base tables)."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.service) == 1 && aws_iam_role_policy_attachment.service["chat-api"].role == "chat-api"
    error_message = "CutoverAccess is attached to the service's role."
  }


  assert {
    condition = toset(one(data.aws_iam_policy_document.repair_worker.statement).actions) == toset([
      "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
    ])
    error_message = "CutoverRepair grants item reads and guarded writes only."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.repair_worker) == 1
    error_message = "CutoverRepair is attached to the worker's role."
  }
}

run "rejects_index_arns" {
  command = plan
  variables {
    table_arns = ["arn:aws:dynamodb:eu-west-1:123456789012:table/chat/index/*"]
  }
  expect_failures = [var.table_arns]
}
