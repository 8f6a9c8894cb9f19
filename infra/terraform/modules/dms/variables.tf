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
  description = "TLS to MySQL: verify-full (default: the server certificate is checked against the CA and the host name), verify-ca, require (encrypted, unauthenticated: open to a man in the middle) or none. verify-ca and verify-full need source_certificate_arn or source_ca_certificate_pem."
  type        = string
  default     = "verify-full"

  validation {
    condition     = contains(["none", "require", "verify-ca", "verify-full"], var.source_ssl_mode)
    error_message = "source_ssl_mode must be none, require, verify-ca or verify-full."
  }

  validation {
    condition     = !contains(["verify-ca", "verify-full"], var.source_ssl_mode) || var.source_certificate_arn != null || var.source_ca_certificate_pem != null
    error_message = "source_ssl_mode = verify-ca/verify-full needs the MySQL server's CA: set source_ca_certificate_pem (RDS/Aurora: the region's bundle, https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem) or source_certificate_arn (an existing DMS certificate)."
  }
}

variable "source_certificate_arn" {
  description = "ARN of an existing DMS certificate (aws_dms_certificate) with the CA bundle of the MySQL server, for verify-ca / verify-full. Alternative: source_ca_certificate_pem."
  type        = string
  default     = null
}

variable "source_ca_certificate_pem" {
  description = "PEM CA bundle of the MySQL server, imported here as a DMS certificate when source_certificate_arn is null (RDS/Aurora: https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem)."
  type        = string
  default     = null

  validation {
    condition     = var.source_ca_certificate_pem == null || can(regex("-----BEGIN CERTIFICATE-----", var.source_ca_certificate_pem))
    error_message = "source_ca_certificate_pem must be PEM text (-----BEGIN CERTIFICATE----- ...), e.g. file(\"eu-west-1-bundle.pem\")."
  }
}

variable "source_server_timezone" {
  description = "MySQL server time zone (extra connection attribute serverTimezone), e.g. \"UTC\". null: DMS default."
  type        = string
  default     = null

  validation {
    # It goes into a semicolon-separated attribute string.
    condition     = var.source_server_timezone == null || can(regex("^[A-Za-z0-9_+/:-]+$", var.source_server_timezone))
    error_message = "source_server_timezone must be a time zone name such as UTC or Europe/Paris."
  }
}

variable "events_poll_interval" {
  description = "Seconds between binlog polls while the source is idle (extra connection attribute eventsPollInterval)."
  type        = number
  default     = 5

  validation {
    condition     = var.events_poll_interval >= 1 && var.events_poll_interval <= 60 && floor(var.events_poll_interval) == var.events_poll_interval
    error_message = "events_poll_interval must be a whole number of seconds between 1 and 60."
  }
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
  description = "SASL/SCRAM user DMS produces as. Required with kafka_security_protocol = sasl-ssl."
  type        = string
  default     = null

  validation {
    condition     = var.kafka_security_protocol != "sasl-ssl" || try(length(trimspace(var.kafka_sasl_username)) > 0, false)
    error_message = "kafka_security_protocol = sasl-ssl needs kafka_sasl_username (the SCRAM user DMS produces as); use ssl-encryption for TLS without client authentication."
  }
}

variable "kafka_sasl_password" {
  description = "Password of kafka_sasl_username. Required with sasl-ssl. DMS's Kafka endpoint takes it in clear text; it ends up in Terraform state (marked sensitive)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.kafka_security_protocol != "sasl-ssl" || try(length(var.kafka_sasl_password) > 0, false)
    error_message = "kafka_security_protocol = sasl-ssl needs kafka_sasl_password (the SCRAM password of kafka_sasl_username)."
  }
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
  description = "TargetMetadata.LobMaxSize in KB (limited LOB mode): larger LOBs are truncated by DMS. Above DynamoDB's 400 KB item limit, so oversize values are dead-lettered by cutover rather than stored truncated, and below message_max_bytes."
  type        = number
  default     = 512

  validation {
    condition     = var.lob_max_size_kb > 400 && var.lob_max_size_kb * 1024 < var.message_max_bytes
    error_message = "lob_max_size_kb must exceed 400 (DynamoDB's item limit: a LOB DMS truncates below it would be stored cut short instead of dead-lettered) and stay below message_max_bytes / 1024."
  }
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

  validation {
    condition     = var.max_full_load_subtasks >= 1 && var.max_full_load_subtasks <= 49
    error_message = "max_full_load_subtasks must be between 1 and 49."
  }
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

  validation {
    condition     = var.parallel_apply_buffer_size >= 1 && var.parallel_apply_buffer_size <= 1000
    error_message = "parallel_apply_buffer_size must be between 1 and 1000."
  }
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
  description = "DMS engine version, at least 3.4.7 (the aws:SourceAccount trust conditions); 3.5.4 or later for UseLargeIntegerValue on Kafka targets. null: the current default."
  type        = string
  default     = "3.5.4"

  validation {
    condition     = var.engine_version == null || can(regex("^(3\\.4\\.([7-9]|[1-9][0-9])|3\\.([5-9]|[1-9][0-9])\\.[0-9]+|([4-9]|[1-9][0-9])\\.[0-9]+\\.[0-9]+)$", var.engine_version))
    error_message = "engine_version must be 3.4.7 or later (DMS honours the aws:SourceAccount trust conditions from 3.4.7), or null."
  }
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

variable "permissions_boundary_arn" {
  description = "ARN of an IAM permissions boundary (managed policy) set on every role this module creates, when the account requires one. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:[^:]+:iam::([0-9]{12}|aws):policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be a managed policy ARN (arn:<partition>:iam::<account>:policy/<name>)."
  }
}

variable "iam_propagation_wait_seconds" {
  description = "Seconds to wait after creating the IAM roles before DMS uses them (IAM is eventually consistent). Needs a POSIX shell where terraform runs. 0: don't wait (the roles already existed)."
  type        = number
  default     = 30

  validation {
    condition     = var.iam_propagation_wait_seconds >= 0 && var.iam_propagation_wait_seconds <= 600
    error_message = "iam_propagation_wait_seconds must be between 0 and 600."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
