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
}

variable "write_capacity" {
  description = "Table write capacity units when billing_mode = PROVISIONED (ignored otherwise). Size for the full load and replays, not just steady-state CDC."
  type        = number
  default     = 0
}

variable "gsi_read_capacity" {
  description = "Read capacity units of every GSI when billing_mode = PROVISIONED (ignored otherwise)."
  type        = number
  default     = 0
}

variable "gsi_write_capacity" {
  description = "Write capacity units of every GSI when billing_mode = PROVISIONED (ignored otherwise). A GSI without enough write capacity throttles writes to the base table."
  type        = number
  default     = 0
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
