variable "name" {
  description = "Prefix of every resource (service, task family, roles, log group): <name>-cutover."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,30}$", var.name))
    error_message = "name must start with a letter and hold at most 31 letters, digits and hyphens."
  }
}

variable "cluster_arn" {
  description = "ARN of the existing ECS cluster. With autoscaling_enabled it needs Container Insights (the RunningTaskCount metric)."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:ecs:[^:]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN (arn:...:ecs:<region>:<account>:cluster/<name>)."
  }
}

variable "image" {
  description = "cutover container image, pinned by tag or digest (built from the repository's Dockerfile: uid 65532, entrypoint cutover)."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must name the cutover image."
  }
}

variable "entry_point" {
  description = "Container entrypoint; the arguments are always --log-format json run. The repository's image has ENTRYPOINT [\"cutover\"]."
  type        = list(string)
  default     = ["cutover"]
}

variable "config_init_image" {
  description = "Small image with a POSIX sh, printf, chown and mv, used once per task to write the config secret to /etc/cutover/cutover.toml (the cutover image has no shell). Pin it by digest in production."
  type        = string
  default     = "public.ecr.aws/docker/library/busybox:1.36"
}

variable "config_secret_arn" {
  description = "Secrets Manager secret whose SecretString is the whole rendered cutover.toml (SASL password included; [telemetry] listen = \"0.0.0.0:9464\")."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]{12}:secret:.+$", var.config_secret_arn))
    error_message = "config_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "config_secret_kms_key_arn" {
  description = "Customer managed KMS key of config_secret_arn, if any (the execution role then gets kms:Decrypt via Secrets Manager)."
  type        = string
  default     = null
}

variable "table_arns" {
  description = "ARNs of the DynamoDB tables cutover writes (modules/dynamodb_tables table_arns). The task role's CutoverWriter statement covers exactly these."
  type        = list(string)

  validation {
    condition     = length(var.table_arns) > 0 && alltrue([for a in var.table_arns : can(regex("^arn:[^:]+:dynamodb:[^:]+:[0-9]{12}:table/[^/]+$", a))])
    error_message = "table_arns must be non-empty and hold DynamoDB table ARNs (arn:...:dynamodb:<region>:<account>:table/<name>)."
  }
}

variable "ecr_repository_arns" {
  description = "ECR repositories the execution role may pull image from (the cutover image; the init image if private). []: public images only."
  type        = list(string)
  default     = []
}

variable "subnet_ids" {
  description = "Private subnets of the tasks (they must reach the brokers and DynamoDB, and Secrets Manager/ECR/CloudWatch Logs through NAT or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "Give at least one subnet (two AZs or more for availability)."
  }
}

variable "security_group_ids" {
  description = "Security groups of the tasks: egress to the brokers (MSK SASL/SCRAM: 9096) and HTTPS; ingress on 9464 from the metrics scraper only."
  type        = list(string)
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Fargate task memory (MiB); must be a valid combination with cpu. Memory is bounded by partitions-per-task x (run.queue_per_partition + sink.max_batch_records) records plus librdkafka's prefetch."
  type        = number
  default     = 1024
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: the architecture the image was built for."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "partitions" {
  description = "Partition count of the change topic (modules/topic output). Bounds desired_count, min_count and max_count: a consumer group never gives one partition to two members."
  type        = number
}

variable "desired_count" {
  description = "Tasks when autoscaling_enabled = false (0 stops the fleet)."
  type        = number
  default     = 3

  validation {
    condition     = var.desired_count >= 0 && var.desired_count <= var.partitions
    error_message = "desired_count must be between 0 and partitions: tasks beyond the partition count get no partition and sit idle."
  }
}

variable "autoscaling_enabled" {
  description = "Scale on consumer lag (Application Auto Scaling target tracking on MSK's SumOffsetLag per running task). Needs msk_cluster_name, consumer_group_id and topic_name, and Container Insights on the cluster."
  type        = bool
  default     = false
}

variable "min_count" {
  description = "Autoscaling minimum tasks."
  type        = number
  default     = 2

  validation {
    condition     = var.min_count >= 1 && var.min_count <= var.partitions
    error_message = "min_count must be between 1 and partitions (to stop the fleet, set autoscaling_enabled = false and desired_count = 0)."
  }
}

variable "max_count" {
  description = "Autoscaling maximum tasks; at most partitions (null: partitions)."
  type        = number
  default     = null

  validation {
    condition     = var.max_count == null || (try(var.max_count >= var.min_count, false) && try(var.max_count <= var.partitions, false))
    error_message = "max_count must be between min_count and partitions."
  }
}

variable "target_lag_per_task" {
  description = "Target tracking value: records of lag one task is expected to absorb."
  type        = number
  default     = 50000

  validation {
    condition     = var.target_lag_per_task > 0
    error_message = "target_lag_per_task must be positive."
  }
}

variable "msk_cluster_name" {
  description = "MSK cluster name (dimension \"Cluster Name\" of AWS/Kafka SumOffsetLag). Required with autoscaling_enabled."
  type        = string
  default     = null

  validation {
    condition     = !var.autoscaling_enabled || try(length(var.msk_cluster_name) > 0, false)
    error_message = "autoscaling_enabled needs msk_cluster_name (the lag metric's Cluster Name dimension)."
  }
}

variable "consumer_group_id" {
  description = "kafka.group_id of cutover run (dimension \"Consumer Group\"). Required with autoscaling_enabled."
  type        = string
  default     = null

  validation {
    condition     = !var.autoscaling_enabled || try(length(var.consumer_group_id) > 0, false)
    error_message = "autoscaling_enabled needs consumer_group_id (kafka.group_id of cutover.toml)."
  }
}

variable "topic_name" {
  description = "Change topic (dimension \"Topic\"). Required with autoscaling_enabled."
  type        = string
  default     = null

  validation {
    condition     = !var.autoscaling_enabled || try(length(var.topic_name) > 0, false)
    error_message = "autoscaling_enabled needs topic_name (the change topic)."
  }
}

variable "stop_timeout_seconds" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate: at most 120). cutover drains in-flight batches and commits within run.drain_timeout (drain_timeout_seconds), so this must be longer."
  type        = number
  default     = 45

  validation {
    condition     = var.stop_timeout_seconds >= var.drain_timeout_seconds + 10 && var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must exceed drain_timeout_seconds by at least 10 s (or the task is killed mid-drain) and be at most 120 (Fargate's limit)."
  }
}

variable "drain_timeout_seconds" {
  description = "run.drain_timeout of cutover.toml in seconds (cutover's default is 30)."
  type        = number
  default     = 30
}

variable "deployment_minimum_healthy_percent" {
  description = "Rolling deployments: tasks kept running (100: never fewer consumers than desired)."
  type        = number
  default     = 100
}

variable "deployment_maximum_percent" {
  description = "Rolling deployments: tasks allowed during a deployment. Every task started or stopped is a group rebalance."
  type        = number
  default     = 200
}

variable "rust_log" {
  description = "RUST_LOG filter for cutover's logs."
  type        = string
  default     = "info"
}

variable "extra_env" {
  description = "Additional environment variables (e.g. CUTOVER_SINK__CONCURRENCY = \"64\"). Never secrets: put those in the config secret."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key for the log group (its key policy must allow CloudWatch Logs). null: CloudWatch's default encryption."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "ARN of an IAM permissions boundary (managed policy) for the task and execution roles, when the account requires one. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:[^:]+:iam::([0-9]{12}|aws):policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be a managed policy ARN (arn:<partition>:iam::<account>:policy/<name>)."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
