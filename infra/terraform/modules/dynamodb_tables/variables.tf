variable "tables_json" {
  description = "The output of `cutover tables render --format json` (pass file(\"tables.json\")): {\"tables\": {<key>: {name, hash_key {name,type}, range_key {name,type}|null, attributes [{name,type}], global_secondary_indexes [{name, hash_key, range_key|null, projection_type}], ttl_attribute, sources}}}."
  type        = string

  validation {
    condition     = can(jsondecode(var.tables_json).tables)
    error_message = "tables_json must be JSON with a top-level \"tables\" object (cutover tables render --format json)."
  }
}

variable "billing_mode" {
  description = "PAY_PER_REQUEST (on-demand, default: absorbs the full-load burst and replays without capacity planning) or PROVISIONED (then set read_capacity/write_capacity and the gsi_* capacities)."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  description = "Table read capacity units when billing_mode = PROVISIONED (ignored otherwise)."
  type        = number
  default     = 0

  validation {
    condition     = var.billing_mode != "PROVISIONED" || var.read_capacity >= 1
    error_message = "billing_mode = PROVISIONED needs read_capacity >= 1."
  }
}

variable "write_capacity" {
  description = "Table write capacity units when billing_mode = PROVISIONED (ignored otherwise). Size for the full load and replays, not just steady-state CDC."
  type        = number
  default     = 0

  validation {
    condition     = var.billing_mode != "PROVISIONED" || var.write_capacity >= 1
    error_message = "billing_mode = PROVISIONED needs write_capacity >= 1."
  }
}

variable "gsi_read_capacity" {
  description = "Read capacity units of every GSI when billing_mode = PROVISIONED (ignored otherwise)."
  type        = number
  default     = 0

  validation {
    # Needed only when some table has a GSI.
    condition = var.billing_mode != "PROVISIONED" || var.gsi_read_capacity >= 1 || alltrue([
      for t in try(values(jsondecode(var.tables_json).tables), []) : try(length(t.global_secondary_indexes), 0) == 0
    ])
    error_message = "billing_mode = PROVISIONED with GSIs in tables_json needs gsi_read_capacity >= 1."
  }
}

variable "gsi_write_capacity" {
  description = "Write capacity units of every GSI when billing_mode = PROVISIONED (ignored otherwise). A GSI without enough write capacity throttles writes to the base table."
  type        = number
  default     = 0

  validation {
    condition = var.billing_mode != "PROVISIONED" || var.gsi_write_capacity >= 1 || alltrue([
      for t in try(values(jsondecode(var.tables_json).tables), []) : try(length(t.global_secondary_indexes), 0) == 0
    ])
    error_message = "billing_mode = PROVISIONED with GSIs in tables_json needs gsi_write_capacity >= 1: a GSI without write capacity throttles every write to its table."
  }
}

variable "on_demand_throughput" {
  description = "PAY_PER_REQUEST only: maximum read/write request units per second of every table (on_demand_throughput). null: no cap. A cap bounds the cost of a runaway replay; requests above it are throttled (cutover retries them and counts cutover_dynamodb_throttles_total)."
  type = object({
    max_read_request_units  = optional(number)
    max_write_request_units = optional(number)
  })
  default = null

  validation {
    condition     = var.on_demand_throughput == null || var.billing_mode == "PAY_PER_REQUEST"
    error_message = "on_demand_throughput applies to billing_mode = PAY_PER_REQUEST only."
  }
  validation {
    condition = var.on_demand_throughput == null || alltrue([
      for v in [try(var.on_demand_throughput.max_read_request_units, null), try(var.on_demand_throughput.max_write_request_units, null)] :
      v == null || try(v == -1 || v >= 1, false)
    ])
    error_message = "on_demand_throughput limits must be >= 1 (or -1 for no limit)."
  }
}

variable "gsi_on_demand_throughput" {
  description = "PAY_PER_REQUEST only: maximum read/write request units per second of every GSI. null: no cap."
  type = object({
    max_read_request_units  = optional(number)
    max_write_request_units = optional(number)
  })
  default = null

  validation {
    condition     = var.gsi_on_demand_throughput == null || var.billing_mode == "PAY_PER_REQUEST"
    error_message = "gsi_on_demand_throughput applies to billing_mode = PAY_PER_REQUEST only."
  }
  validation {
    condition = var.gsi_on_demand_throughput == null || alltrue([
      for v in [try(var.gsi_on_demand_throughput.max_read_request_units, null), try(var.gsi_on_demand_throughput.max_write_request_units, null)] :
      v == null || try(v == -1 || v >= 1, false)
    ])
    error_message = "gsi_on_demand_throughput limits must be >= 1 (or -1 for no limit)."
  }
}

variable "warm_throughput" {
  description = "Warm throughput (read/write units per second) set on every table and GSI after creation, so the full load and a 48-consumer fleet don't start throttled while on-demand capacity ramps up. Set through the AWS CLI (provider 5.100 has no warm_throughput argument). null: DynamoDB's default."
  type = object({
    read_units_per_second  = number
    write_units_per_second = number
  })
  default = null

  validation {
    condition = var.warm_throughput == null || try(
      var.warm_throughput.read_units_per_second >= 1 && var.warm_throughput.write_units_per_second >= 1 &&
      floor(var.warm_throughput.read_units_per_second) == var.warm_throughput.read_units_per_second &&
      floor(var.warm_throughput.write_units_per_second) == var.warm_throughput.write_units_per_second,
    false)
    error_message = "warm_throughput needs whole read_units_per_second and write_units_per_second >= 1."
  }
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery (continuous backups) on every table."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Enable deletion protection on every table. Keep true in production; turn off deliberately before removing a table (e.g. an abandoned chat-v2 rebuild)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for encryption at rest. null: the AWS owned key. With a CMK, the writer role also needs kms permissions on it (not granted by modules/consumer)."
  type        = string
  default     = null
}

variable "table_class" {
  description = "STANDARD or STANDARD_INFREQUENT_ACCESS."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "STANDARD_INFREQUENT_ACCESS"], var.table_class)
    error_message = "table_class must be STANDARD or STANDARD_INFREQUENT_ACCESS."
  }
}

variable "tags" {
  description = "Tags for every table (cutover:target and cutover:sources are added)."
  type        = map(string)
  default     = {}
}
