variable "name" {
  description = "Name prefix for every DMS resource (replication instance, endpoints, task, subnet group, secrets role). Letters, digits and hyphens; starts with a letter."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,40}$", var.name)) && !can(regex("--|-$", var.name))
    error_message = "name must start with a letter, use only letters, digits and single hyphens, not end with a hyphen, and be at most 41 characters."
  }
}

variable "source_tables" {
  description = "Source tables to migrate, as { schema, table } objects (the schema is the MySQL database). Each gets a selection rule and, with partition_by_primary_key, an object-mapping rule. Must match the [[table]] sources of cutover.toml."
  type = list(object({
    schema = string
    table  = string
  }))

  validation {
    condition     = length(var.source_tables) > 0
    error_message = "source_tables must name at least one table."
  }
}

variable "partition_by_primary_key" {
  description = "Add a map-record-to-record object-mapping rule with partition-key-type = primary-key for every table, so full-load and CDC records are keyed by primary key. ParallelApply already defaults CDC to primary-key partitioning; this makes it explicit for both phases."
  type        = bool
  default     = true
}

variable "before_image_column_filter" {
  description = "BeforeImageSettings.ColumnFilter: \"pk-only\" (only when every cutover key template uses primary-key columns alone), \"non-lob\" (default: every non-LOB column, enough for templates over ordinary columns) or \"all\" (also LOB columns; larger messages)."
  type        = string
  default     = "non-lob"

  validation {
    condition     = contains(["pk-only", "non-lob", "all"], var.before_image_column_filter)
    error_message = "before_image_column_filter must be pk-only, non-lob or all."
  }
}

variable "source_secret_arn" {
  description = "ARN of the Secrets Manager secret with the MySQL connection for DMS: JSON with host, port, username, password. The user needs SELECT on the migrated schemas, REPLICATION CLIENT and REPLICATION SLAVE."
  type        = string
}

variable "source_secret_kms_key_arn" {
  description = "Customer managed KMS key that encrypts source_secret_arn, if any (the secrets role then gets kms:Decrypt via Secrets Manager). null: the secret uses the AWS managed key."
  type        = string
  default     = null
}

variable "source_ssl_mode" {
  description = "TLS to MySQL: none, require, verify-ca or verify-full (the last two need source_certificate_arn)."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["none", "require", "verify-ca", "verify-full"], var.source_ssl_mode)
    error_message = "source_ssl_mode must be none, require, verify-ca or verify-full."
  }
}

variable "source_certificate_arn" {
  description = "ARN of a DMS certificate (aws_dms_certificate) with the CA bundle of the MySQL server, for verify-ca / verify-full."
  type        = string
  default     = null
}

variable "source_server_timezone" {
  description = "MySQL server time zone (MySQLSettings.ServerTimezone), e.g. \"UTC\". null: DMS default."
  type        = string
  default     = null
}

variable "events_poll_interval" {
  description = "Seconds between binlog polls while the source is idle (MySQLSettings.EventsPollInterval)."
  type        = number
  default     = 5
}

variable "kafka_brokers" {
  description = "Comma-separated Kafka bootstrap brokers host:port (MSK with SASL/SCRAM: bootstrap_brokers_sasl_scram)."
  type        = string
}

variable "kafka_topic" {
  description = "Change topic DMS writes every table to (modules/topic topic_name). Create it first: DMS only auto-creates topics when the cluster allows it."
  type        = string
}

variable "kafka_security_protocol" {
  description = "DMS Kafka SecurityProtocol: \"sasl-ssl\" (TLS + SASL/SCRAM-SHA-512, MSK port 9096; default) or \"ssl-encryption\" (TLS only, port 9094, no client authentication)."
  type        = string
  default     = "sasl-ssl"

  validation {
    condition     = contains(["sasl-ssl", "ssl-encryption"], var.kafka_security_protocol)
    error_message = "kafka_security_protocol must be sasl-ssl or ssl-encryption."
  }
}

variable "kafka_sasl_username" {
  description = "SASL/SCRAM user DMS produces as (with kafka_security_protocol = sasl-ssl)."
  type        = string
  default     = null
}

variable "kafka_sasl_password" {
  description = "Password of kafka_sasl_username. DMS's Kafka endpoint takes it in clear text; it ends up in Terraform state (marked sensitive)."
  type        = string
  default     = null
  sensitive   = true
}

