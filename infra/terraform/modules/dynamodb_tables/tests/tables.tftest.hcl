# terraform test (plan only, mocked AWS provider: no credentials, no cloud calls).
# Run by scripts/test; by hand: terraform init -backend=false && terraform test

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
}

variables {
  # The shape of `cutover tables render --format json`: one single-table design with a GSI, one
  # hash-only table without GSIs.
  tables_json = <<-EOT
    {
      "tables": {
        "chat": {
          "name": "chat",
          "hash_key": { "name": "pk", "type": "S" },
          "range_key": { "name": "sk", "type": "S" },
          "attributes": [
            { "name": "gsi1pk", "type": "S" }, { "name": "gsi1sk", "type": "S" },
            { "name": "pk", "type": "S" }, { "name": "sk", "type": "S" }
          ],
          "global_secondary_indexes": [
            { "name": "gsi1", "hash_key": "gsi1pk", "range_key": "gsi1sk", "projection_type": "ALL" }
          ],
          "ttl_attribute": "_ttl",
          "sources": ["chat.conversation", "chat.message"]
        },
        "users": {
          "name": "users",
          "hash_key": { "name": "id", "type": "N" },
          "range_key": null,
          "attributes": [{ "name": "id", "type": "N" }],
          "global_secondary_indexes": [],
          "ttl_attribute": "_ttl",
          "sources": ["app.users"]
        }
      }
    }
  EOT
}

run "defaults_on_demand_protected_with_ttl" {
  command = plan

  assert {
    condition     = length(aws_dynamodb_table.this) == 2
    error_message = "One table per tables.json entry."
  }
  assert {
    condition = alltrue([
      for t in aws_dynamodb_table.this : t.billing_mode == "PAY_PER_REQUEST" && t.deletion_protection_enabled && t.point_in_time_recovery[0].enabled
    ])
    error_message = "Tables are on-demand, deletion-protected and have PITR by default."
  }
  assert {
    condition     = alltrue([for t in aws_dynamodb_table.this : t.ttl[0].attribute_name == "_ttl" && t.ttl[0].enabled])
    error_message = "TTL is enabled on the mapping's ttl attribute (it removes delete tombstones)."
  }
  assert {
    condition     = aws_dynamodb_table.this["users"].range_key == null && length(aws_dynamodb_table.this["users"].global_secondary_index) == 0
    error_message = "A hash-only table without GSIs is rendered as such."
  }
  assert {
    condition     = one(aws_dynamodb_table.this["chat"].global_secondary_index).name == "gsi1" && one(aws_dynamodb_table.this["chat"].global_secondary_index).range_key == "gsi1sk"
    error_message = "The GSI comes from tables.json."
  }
  assert {
    condition     = alltrue([for t in aws_dynamodb_table.this : length(t.on_demand_throughput) == 0])
    error_message = "No on-demand cap unless one is asked for."
  }
  assert {
    condition     = length(terraform_data.warm_throughput) == 0
    error_message = "No warm-throughput step unless one is asked for."
  }
}

run "on_demand_caps_and_warm_throughput" {
  command = plan

  variables {
    on_demand_throughput     = { max_read_request_units = 20000, max_write_request_units = 40000 }
    gsi_on_demand_throughput = { max_write_request_units = 40000 }
    warm_throughput          = { read_units_per_second = 20000, write_units_per_second = 10000 }
  }

  assert {
    condition     = aws_dynamodb_table.this["chat"].on_demand_throughput[0].max_write_request_units == 40000 && aws_dynamodb_table.this["chat"].on_demand_throughput[0].max_read_request_units == 20000
    error_message = "The table gets the on-demand cap."
  }
  assert {
    condition     = one(aws_dynamodb_table.this["chat"].global_secondary_index).on_demand_throughput[0].max_write_request_units == 40000
    error_message = "The GSI gets its on-demand cap."
  }


  assert {
    condition     = length(terraform_data.warm_throughput) == 2
    error_message = "Every table is pre-warmed."
  }
}

run "provisioned_with_capacities" {
  command = plan

  variables {
    billing_mode       = "PROVISIONED"
    read_capacity      = 100
    write_capacity     = 200
    gsi_read_capacity  = 50
    gsi_write_capacity = 200
  }

  assert {
    condition     = aws_dynamodb_table.this["chat"].write_capacity == 200 && one(aws_dynamodb_table.this["chat"].global_secondary_index).write_capacity == 200
    error_message = "Provisioned capacities reach the table and its GSIs."
  }
}

run "provisioned_without_gsis_needs_no_gsi_capacity" {
  command = plan

  variables {
    tables_json    = "{\"tables\": {\"users\": {\"name\": \"users\", \"hash_key\": {\"name\": \"id\", \"type\": \"N\"}, \"range_key\": null, \"attributes\": [{\"name\": \"id\", \"type\": \"N\"}], \"global_secondary_indexes\": [], \"ttl_attribute\": \"_ttl\", \"sources\": [\"app.users\"]}}}"
    billing_mode   = "PROVISIONED"
    read_capacity  = 10
    write_capacity = 10
  }

  assert {
    condition     = aws_dynamodb_table.this["users"].read_capacity == 10
    error_message = "A PROVISIONED table without GSIs plans with zero GSI capacity."
  }
}

# Every invalid input is reported at once, each on its own variable.
run "rejects_provisioned_without_capacity_and_with_on_demand_caps" {
  command = plan
  variables {
    billing_mode             = "PROVISIONED"
    gsi_read_capacity        = 50
    on_demand_throughput     = { max_write_request_units = 100 }
    gsi_on_demand_throughput = { max_write_request_units = 0 }
  }
  expect_failures = [
    var.read_capacity,
    var.write_capacity,
    var.gsi_write_capacity,
    var.on_demand_throughput,
    var.gsi_on_demand_throughput,
  ]
}

run "rejects_a_key_missing_from_attributes" {
  command = plan
  variables {
    tables_json = "{\"tables\": {\"t\": {\"name\": \"t\", \"hash_key\": {\"name\": \"pk\", \"type\": \"S\"}, \"range_key\": null, \"attributes\": [{\"name\": \"other\", \"type\": \"S\"}], \"global_secondary_indexes\": [], \"sources\": []}}}"
  }
  expect_failures = [aws_dynamodb_table.this]
}

run "rejects_json_without_tables" {
  command = plan
  variables {
    tables_json = "{\"chat\": {}}"
  }
  expect_failures = [var.tables_json]
}
