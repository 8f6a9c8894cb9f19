# DynamoDB tables generated from the mapping, never written by hand:
#
#   cutover tables render --format json > tables.json
#
# prints one entry per target table (key schema, attribute definitions, GSIs, TTL attribute and
# the source tables that write it). This module turns each entry into an aws_dynamodb_table, so
# the tables always match what `cutover run` writes. Change the mapping, re-render, re-apply.

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

locals {
  region   = data.aws_region.current.name
  rendered = jsondecode(var.tables_json)

  # Normalise every entry into one shape. `range_key` may be null (hash-only table), GSIs may be
  # an empty list, and a GSI's `range_key` may be null.
  tables = {
    for key, t in local.rendered.tables : key => {
      name       = t.name
      hash_key   = t.hash_key.name
      range_key  = try(t.range_key.name, null)
      attributes = [for a in t.attributes : { name = a.name, type = a.type }]
      # Indexed loops: a missing or null list counts as empty, without unifying tuple types.
      gsis = [
        for i in range(try(length(t.global_secondary_indexes), 0)) : {
          name               = t.global_secondary_indexes[i].name
          hash_key           = t.global_secondary_indexes[i].hash_key
          range_key          = try(t.global_secondary_indexes[i].range_key, null)
          projection_type    = coalesce(try(t.global_secondary_indexes[i].projection_type, null), "ALL")
          non_key_attributes = try(t.global_secondary_indexes[i].non_key_attributes, null)
        }
      ]
      ttl_attribute = coalesce(try(t.ttl_attribute, null), "_ttl")
      sources       = [for i in range(try(length(t.sources), 0)) : tostring(t.sources[i])]
    }
  }

  provisioned = var.billing_mode == "PROVISIONED"

  # Optional caps on on-demand throughput (PAY_PER_REQUEST only): a runaway replay or a full
  # load with 48 consumers can't run up an unbounded bill, at the price of throttling there.
  on_demand     = !local.provisioned && var.on_demand_throughput != null ? [var.on_demand_throughput] : []
  gsi_on_demand = !local.provisioned && var.gsi_on_demand_throughput != null ? [var.gsi_on_demand_throughput] : []
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name         = each.value.name
  billing_mode = var.billing_mode

  read_capacity  = local.provisioned ? var.read_capacity : null
  write_capacity = local.provisioned ? var.write_capacity : null

  dynamic "on_demand_throughput" {
    for_each = local.on_demand
    content {
      max_read_request_units  = on_demand_throughput.value.max_read_request_units
      max_write_request_units = on_demand_throughput.value.max_write_request_units
    }
  }

  # Recent 6.x releases of the AWS provider deprecate hash_key/range_key in favour of key_schema
  # blocks, which 5.x lacks; these arguments work on both (a deprecation warning at most). See
  # infra/README.md, "Provider notes".
  hash_key  = each.value.hash_key
  range_key = each.value.range_key

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.gsis
    content {
      name               = global_secondary_index.value.name
      hash_key           = global_secondary_index.value.hash_key
      range_key          = global_secondary_index.value.range_key
      projection_type    = global_secondary_index.value.projection_type
      non_key_attributes = global_secondary_index.value.projection_type == "INCLUDE" ? global_secondary_index.value.non_key_attributes : null
      read_capacity      = local.provisioned ? var.gsi_read_capacity : null
      write_capacity     = local.provisioned ? var.gsi_write_capacity : null

      dynamic "on_demand_throughput" {
        for_each = local.gsi_on_demand
        content {
          max_read_request_units  = on_demand_throughput.value.max_read_request_units
          max_write_request_units = on_demand_throughput.value.max_write_request_units
        }
      }
    }
  }

  # Removes expired delete tombstones ({key, _v, _deleted, _ttl}) and rows the mapping gives a
  # TTL. The attribute name comes from the mapping (default "_ttl").
  ttl {
    attribute_name = each.value.ttl_attribute
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = var.kms_key_arn != null
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = var.deletion_protection
  table_class                 = var.table_class

  tags = merge(var.tags, {
    "cutover:target"  = each.value.name
    "cutover:sources" = substr(join(" ", each.value.sources), 0, 256)
  })

  lifecycle {
    precondition {
      condition = alltrue([
        for k in concat(
          [each.value.hash_key],
          each.value.range_key == null ? [] : [each.value.range_key],
          [for g in each.value.gsis : g.hash_key],
          [for g in each.value.gsis : g.range_key if g.range_key != null],
        ) : contains([for a in each.value.attributes : a.name], k)
      ])
      error_message = "Every table and GSI key must be listed in attributes: regenerate tables.json with `cutover tables render --format json`."
    }
  }
}

# Warm throughput: the read/write rate a table (and its GSIs) can take at once, without the
# minutes of throttling while on-demand capacity catches up with a full load that scales to 48
# consumers. Provider 5.100 has no warm_throughput argument (newer releases do), so it is set
# after the table exists through UpdateTable, like the DMS module's UseLargeIntegerValue. Needs the
# AWS CLI (v2, or v1 >= 1.36) and dynamodb:UpdateTable + DescribeTable where terraform runs.
# Pre-warming bills once per raise; it can't be lowered again (it is a floor, not a cap).
resource "terraform_data" "warm_throughput" {
  for_each = var.warm_throughput == null ? {} : local.tables

  triggers_replace = [
    aws_dynamodb_table.this[each.key].arn,
    var.warm_throughput.read_units_per_second,
    var.warm_throughput.write_units_per_second,
    join(",", [for g in each.value.gsis : g.name]),
  ]

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      table='${each.value.name}'
      warm='ReadUnitsPerSecond=${var.warm_throughput.read_units_per_second},WriteUnitsPerSecond=${var.warm_throughput.write_units_per_second}'
      warm_json='{"ReadUnitsPerSecond":${var.warm_throughput.read_units_per_second},"WriteUnitsPerSecond":${var.warm_throughput.write_units_per_second}}'
      # UpdateTable takes one change at a time: wait until the table, its warm throughput and
      # every index are ACTIVE again (at most 30 minutes).
      wait_active() {
        i=0
        while :; do
          state=$(aws dynamodb describe-table --region '${local.region}' --table-name "$table" --output text \
            --query "join(',', [Table.TableStatus, Table.WarmThroughput.Status || 'ACTIVE', to_string(length(Table.GlobalSecondaryIndexes[?IndexStatus!='ACTIVE' || (WarmThroughput.Status || 'ACTIVE')!='ACTIVE'] || \`[]\`))])")
          [ "$state" = "ACTIVE,ACTIVE,0" ] && return 0
          i=$((i + 1)); [ "$i" -lt 180 ] || { echo "$table: still $state after 30 minutes" >&2; return 1; }
          sleep 10
        done
      }
      wait_active
      aws dynamodb update-table --region '${local.region}' --table-name "$table" --warm-throughput "$warm" >/dev/null
      for index in ${join(" ", [for g in each.value.gsis : "'${g.name}'"])}; do
        wait_active
        aws dynamodb update-table --region '${local.region}' --table-name "$table" \
          --global-secondary-index-updates "[{\"Update\":{\"IndexName\":\"$index\",\"WarmThroughput\":$warm_json}}]" >/dev/null
      done
      wait_active
    EOT
  }
}
