# terraform test (plan only, mocked AWS provider: no credentials, no cloud calls).
# Run by scripts/test; by hand: terraform init -backend=false && terraform test

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  name               = "chat"
  cluster_arn        = "arn:aws:ecs:eu-west-1:123456789012:cluster/platform"
  image              = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cutover:1.0.0"
  config_secret_arn  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-cutover-toml-AbCdEf"
  table_arns         = ["arn:aws:dynamodb:eu-west-1:123456789012:table/chat"]
  subnet_ids         = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
  security_group_ids = ["sg-0dddddddddddddddd"]
  partitions         = 48
}

run "defaults_container_security_and_least_privilege" {
  command = plan

  assert {
    condition = alltrue([
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : (
        c.user == "65532:65532" && c.readonlyRootFilesystem && c.image == var.image && c.essential &&
        c.command == ["--log-format", "json", "run"] && c.stopTimeout == 45 &&
        c.linuxParameters.capabilities.drop == ["ALL"]
      ) if c.name == "cutover"
    ])
    error_message = "cutover runs the given image as uid 65532, read-only, no capabilities, `--log-format json run`, 45 s stop timeout."
  }
  assert {
    condition = alltrue([
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : (
        c.dependsOn == [{ containerName = "config", condition = "SUCCESS" }] &&
        c.mountPoints == [{ sourceVolume = "config", containerPath = "/etc/cutover", readOnly = true }] &&
        contains(c.environment, { name = "CUTOVER_CONFIG", value = "/etc/cutover/cutover.toml" }) &&
        !can(c.secrets)
      ) if c.name == "cutover"
    ])
    error_message = "cutover reads its config from the read-only volume the init container wrote, and gets no secret in its environment."
  }
  assert {
    condition = alltrue([
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : (
        !c.essential && c.secrets == [{ name = "CUTOVER_TOML", valueFrom = var.config_secret_arn }]
      ) if c.name == "config"
    ])
    error_message = "The init container alone receives the config secret."
  }
  assert {
    condition     = aws_ecs_task_definition.this.requires_compatibilities == toset(["FARGATE"]) && aws_ecs_task_definition.this.network_mode == "awsvpc"
    error_message = "Fargate, awsvpc."
  }
  assert {
    condition     = length(aws_ecs_service.fixed) == 1 && aws_ecs_service.fixed[0].desired_count == 3 && length(aws_ecs_service.scaled) == 0
    error_message = "Without autoscaling, Terraform owns desired_count."
  }
  assert {
    condition     = aws_ecs_service.fixed[0].network_configuration[0].assign_public_ip == false
    error_message = "Tasks get no public IP."
  }


  assert {
    condition = toset(one(data.aws_iam_policy_document.writer.statement).actions) == toset([
      "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:UpdateItem",
    ])
    error_message = "CutoverWriter grants exactly the writer's five actions."
  }
  assert {
    condition     = alltrue([for r in one(data.aws_iam_policy_document.writer.statement).resources : !strcontains(r, "/index/")])
    error_message = "The writer policy has no index ARNs."
  }
  assert {
    condition = anytrue([
      for c in one(data.aws_iam_policy_document.ecs_tasks_assume.statement).condition :
      c.variable == "aws:SourceAccount" && c.values == tolist(["123456789012"])
    ])
    error_message = "The ECS task trust policy requires aws:SourceAccount."
  }
  assert {
    condition     = toset([for s in data.aws_iam_policy_document.execution.statement : s.sid]) == toset(["ReadConfigSecret", "WriteLogs"])
    error_message = "The execution role reads the config secret and writes logs, nothing else (public images)."
  }
}

run "private_ecr_and_cmk_and_boundary" {
  command = plan

  variables {
    ecr_repository_arns       = ["arn:aws:ecr:eu-west-1:123456789012:repository/cutover"]
    config_secret_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    permissions_boundary_arn  = "arn:aws:iam::123456789012:policy/platform-boundary"
  }

  assert {
    condition     = toset([for s in data.aws_iam_policy_document.execution.statement : s.sid]) == toset(["ReadConfigSecret", "DecryptConfigSecret", "WriteLogs", "EcrToken", "EcrPull"])
    error_message = "Private images and a CMK add exactly the pull and decrypt statements."
  }
  assert {
    condition     = aws_iam_role.task.permissions_boundary == var.permissions_boundary_arn && aws_iam_role.execution.permissions_boundary == var.permissions_boundary_arn
    error_message = "The boundary is set on both roles."
  }
}

run "autoscaling_on_lag_per_task_up_to_partitions" {
  command = plan

  variables {
    autoscaling_enabled = true
    msk_cluster_name    = "chat-msk"
    consumer_group_id   = "cutover-chat"
    topic_name          = "dms.chat"
  }

  assert {
    condition     = length(aws_ecs_service.scaled) == 1 && length(aws_ecs_service.fixed) == 0
    error_message = "With autoscaling, the scaled variant of the service exists alone."
  }
  assert {
    condition     = aws_appautoscaling_target.this[0].max_capacity == 48 && aws_appautoscaling_target.this[0].min_capacity == 2
    error_message = "Autoscaling is bounded by the partition count."
  }
  assert {
    condition     = aws_appautoscaling_target.this[0].resource_id == "service/platform/chat-cutover"
    error_message = "The scalable target is the service in the given cluster."
  }
  assert {
    condition = anytrue([
      for m in aws_appautoscaling_policy.lag[0].target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics :
      try(m.metric_stat[0].metric[0].metric_name == "SumOffsetLag", false)
    ])
    error_message = "The policy tracks MSK's SumOffsetLag."
  }
}

# Every invalid input is reported at once, each on its own variable.
run "rejects_invalid_inputs" {
  command = plan
  variables {
    autoscaling_enabled  = true
    stop_timeout_seconds = 30
    partitions           = 2
    desired_count        = 3
    cpu                  = 300
  }
  expect_failures = [
    var.msk_cluster_name,
    var.consumer_group_id,
    var.topic_name,
    var.stop_timeout_seconds,
    var.desired_count,
    var.cpu,
  ]
}
