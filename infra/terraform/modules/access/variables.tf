variable "name" {
  description = "Prefix of the policy names (<name>-cutover-access, <name>-cutover-repair)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,100}$", var.name))
    error_message = "name must be 1-100 characters of letters, digits and +=,.@_- (IAM policy names)."
  }
}

variable "table_arns" {
  description = "ARNs of the DynamoDB tables the service migrates (modules/dynamodb_tables table_arns). The policies cover exactly these tables: the layer reads and writes items and queries base tables only, never an index."
  type        = list(string)

  validation {
    condition     = length(var.table_arns) > 0 && alltrue([for a in var.table_arns : can(regex("^arn:[^:]+:dynamodb:[^:]+:[0-9]{12}:table/[^/]+$", a))])
    error_message = "table_arns must be non-empty and hold DynamoDB table ARNs (arn:...:dynamodb:<region>:<account>:table/<name>), without /index/ suffixes."
  }
}

variable "service_role_names" {
  description = "Names of the IAM roles of the service that embeds the data-access layer (its IRSA, ECS task or Lambda role). CutoverAccess is attached to each. []: attach it yourself (output service_policy_arn)."
  type        = list(string)
  default     = []
}

variable "repair_worker_role_names" {
  description = "Names of the IAM roles that run the repair worker (cutover::access::repair::run_worker). The same role as the service when the worker runs inside it; then CutoverAccess already covers it and this may stay []."
  type        = list(string)
  default     = []
}

variable "policy_path" {
  description = "IAM path of the policies."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([!-~]+/)?$", var.policy_path))
    error_message = "policy_path must start and end with / (e.g. / or /cutover/)."
  }
}

variable "tags" {
  description = "Tags for the policies."
  type        = map(string)
  default     = {}
}
