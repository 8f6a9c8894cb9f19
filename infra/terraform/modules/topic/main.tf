# The change topic (DMS writes, `cutover run` / `cutover replay` read) and the dead-letter topic
# (`cutover` writes poison records there), for any Kafka: MSK, Confluent, self-managed.
#
# Why these settings (see infra/README.md, "Retention, compaction, partitions"):
# - partitions: the unit of parallelism. One consumer group member owns whole partitions, so
#   consumers beyond the partition count sit idle. DMS partitions by primary key, so every change
#   of one row lands in one partition, in commit order.
# - cleanup.policy = "delete", never "compact": compaction keeps only the newest record per
#   Kafka key and later drops delete markers, so a replay from the start would miss old versions,
#   intermediate updates, primary-key moves and deletes. cutover needs every change to rebuild a
#   table and to order them by version.
# - retention: unlimited (retention.ms = -1), or MSK tiered storage with a short local retention.
#   Either way a table can be rebuilt from offset 0 with `cutover replay --from earliest`.

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    kafka = {
      source  = "Mongey/kafka"
      version = ">= 0.13.0"
    }
  }
}

locals {
  # Unlimited: keep every change forever on broker disks.
  # Tiered (MSK, Kafka >= 3.6 tiered storage): keep every change forever in the remote tier,
  # only local_retention_ms on broker disks. Replays older than that read from the remote tier
  # (slower first bytes, much cheaper storage).
  retention_config = var.retention_mode == "tiered" ? {
    "retention.ms"          = "-1"
    "retention.bytes"       = "-1"
    "remote.storage.enable" = "true"
    "local.retention.ms"    = tostring(var.local_retention_ms)
    "local.retention.bytes" = "-1"
    } : {
    "retention.ms"    = "-1"
    "retention.bytes" = "-1"
  }

  change_topic_config = merge(local.retention_config, {
    # Every change is needed for a rebuild: never compact (see the header comment).
    "cleanup.policy" = "delete"
    # With acks=all (DMS and cutover's DLQ producer) a write needs 2 of the 3 replicas.
    "min.insync.replicas" = tostring(var.min_insync_replicas)
    # A lagging replica never becomes leader: no silently lost changes.
    "unclean.leader.election.enable" = "false"
    # >= DMS MessageMaxBytes (checked below) so DMS never fails a large row.
    "max.message.bytes" = tostring(var.max_message_bytes)
    # Broker time, monotonic per partition: `cutover replay --from <RFC3339>` finds offsets by
    # timestamp, which is exact only with monotonic timestamps. (cutover's e2e latency uses the
    # source commit-timestamp from the record, not this.)
    "message.timestamp.type" = "LogAppendTime"
  }, var.extra_topic_config)

  dlq_topic_config = merge({
    "cleanup.policy"                 = "delete"
    "retention.ms"                   = tostring(var.dlq_retention_ms)
    "min.insync.replicas"            = tostring(var.min_insync_replicas)
    "unclean.leader.election.enable" = "false"
    # A dead letter is the original record plus cutover.* headers: allow more than the source.
    "max.message.bytes" = tostring(var.dlq_max_message_bytes)
  }, var.extra_dlq_topic_config)
}

resource "kafka_topic" "changes" {
  name               = var.topic_name
  partitions         = var.partitions
  replication_factor = var.replication_factor
  config             = local.change_topic_config

  lifecycle {
    # Partitions can only grow. Growing them changes which partition a primary key hashes to:
    # do it only with consumers caught up (the version guard keeps it safe, but per-key order
    # across the boundary is then restored only by versions, not by Kafka).
    precondition {
      condition     = var.max_message_bytes >= var.dms_message_max_bytes + 1024
      error_message = "max_message_bytes must exceed dms_message_max_bytes (DMS MessageMaxBytes) by at least 1 KiB of record overhead."
    }
    precondition {
      condition     = var.min_insync_replicas < var.replication_factor
      error_message = "min_insync_replicas must be lower than replication_factor, or one broker restart stops all writes."
    }
  }
}

resource "kafka_topic" "dlq" {
  name               = var.dlq_topic_name
  partitions         = var.dlq_partitions
  replication_factor = var.replication_factor
  config             = local.dlq_topic_config

  lifecycle {
    precondition {
      condition     = var.dlq_max_message_bytes >= var.max_message_bytes + 65536
      error_message = "dlq_max_message_bytes must exceed max_message_bytes by at least 64 KiB (room for the cutover.* headers)."
    }
  }
}

# --- Optional ACLs (SASL/SCRAM principals such as "User:dms", "User:cutover") -------------------
# Set dms_principal / consumer_principal to manage them here. Leave both null when ACLs are
# managed elsewhere or the cluster allows everyone when no ACL is found (MSK's default).

resource "kafka_acl" "dms_write" {
  for_each = var.dms_principal == null ? toset([]) : toset(["Write", "Describe"])

  resource_name       = kafka_topic.changes.name
  resource_type       = "Topic"
  acl_principal       = var.dms_principal
  acl_host            = "*"
  acl_operation       = each.value
  acl_permission_type = "Allow"
}

resource "kafka_acl" "consumer_read" {
  for_each = var.consumer_principal == null ? toset([]) : toset(["Read", "Describe"])

  resource_name       = kafka_topic.changes.name
  resource_type       = "Topic"
  acl_principal       = var.consumer_principal
  acl_host            = "*"
  acl_operation       = each.value
  acl_permission_type = "Allow"
}

# `cutover run` uses group_id; `cutover replay` uses throw-away groups "<group_id>-replay-...":
# one prefixed ACL covers both.
resource "kafka_acl" "consumer_group" {
  count = var.consumer_principal == null ? 0 : 1

  resource_name                = var.consumer_group_id
  resource_type                = "Group"
  resource_pattern_type_filter = "Prefixed"
  acl_principal                = var.consumer_principal
  acl_host                     = "*"
  acl_operation                = "Read"
  acl_permission_type          = "Allow"
}

resource "kafka_acl" "consumer_dlq_write" {
  for_each = var.consumer_principal == null ? toset([]) : toset(["Write", "Describe"])

  resource_name       = kafka_topic.dlq.name
  resource_type       = "Topic"
  acl_principal       = var.consumer_principal
  acl_host            = "*"
  acl_operation       = each.value
  acl_permission_type = "Allow"
}
