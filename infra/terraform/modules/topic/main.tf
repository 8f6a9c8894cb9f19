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
    # >= DMS MessageMaxBytes (validated) so DMS never fails a large row.
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

# The only complete copy of every change since the full load: `cutover replay` rebuilds tables
# from it long after the binlog is gone. Two guards, both failing the plan rather than warning:
# - prevent_destroy on the topic: `terraform destroy`, and every change the provider can only make
#   by replacing the topic (a new name, fewer partitions), fail.
# - prevent_destroy on change_topic_shape, which is replaced whenever the name, the partition
#   count or the replication factor changes: so even the in-place changes fail the plan. Adding
#   partitions remaps keys to partitions (do it with the lag at 0: the version guard keeps it
#   correct, but per-key Kafka order across the boundary is lost); a new replication factor
#   reassigns every partition. To make such a change on purpose, follow infra/README.md
#   ("Changing the change topic"): `terraform state rm` this guard, then apply.
# To retire the topic after the migration, see the runbook, step 7 (a `removed` block with
# destroy = false, then delete it by hand once nobody needs a replay).
resource "kafka_topic" "changes" {
  name               = var.topic_name
  partitions         = var.partitions
  replication_factor = var.replication_factor
  config             = local.change_topic_config

  lifecycle {
    prevent_destroy = true
  }
}

resource "terraform_data" "change_topic_shape" {
  triggers_replace = {
    name               = var.topic_name
    partitions         = var.partitions
    replication_factor = var.replication_factor
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "kafka_topic" "dlq" {
  name               = var.dlq_topic_name
  partitions         = var.dlq_partitions
  replication_factor = var.replication_factor
  config             = local.dlq_topic_config
}

# The data-access layer's repair queue (access.repair_topic): failed second writes during the
# cutover, and in `complete` the journal of every write (access.journal_complete), which is what
# makes a rollback from `complete` possible. Entries hold a row's key, never its values. Keep them
# until the repair worker applied them: retention (repair_retention_ms, 30 days by default) must
# outlast any worker outage; the runbook waits for the worker's lag to reach 0 before each
# rollback.
resource "kafka_topic" "repair" {
  count = var.repair_topic_name == null ? 0 : 1

  name               = var.repair_topic_name
  partitions         = var.repair_partitions
  replication_factor = var.replication_factor
  config = merge({
    "cleanup.policy"                 = "delete"
    "retention.ms"                   = tostring(var.repair_retention_ms)
    "min.insync.replicas"            = tostring(var.min_insync_replicas)
    "unclean.leader.election.enable" = "false"
  }, var.extra_repair_topic_config)
}

# --- ACLs (SASL/SCRAM principals such as "User:dms", "User:cutover") -----------------------------
# Set the principals to manage them here. Leave them null when ACLs are managed elsewhere or the
# cluster allows everyone when no ACL is found (MSK's default). With
# allow.everyone.if.no.acl.found = false, every principal below needs its ACLs, or that part of
# the migration stops: DMS can't produce, cutover can't consume or dead-letter, the service can't
# queue repairs (and a rollback from live/complete loses its catch-up), the worker can't drain.

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

# The data-access layer inside the service produces repair entries (Write, Describe).
resource "kafka_acl" "access_repair_write" {
  for_each = var.access_principal == null || var.repair_topic_name == null ? toset([]) : toset(["Write", "Describe"])

  resource_name       = kafka_topic.repair[0].name
  resource_type       = "Topic"
  acl_principal       = var.access_principal
  acl_host            = "*"
  acl_operation       = each.value
  acl_permission_type = "Allow"
}

# The repair worker consumes them (Read, Describe) in the group access.repair_group.
resource "kafka_acl" "repair_worker_read" {
  for_each = var.repair_worker_principal == null || var.repair_topic_name == null ? toset([]) : toset(["Read", "Describe"])

  resource_name       = kafka_topic.repair[0].name
  resource_type       = "Topic"
  acl_principal       = var.repair_worker_principal
  acl_host            = "*"
  acl_operation       = each.value
  acl_permission_type = "Allow"
}

resource "kafka_acl" "repair_worker_group" {
  count = var.repair_worker_principal == null || var.repair_topic_name == null ? 0 : 1

  resource_name       = var.repair_group_id
  resource_type       = "Group"
  acl_principal       = var.repair_worker_principal
  acl_host            = "*"
  acl_operation       = "Read"
  acl_permission_type = "Allow"
}
