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
  description = "Create topic/group ACLs for the DMS and cutover SCRAM users (needs an admin user allowed to alter ACLs)."
  type        = bool
  default     = true
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
