variable "topic_name" {
  description = "Name of the change topic DMS writes to and cutover reads (kafka.topics in cutover.toml, KafkaSettings.Topic in DMS). Use dots or underscores, not both (DMS and Kafka metric names collide on them)."
  type        = string
}

variable "dlq_topic_name" {
  description = "Name of the dead-letter topic cutover writes poison records to (kafka.dlq_topic in cutover.toml). Must differ from topic_name."
  type        = string

  validation {
    condition     = length(var.dlq_topic_name) > 0 && var.dlq_topic_name != var.topic_name
    error_message = "dlq_topic_name must be set and differ from topic_name."
  }
}

variable "repair_topic_name" {
  description = "Name of the data-access layer's repair topic (access.repair_topic in cutover.toml). null: not created (only when the service doesn't use cutover::access)."
  type        = string
  default     = null

  validation {
    condition     = var.repair_topic_name == null || try(length(var.repair_topic_name) > 0 && var.repair_topic_name != var.topic_name && var.repair_topic_name != var.dlq_topic_name, false)
    error_message = "repair_topic_name must differ from topic_name and dlq_topic_name."
  }
}

variable "repair_partitions" {
  description = "Partitions of the repair topic. Entries are keyed by row, so one row's repairs stay in order; a few partitions are plenty."
  type        = number
  default     = 6

  validation {
    condition     = var.repair_partitions >= 1 && floor(var.repair_partitions) == var.repair_partitions
    error_message = "repair_partitions must be a positive whole number."
  }
}

variable "repair_retention_ms" {
  description = "Retention of the repair topic: longer than any repair-worker outage (an entry that expires unapplied leaves MySQL or DynamoDB behind until `cutover verify --repair`). Default 30 days."
  type        = number
  default     = 2592000000

  validation {
    condition     = var.repair_retention_ms == -1 || var.repair_retention_ms >= 86400000
    error_message = "repair_retention_ms must be at least one day (86400000), or -1 (unlimited)."
  }
}

variable "extra_repair_topic_config" {
  description = "Additional topic-level configs for the repair topic."
  type        = map(string)
  default     = {}
}

variable "access_principal" {
  description = "Kafka principal of the service that embeds the data-access layer (e.g. \"User:chat-api\"). When set (and repair_topic_name), the module grants it Write and Describe on the repair topic."
  type        = string
  default     = null
}

variable "repair_worker_principal" {
  description = "Kafka principal of the repair worker (the service's own, or a separate job's). When set (and repair_topic_name), the module grants it Read/Describe on the repair topic and Read on the group repair_group_id."
  type        = string
  default     = null
}

variable "repair_group_id" {
  description = "access.repair_group of cutover.toml: the repair worker's consumer group."
  type        = string
  default     = "cutover-repair"
}

variable "partitions" {
  description = "Partitions of the change topic: the upper bound on useful consumers (one group member owns whole partitions; extra members sit idle). Highly partitioned so the consumer fleet can scale out; can be increased later, never decreased (a decrease would replace the topic, which prevent_destroy refuses)."
  type        = number
  default     = 48

  validation {
    condition     = var.partitions >= 1 && floor(var.partitions) == var.partitions
    error_message = "partitions must be a positive whole number."
  }
}

variable "replication_factor" {
  description = "Replicas of every partition (every topic). 3 survives one broker loss while still accepting acks=all writes with min.insync.replicas = 2. Fixed once the change topic exists (a change would replace it, which prevent_destroy refuses)."
  type        = number
  default     = 3

  validation {
    condition     = var.replication_factor >= 1 && floor(var.replication_factor) == var.replication_factor
    error_message = "replication_factor must be a positive whole number."
  }
}

variable "min_insync_replicas" {
  description = "min.insync.replicas of every topic: replicas that must have a record before an acks=all write succeeds. Lower than replication_factor, or one broker restart stops all writes."
  type        = number
  default     = 2

  validation {
    condition     = var.min_insync_replicas >= 1 && var.min_insync_replicas < var.replication_factor
    error_message = "min_insync_replicas must be at least 1 and lower than replication_factor, or one broker restart stops all writes."
  }
}

