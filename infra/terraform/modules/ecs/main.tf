# `cutover run` on ECS Fargate: one service whose tasks form one Kafka consumer group. The same
# image and arguments as modules/consumer (Kubernetes); pick one of the two.
#
# - Configuration: the whole rendered cutover.toml, SASL password included, is one Secrets
#   Manager secret. The cutover image has no shell (binary + CA certificates only), so a
#   non-essential init container ("config", a small image with sh, var.config_init_image) gets
#   the secret as an env variable from ECS, writes it to a task-scoped volume as
#   /etc/cutover/cutover.toml (owner 65532, mode 0400) and exits; cutover starts once it
#   succeeded and mounts that volume read-only. The password never appears in cutover's own
#   environment or in the task definition.
# - Telemetry: cutover.toml must say [telemetry] listen = "0.0.0.0:9464" (port "metrics").
#   Docker labels let the CloudWatch agent's ECS service discovery (or an ADOT collector) scrape
#   /metrics. No container health check: the image has no curl/wget to run one (infra/README.md).
# - Shutdown: ECS sends SIGTERM, then SIGKILL after stopTimeout. cutover drains in-flight batches
#   and commits within run.drain_timeout (30 s): stop_timeout_seconds (45) must be longer.
# - Scaling: optional Application Auto Scaling target tracking on MSK's consumer-lag metric
#   (SumOffsetLag of the group on the topic) per running task, between min_count and max_count
#   <= partitions.
# - AWS: the task role may only write the mapped tables (CutoverWriter, as on Kubernetes); the
#   execution role may only read the config secret, write the log group and pull the image.

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

data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region       = data.aws_region.current.name
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  cluster_name = element(split("/", var.cluster_arn), length(split("/", var.cluster_arn)) - 1)

  config_dir  = "/etc/cutover"
  config_path = "${local.config_dir}/cutover.toml"

  # Never more consumers than partitions.
  max_count = coalesce(var.max_count, var.partitions)

  log_config = {
    logDriver = "awslogs"
    options = {
      "awslogs-group"         = aws_cloudwatch_log_group.this.name
      "awslogs-region"        = local.region
      "awslogs-stream-prefix" = "cutover"
    }
  }

  containers = [
    {
      # Writes the config secret to the shared volume, then exits (0 = cutover may start).
      name                   = "config"
      image                  = var.config_init_image
      essential              = false
      readonlyRootFilesystem = true
      entryPoint             = ["sh", "-c"]
      command = [join(" && ", [
        "umask 0377",
        "printf '%s' \"$CUTOVER_TOML\" > ${local.config_path}.tmp",
        "chown 65532:65532 ${local.config_path}.tmp",
        "mv ${local.config_path}.tmp ${local.config_path}",
      ])]
      secrets          = [{ name = "CUTOVER_TOML", valueFrom = var.config_secret_arn }]
      mountPoints      = [{ sourceVolume = "config", containerPath = local.config_dir, readOnly = false }]
      logConfiguration = local.log_config
    },
    {
      name                   = "cutover"
      image                  = var.image
      essential              = true
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      linuxParameters        = { capabilities = { drop = ["ALL"] } }
      entryPoint             = var.entry_point
      command                = ["--log-format", "json", "run"]
      environment = concat(
        [
          { name = "CUTOVER_CONFIG", value = local.config_path },
          { name = "RUST_LOG", value = var.rust_log },
        ],
        [for k, v in var.extra_env : { name = k, value = v }],
      )
      mountPoints  = [{ sourceVolume = "config", containerPath = local.config_dir, readOnly = true }]
      dependsOn    = [{ containerName = "config", condition = "SUCCESS" }]
      portMappings = [{ name = "metrics", containerPort = 9464, protocol = "tcp" }]
      stopTimeout  = var.stop_timeout_seconds
      dockerLabels = {
        ECS_PROMETHEUS_EXPORTER_PORT = "9464"
        ECS_PROMETHEUS_METRICS_PATH  = "/metrics"
        ECS_PROMETHEUS_JOB_NAME      = "cutover"
      }
      logConfiguration = local.log_config
    },
  ]
}

# =================================================================================================
# IAM: task role (what cutover may do) and execution role (what ECS may do to start it)
# =================================================================================================

