variable "topic_name" {
  description = "Name of the change topic DMS writes to and cutover reads (kafka.topics in cutover.toml, KafkaSettings.Topic in DMS). Use dots or underscores, not both (DMS and Kafka metric names collide on them)."
  type        = string
}

variable "dlq_topic_name" {
  description = "Name of the dead-letter topic cutover writes poison records to (kafka.dlq_topic in cutover.toml). Must differ from topic_name."
  type        = string

  validation {
    condition     = length(var.dlq_topic_name) > 0
    error_message = "dlq_topic_name must not be empty."
  }
}

variable "partitions" {
  description = "Partitions of the change topic: the upper bound on useful consumers (one group member owns whole partitions; extra members sit idle). Highly partitioned so the consumer fleet can scale out; can be increased later, never decreased."
  type        = number
  default     = 48

  validation {
    condition     = var.partitions >= 1 && floor(var.partitions) == var.partitions
    error_message = "partitions must be a positive whole number."
  }
}

variable "replication_factor" {
  description = "Replicas of every partition (both topics). 3 survives one broker loss while still accepting acks=all writes with min.insync.replicas = 2."
  type        = number
  default     = 3
}

variable "min_insync_replicas" {
  description = "min.insync.replicas of both topics: replicas that must have a record before an acks=all write succeeds."
  type        = number
  default     = 2
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
  description = "max.message.bytes of the change topic. Must exceed dms_message_max_bytes (checked)."
  type        = number
  default     = 1048588
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
