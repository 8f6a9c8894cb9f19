variable "aws_region" {
  description = "Region of MySQL, MSK, DMS, EKS and the DynamoDB tables."
  type        = string
}

variable "name" {
  description = "Name prefix of the DMS resources and the consumer Deployment."
  type        = string
  default     = "chat-cutover"
}

variable "tags" {
  description = "Default tags for every AWS resource."
  type        = map(string)
  default = {
    project = "chat-cutover"
  }
}

# --- MySQL / DMS ----------------------------------------------------------------------------------

variable "mysql_secret_arn" {
  description = "Secrets Manager secret with the MySQL connection for DMS (JSON: host, port, username, password)."
  type        = string
}

variable "mysql_secret_kms_key_arn" {
  description = "Customer managed KMS key of mysql_secret_arn, if any."
  type        = string
  default     = null
}

variable "mysql_certificate_arn" {
  description = "Existing DMS certificate with the MySQL server's CA (DMS connects with ssl_mode verify-full). Give this or mysql_ca_certificate_pem."
  type        = string
  default     = null
}

variable "mysql_ca_certificate_pem" {
  description = "PEM CA bundle of the MySQL server, imported as a DMS certificate (RDS/Aurora: file(\"<region>-bundle.pem\") from https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem)."
  type        = string
  default     = null
}

variable "dms_subnet_ids" {
  description = "Private subnets (two AZs or more) for the DMS replication instance."
  type        = list(string)
}

variable "dms_security_group_ids" {
  description = "Security groups of the DMS replication instance (egress to MySQL 3306 and MSK 9096)."
  type        = list(string)
}

variable "dms_instance_class" {
  description = "DMS replication instance class."
  type        = string
  default     = "dms.r5.large"
}

variable "dms_create_account_roles" {
  description = "Create the account-global dms-vpc-role and dms-cloudwatch-logs-role (false if they already exist)."
  type        = bool
  default     = true
}

variable "start_replication_task" {
  description = "Start the DMS full-load-and-cdc task. false on the first apply; true once the consumers run (runbook step 1)."
  type        = bool
  default     = false
}

# --- Kafka (MSK) ----------------------------------------------------------------------------------

variable "msk_cluster_name" {
  description = "Existing MSK cluster with SASL/SCRAM client authentication and TLS."
  type        = string
}

variable "kafka_admin_scram_secret_arn" {
  description = "Secrets Manager secret (AmazonMSK_ prefix, associated with the cluster) of the SCRAM user Terraform creates topics and ACLs as. JSON: username, password."
  type        = string
}

variable "dms_scram_secret_arn" {
  description = "Secrets Manager secret of the SCRAM user DMS produces as. JSON: username, password."
  type        = string
}

variable "cutover_scram_secret_arn" {
  description = "Secrets Manager secret of the SCRAM user cutover consumes (and dead-letters) as. JSON: username, password."
  type        = string
}

variable "manage_kafka_acls" {
  description = "Create topic/group ACLs for DMS, cutover, the service's data-access layer and the repair worker (needs an admin user allowed to alter ACLs). Required when the cluster sets allow.everyone.if.no.acl.found = false."
  type        = bool
  default     = true
}

variable "service_kafka_principal" {
  description = "Kafka principal of the service that embeds the data-access layer (e.g. \"User:chat-api\"): it produces repair entries to the repair topic. Required with manage_kafka_acls."
  type        = string
  default     = null

  validation {
    condition     = !var.manage_kafka_acls || try(can(regex("^User:.+$", var.service_kafka_principal)), false)
    error_message = "manage_kafka_acls needs service_kafka_principal (\"User:<SCRAM user of the service>\"): without its ACL the service can't queue repairs, and a rollback from live or complete loses the writes MySQL missed."
  }
}

variable "repair_worker_kafka_principal" {
  description = "Kafka principal of the repair worker when it runs as its own job. null: the worker runs inside the service (service_kafka_principal)."
  type        = string
  default     = null

  validation {
    condition     = var.repair_worker_kafka_principal == null || can(regex("^User:.+$", var.repair_worker_kafka_principal))
    error_message = "repair_worker_kafka_principal must look like \"User:<SCRAM user>\"."
  }
}

variable "partitions" {
  description = "Partitions of the change topic: the most consumers that can work at once."
  type        = number
  default     = 48
}

variable "topic_retention_mode" {
  description = "\"unlimited\" or \"tiered\" (MSK tiered storage), see modules/topic."
  type        = string
  default     = "unlimited"
}

# --- DynamoDB -------------------------------------------------------------------------------------

variable "dynamodb_deletion_protection" {
  description = "Deletion protection on the DynamoDB tables."
  type        = bool
  default     = true
}

variable "dynamodb_warm_throughput" {
  description = "Warm throughput of the tables and GSIs (read/write units per second) for the full load, e.g. { read_units_per_second = 12000, write_units_per_second = 20000 }. null: DynamoDB's default. See modules/dynamodb_tables."
  type = object({
    read_units_per_second  = number
    write_units_per_second = number
  })
  default = null
}

variable "dynamodb_on_demand_throughput" {
  description = "Cap on the tables' on-demand request units per second (max_read_request_units, max_write_request_units). null: no cap."
  type = object({
    max_read_request_units  = optional(number)
    max_write_request_units = optional(number)
  })
  default = null
}

# --- The service (data-access layer) --------------------------------------------------------------

variable "service_iam_role_names" {
  description = "IAM roles of the service that embeds the data-access layer: the CutoverAccess policy is attached to them. []: attach module.access's policy yourself."
  type        = list(string)
  default     = []
}

variable "repair_worker_iam_role_names" {
  description = "IAM roles of a repair worker that runs as its own job (CutoverRepair). []: it runs inside the service."
  type        = list(string)
  default     = []
}

variable "permissions_boundary_arn" {
  description = "IAM permissions boundary for every role this stack creates (DMS roles, the consumers' IRSA role). null: none."
  type        = string
  default     = null
}

# --- Consumers (EKS) ------------------------------------------------------------------------------

variable "eks_cluster_name" {
  description = "EKS cluster that runs the consumers (its IAM OIDC provider must exist, for IRSA)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the consumers (created here)."
  type        = string
  default     = "cutover"
}

variable "cutover_image" {
  description = "cutover container image, pinned (tag or digest)."
  type        = string
}

variable "consumer_autoscaling" {
  description = "Scale consumers with the HPA on lag (needs prometheus-adapter). false: fixed consumer_replicas."
  type        = bool
  default     = true
}

variable "consumer_replicas" {
  description = "Consumers when consumer_autoscaling = false (0 stops them; at most partitions)."
  type        = number
  default     = 6
}

variable "consumer_min_replicas" {
  description = "HPA minimum consumers."
  type        = number
  default     = 3
}

variable "create_pod_monitor" {
  description = "Create a Prometheus Operator PodMonitor for the consumers."
  type        = bool
  default     = false
}