# Both roles trust ECS tasks of this account only (aws:SourceAccount / aws:SourceArn: no confused
# deputy through another account's task).
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

# The same statement as modules/consumer: exactly the five calls `cutover run` makes, on the
# mapped tables only (no /index/*: writes never address an index). tests/infra.rs checks both.
data "aws_iam_policy_document" "writer" {
  statement {
    sid    = "CutoverWriter"
    effect = "Allow"
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
    ]
    resources = var.table_arns
  }
}

resource "aws_iam_role" "task" {
  name                 = "${var.name}-cutover-task"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "writer" {
  name   = "cutover-dynamodb-writer"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.writer.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ReadConfigSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.config_secret_arn]
  }

  dynamic "statement" {
    for_each = var.config_secret_kms_key_arn == null ? [] : [var.config_secret_kms_key_arn]
    content {
      sid       = "DecryptConfigSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # Images in private ECR repositories: GetAuthorizationToken has no resource-level permission.
  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrPull"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = var.ecr_repository_arns
    }
  }
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-cutover-execution"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "cutover-task-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# =================================================================================================
# Task definition and service
# =================================================================================================

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}-cutover"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.name}-cutover"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions    = jsonencode(local.containers)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Task-scoped scratch volume for the rendered config (gone with the task).
  volume {
    name = "config"
  }

  tags = var.tags
}

locals {
  service = {
    name                               = "${var.name}-cutover"
    deployment_minimum_healthy_percent = var.deployment_minimum_healthy_percent
    deployment_maximum_percent         = var.deployment_maximum_percent
  }
}

# Two variants of one service: with autoscaling, Application Auto Scaling owns desired_count
# (Terraform must not reset it on every apply); without, Terraform does (desired_count = 0 stops
# the fleet). Switching autoscaling_enabled replaces the service (a rebalance, nothing lost).
resource "aws_ecs_service" "fixed" {
  count = var.autoscaling_enabled ? 0 : 1

  name                               = local.service.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = local.service.deployment_minimum_healthy_percent
  deployment_maximum_percent         = local.service.deployment_maximum_percent
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"
  tags                               = var.tags

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}

resource "aws_ecs_service" "scaled" {
  count = var.autoscaling_enabled ? 1 : 0

  name                               = local.service.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = local.service.deployment_minimum_healthy_percent
  deployment_maximum_percent         = local.service.deployment_maximum_percent
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"
  tags                               = var.tags

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}

# =================================================================================================
# Scaling on consumer lag: records behind per running task, tracked at target_lag_per_task
# =================================================================================================

resource "aws_appautoscaling_target" "this" {
  count = var.autoscaling_enabled ? 1 : 0

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${local.cluster_name}/${aws_ecs_service.scaled[0].name}"
  min_capacity       = var.min_count
  max_capacity       = local.max_count
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "lag" {
  count = var.autoscaling_enabled ? 1 : 0

  name               = "${var.name}-cutover-lag-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[0].resource_id

  target_tracking_scaling_policy_configuration {
    target_value = var.target_lag_per_task
    # Up quickly (lag grows), down slowly (every membership change is a rebalance).
    scale_out_cooldown = 60
    scale_in_cooldown  = 600

    customized_metric_specification {
      # MSK consumer-lag metric of the group on the topic (records behind, all partitions).
      metrics {
        id          = "lag"
        label       = "SumOffsetLag"
        return_data = false
        metric_stat {
          stat = "Maximum"
          metric {
            namespace   = "AWS/Kafka"
            metric_name = "SumOffsetLag"
            dimensions {
              name  = "Cluster Name"
              value = var.msk_cluster_name
            }
            dimensions {
              name  = "Consumer Group"
              value = var.consumer_group_id
            }
            dimensions {
              name  = "Topic"
              value = var.topic_name
            }
          }
        }
      }
      # Running tasks (Container Insights must be on for the cluster).
      metrics {
        id          = "tasks"
        label       = "RunningTaskCount"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = local.cluster_name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.scaled[0].name
            }
          }
        }
      }
      metrics {
        id          = "lag_per_task"
        label       = "records behind per running task"
        expression  = "IF(tasks > 0, lag / tasks, lag)"
        return_data = true
      }
    }
  }
}
