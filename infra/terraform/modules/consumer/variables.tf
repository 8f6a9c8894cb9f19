variable "name" {
  description = "Name of the Deployment, HPA, PDB and Secret (and prefix of the IAM role)."
  type        = string
  default     = "cutover"
}

variable "namespace" {
  description = "Kubernetes namespace (must exist)."
  type        = string
}

variable "image" {
  description = "Container image of cutover, pinned by tag or digest (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/cutover:1.4.2). It must contain CA certificates for TLS to the brokers and run as a non-root user (uid 65532 by default here)."
  type        = string
}

variable "command" {
  description = "Container command; the arguments are always --log-format json run. null: the image's entrypoint."
  type        = list(string)
  default     = ["cutover"]
}

variable "config_toml" {
  description = "Complete cutover.toml, SASL password included (stored in a Kubernetes Secret, mounted at /etc/cutover/cutover.toml). Must contain [telemetry] listen = \"0.0.0.0:9464\"."
  type        = string
  sensitive   = true
}

variable "partitions" {
  description = "Partition count of the change topic (modules/topic output). Bounds replicas and max_replicas: a consumer group never gives one partition to two members."
  type        = number
}

variable "replicas" {
  description = "Number of consumers when autoscaling_enabled = false (0 stops the fleet). Ignored while the HPA manages the Deployment."
  type        = number
  default     = 3

  validation {
    condition     = var.replicas >= 0 && var.replicas <= var.partitions
    error_message = "replicas must be between 0 and partitions: consumers beyond the partition count get no partition and sit idle."
  }
}

variable "autoscaling_enabled" {
  description = "Create the HorizontalPodAutoscaler on consumer lag (needs prometheus-adapter serving the external metric, see infra/README.md)."
  type        = bool
  default     = true
}

variable "min_replicas" {
  description = "HPA minimum replicas."
  type        = number
  default     = 2

  validation {
    condition     = var.min_replicas >= 1 && var.min_replicas <= var.partitions
    error_message = "min_replicas must be between 1 and partitions (to stop the fleet, set autoscaling_enabled = false and replicas = 0)."
  }
}

variable "max_replicas" {
  description = "HPA maximum replicas; at most partitions (null: partitions)."
  type        = number
  default     = null

  validation {
    condition     = var.max_replicas == null || (try(var.max_replicas >= var.min_replicas, false) && try(var.max_replicas <= var.partitions, false))
    error_message = "max_replicas must be between min_replicas and partitions."
  }
}

variable "topic_name" {
  description = "Change topic name: the HPA selects the lag metric by its topic label."
  type        = string
}

variable "lag_metric_name" {
  description = "External metric name served by prometheus-adapter for the group's total lag (sum over partitions of cutover_consumer_lag)."
  type        = string
  default     = "cutover_consumer_lag"
}

variable "target_lag_per_replica" {
  description = "HPA AverageValue target: records of lag one consumer is expected to absorb. Desired replicas = ceil(total lag / this)."
  type        = number
  default     = 50000
}

variable "termination_grace_period_seconds" {
  description = "Seconds Kubernetes waits after SIGTERM. cutover drains in-flight batches and commits within run.drain_timeout (drain_timeout_seconds), so this must be longer."
  type        = number
  default     = 45

  validation {
    condition     = var.termination_grace_period_seconds >= var.drain_timeout_seconds + 10
    error_message = "termination_grace_period_seconds must exceed drain_timeout_seconds by at least 10 s, or the pod is killed mid-drain (its last batches are then re-read, not lost, but every rollout re-applies them)."
  }
}

variable "drain_timeout_seconds" {
  description = "run.drain_timeout of cutover.toml in seconds (cutover's default is 30)."
  type        = number
  default     = 30
}

variable "rust_log" {
  description = "RUST_LOG filter for cutover's logs."
  type        = string
  default     = "info"
}

variable "extra_env" {
  description = "Additional environment variables (e.g. CUTOVER_SINK__CONCURRENCY = \"64\"). Never secrets: put those in config_toml."
  type        = map(string)
  default     = {}
}

variable "resources_requests" {
  description = "Container resource requests. Memory is bounded by partitions-per-pod x (run.queue_per_partition + sink.max_batch_records) records plus librdkafka's 8 MB prefetch."
  type        = map(string)
  default = {
    cpu    = "500m"
    memory = "512Mi"
  }
}

variable "resources_limits" {
  description = "Container resource limits. No CPU limit by default (throttling stalls heartbeats and drains)."
  type        = map(string)
  default = {
    memory = "1Gi"
  }
}

variable "node_selector" {
  description = "Node selector for the consumer pods."
  type        = map(string)
  default     = {}
}

variable "labels" {
  description = "Extra labels on every Kubernetes object and pod."
  type        = map(string)
  default     = {}
}

variable "pod_annotations" {
  description = "Extra pod annotations."
  type        = map(string)
  default     = {}
}

variable "create_pod_monitor" {
  description = "Create a Prometheus Operator PodMonitor (kubernetes_manifest; the CRD must exist at plan time). The pods also carry prometheus.io/* scrape annotations."
  type        = bool
  default     = false
}

variable "pod_monitor_labels" {
  description = "Labels the Prometheus Operator selects PodMonitors by (e.g. { release = \"kube-prometheus-stack\" })."
  type        = map(string)
  default     = {}
}

variable "service_account_name" {
  description = "Kubernetes service account of the pods (bound to the IAM role through IRSA)."
  type        = string
  default     = "cutover"
}

variable "iam_role_name" {
  description = "Name of the IAM role for the service account. null: \"<name>-cutover\"."
  type        = string
  default     = null
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (aws_iam_openid_connect_provider)."
  type        = string
}

variable "oidc_provider_url" {
  description = "Issuer URL of the EKS cluster's OIDC provider (https://oidc.eks.<region>.amazonaws.com/id/<id>); the https:// prefix is optional."
  type        = string
}

variable "table_arns" {
  description = "ARNs of the DynamoDB tables cutover writes (modules/dynamodb_tables table_arns). The writer policy covers exactly these tables (no index ARNs: writes never address an index)."
  type        = list(string)

  validation {
    condition     = length(var.table_arns) > 0 && alltrue([for a in var.table_arns : can(regex("^arn:[^:]+:dynamodb:[^:]+:[0-9]{12}:table/[^/]+$", a))])
    error_message = "table_arns must be non-empty and hold DynamoDB table ARNs (arn:...:dynamodb:<region>:<account>:table/<name>)."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of an IAM permissions boundary (managed policy) for the IRSA role, when the account requires one. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:[^:]+:iam::([0-9]{12}|aws):policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be a managed policy ARN (arn:<partition>:iam::<account>:policy/<name>)."
  }
}

variable "tags" {
  description = "Tags for the IAM role."
  type        = map(string)
  default     = {}
}
