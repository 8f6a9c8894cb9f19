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
      source  = "hashicorp/aws"
      version = ">= 6.0.0"
    }
  }
}

locals {
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
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name         = each.value.name
  billing_mode = var.billing_mode

  read_capacity  = local.provisioned ? var.read_capacity : null
  write_capacity = local.provisioned ? var.write_capacity : null

  # Newer 6.x releases of the AWS provider deprecate hash_key/range_key in favour of key_schema
  # blocks; these arguments remain supported there (a deprecation warning at most). See
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
    precondition {
      condition     = !local.provisioned || (var.read_capacity > 0 && var.write_capacity > 0)
      error_message = "billing_mode = PROVISIONED needs read_capacity and write_capacity > 0."
    }
  }
}
