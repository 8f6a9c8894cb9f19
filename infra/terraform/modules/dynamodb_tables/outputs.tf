output "table_names" {
  description = "Map from the rendered key to the DynamoDB table name."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "table_arns" {
  description = "Map from the rendered key to the table ARN (pass values() to modules/consumer table_arns)."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "index_arns" {
  description = "Map from the rendered key to the ARNs of the table's GSIs (empty list when it has none)."
  value = {
    for k, t in aws_dynamodb_table.this : k => [
      for g in local.tables[k].gsis : "${t.arn}/index/${g.name}"
    ]
  }
}

output "ttl_attributes" {
  description = "Map from the rendered key to the TTL attribute enabled on the table."
  value       = { for k, t in local.tables : k => t.ttl_attribute }
}