variable "retention_mode" {
  description = "\"unlimited\": retention.ms = -1 on broker disks. \"tiered\": MSK tiered storage (remote.storage.enable = true), unlimited total retention with only local_retention_ms on broker disks; needs a tiered-storage capable MSK cluster (Kafka >= 3.6, non-t3 brokers) and can't be turned off again on MSK."
  type        = string
  default     = "unlimited"

  validation {
    condition     = contains(["unlimited", "tiered"], var.retention_mode)
    error_message = "retention_mode must be \"unlimited\" or \"tiered\"."
  }
}

variable "local_retention_ms" {
  description = "With retention_mode = \"tiered\": how long records stay on broker disks (local.retention.ms) before they are served from the remote tier only. Default 3 days."
  type        = number
  default     = 259200000
}

variable "max_message_bytes" {
  description = "max.message.bytes of the change topic. Must exceed dms_message_max_bytes (DMS MessageMaxBytes) by at least 1 KiB of record overhead."
  type        = number
  default     = 1048588

  validation {
    condition     = var.max_message_bytes >= var.dms_message_max_bytes + 1024
    error_message = "max_message_bytes must exceed dms_message_max_bytes (DMS MessageMaxBytes) by at least 1 KiB of record overhead."
  }
}

variable "dms_message_max_bytes" {
  description = "The DMS Kafka endpoint's MessageMaxBytes (modules/dms var.message_max_bytes), used only to check max_message_bytes."
  type        = number
  default     = 1000000
}

variable "extra_topic_config" {
  description = "Additional topic-level configs for the change topic (e.g. {\"compression.type\" = \"zstd\"}); they override the defaults above, so don't set cleanup.policy = compact here."
  type        = map(string)
  default     = {}

  validation {
    condition     = !can(regex("compact", lookup(var.extra_topic_config, "cleanup.policy", "")))
    error_message = "The change topic must not be compacted: cutover needs every change to replay deletes and versions."
  }
}

variable "dlq_partitions" {
  description = "Partitions of the dead-letter topic. Few: dead letters are rare and read by people and tools, not by the fleet."
  type        = number
  default     = 6
}

variable "dlq_retention_ms" {
  description = "Retention of the dead-letter topic. Long enough to investigate and re-drive poison records (default 30 days); they hold row data, so don't keep them forever."
  type        = number
  default     = 2592000000
}

variable "dlq_max_message_bytes" {
  description = "max.message.bytes of the dead-letter topic: the original record plus cutover.* headers. Set the cutover producer's librdkafka message.max.bytes to the same value (example/cutover.toml does)."
  type        = number
  default     = 2097152

  validation {
    condition     = var.dlq_max_message_bytes >= var.max_message_bytes + 65536
    error_message = "dlq_max_message_bytes must exceed max_message_bytes by at least 64 KiB (room for the cutover.* headers)."
  }
}

variable "extra_dlq_topic_config" {
  description = "Additional topic-level configs for the dead-letter topic."
  type        = map(string)
  default     = {}
}

variable "dms_principal" {
  description = "Kafka principal of the DMS endpoint user (e.g. \"User:dms\" for SASL/SCRAM user dms). When set, the module grants it Write and Describe on the change topic. null: no ACLs managed for DMS."
  type        = string
  default     = null
}

variable "consumer_principal" {
  description = "Kafka principal of cutover (e.g. \"User:cutover\"). When set, the module grants Read/Describe on the change topic, Read on consumer groups prefixed consumer_group_id, and Write/Describe on the dead-letter topic. null: no ACLs managed for cutover."
  type        = string
  default     = null
}

variable "consumer_group_id" {
  description = "kafka.group_id of cutover run; replay groups are \"<group_id>-replay-...\", covered by the same prefixed ACL."
  type        = string
  default     = "cutover"
}