variable "kafka_ssl_ca_certificate_arn" {
  description = "ARN of a DMS certificate with a private CA for a self-managed Kafka cluster. null for MSK (public CAs)."
  type        = string
  default     = null
}

variable "message_max_bytes" {
  description = "KafkaSettings.MessageMaxBytes: the largest record DMS produces (DMS supports up to 1 MiB). Keep the topic's max.message.bytes above it."
  type        = number
  default     = 1000000

  validation {
    condition     = var.message_max_bytes > 0 && var.message_max_bytes <= 1048576
    error_message = "message_max_bytes must be between 1 and 1048576 (DMS's Kafka limit)."
  }
}

variable "use_large_integer_value" {
  description = "Set KafkaSettings.UseLargeIntegerValue = true after creating the endpoint (via the AWS CLI, since the provider's kafka_settings lacks it), so BIGINTs keep all digits. Needs DMS engine >= 3.5.x and the AWS CLI where terraform runs."
  type        = bool
  default     = true
}

variable "lob_max_size_kb" {
  description = "TargetMetadata.LobMaxSize in KB (limited LOB mode): larger LOBs are truncated by DMS. Keep it above DynamoDB's 400 KB item limit so oversize values are dead-lettered by cutover rather than stored truncated, and below message_max_bytes."
  type        = number
  default     = 512
}

variable "parallel_load_threads" {
  description = "TargetMetadata.ParallelLoadThreads: threads per table during the full load (Kafka targets: at most 32)."
  type        = number
  default     = 8

  validation {
    condition     = var.parallel_load_threads >= 1 && var.parallel_load_threads <= 32
    error_message = "parallel_load_threads must be between 1 and 32."
  }
}

variable "max_full_load_subtasks" {
  description = "FullLoadSettings.MaxFullLoadSubTasks: tables loaded at the same time (1-49)."
  type        = number
  default     = 8
}

variable "parallel_apply_threads" {
  description = "TargetMetadata.ParallelApplyThreads: threads pushing CDC records to Kafka (0-32). Must be > 1 for ParallelApply (and primary-key partitioning of CDC by default)."
  type        = number
  default     = 16

  validation {
    condition     = var.parallel_apply_threads >= 2 && var.parallel_apply_threads <= 32
    error_message = "parallel_apply_threads must be between 2 and 32."
  }
}

variable "parallel_apply_buffer_size" {
  description = "TargetMetadata.ParallelApplyBufferSize: records per buffer queue during CDC (max 1000)."
  type        = number
  default     = 500
}

variable "parallel_apply_queues_per_thread" {
  description = "TargetMetadata.ParallelApplyQueuesPerThread: queues each apply thread drains during CDC."
  type        = number
  default     = 16
}

variable "start_replication_task" {
  description = "Run the replication task. Keep false until the topic, the DynamoDB tables and the consumers exist, then set true (runbook step 1)."
  type        = bool
  default     = false
}

variable "replication_instance_class" {
  description = "DMS replication instance class. Memory-optimised classes suit CDC with large transactions and parallel apply."
  type        = string
  default     = "dms.r5.large"
}

variable "allocated_storage_gb" {
  description = "Storage of the replication instance in GB (task logs and cached changes during the full load)."
  type        = number
  default     = 100
}

variable "engine_version" {
  description = "DMS engine version. Use >= 3.5.4 for UseLargeIntegerValue on Kafka targets. null: the current default."
  type        = string
  default     = "3.5.4"
}

variable "multi_az" {
  description = "Run the replication instance Multi-AZ (standby in another AZ; failover resumes CDC from the last checkpoint)."
  type        = bool
  default     = true
}

variable "subnet_ids" {
  description = "Private subnets (at least two AZs) for the replication instance; they must reach MySQL and the Kafka brokers."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "Give at least two subnets in different AZs."
  }
}

variable "security_group_ids" {
  description = "Security groups of the replication instance: egress to MySQL (3306) and the brokers (MSK SASL/SCRAM: 9096)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for the replication instance storage and endpoint connection parameters. null: the account's default DMS key."
  type        = string
  default     = null
}

variable "create_account_roles" {
  description = "Create the account-global roles dms-vpc-role and dms-cloudwatch-logs-role. Set false when they already exist in the account (they have fixed names, so only one stack may own them)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
