# The chat cutover, wired end to end:
#
#   MySQL (binlog) --DMS full-load-and-cdc--> MSK topic dms.chat (48 partitions, PK-keyed)
#        --cutover run (EKS, one consumer group, HPA on lag)--> DynamoDB table "chat"
#
# Inputs that must exist already: the MySQL database and its DMS credentials secret, an MSK
# cluster with SASL/SCRAM (+ three SCRAM users: admin, dms, cutover), an EKS cluster with an IAM
# OIDC provider, and prometheus-adapter if the HPA is on. See infra/README.md.

# --- Lookups --------------------------------------------------------------------------------------

data "aws_msk_cluster" "this" {
  cluster_name = var.msk_cluster_name
}

data "aws_eks_cluster" "this" {
  name = var.eks_cluster_name
}

data "aws_iam_openid_connect_provider" "eks" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

# SCRAM credentials (MSK format: {"username": "...", "password": "..."}).
#
# The admin user only configures the kafka provider (topics, ACLs): an ephemeral resource
# (Terraform >= 1.10, hashicorp/aws >= 5.81) reads it at plan and apply time and never writes it to
# the plan or the state.
ephemeral "aws_secretsmanager_secret_version" "kafka_admin" {
  secret_id = var.kafka_admin_scram_secret_arn
}

# The dms and cutover passwords must be stored by a resource (the DMS Kafka endpoint's
# sasl_password, the Kubernetes Secret holding cutover.toml), so they are in state whatever
# reads them: keep the state backend encrypted and access-controlled.
data "aws_secretsmanager_secret_version" "dms" {
  secret_id = var.dms_scram_secret_arn
}

data "aws_secretsmanager_secret_version" "cutover" {
  secret_id = var.cutover_scram_secret_arn
}

locals {
  kafka_admin  = jsondecode(ephemeral.aws_secretsmanager_secret_version.kafka_admin.secret_string)
  dms_user     = jsondecode(data.aws_secretsmanager_secret_version.dms.secret_string)
  cutover_user = jsondecode(data.aws_secretsmanager_secret_version.cutover.secret_string)

  # User names aren't secret, and ACL for_each/count can't depend on sensitive values.
  dms_username     = nonsensitive(local.dms_user.username)
  cutover_username = nonsensitive(local.cutover_user.username)

  brokers = data.aws_msk_cluster.this.bootstrap_brokers_sasl_scram

  # Must match [kafka] and [access] in cutover.toml (checked below: the plan fails otherwise).
  topic_name        = "dms.chat"
  dlq_topic_name    = "dms.chat.dlq"
  group_id          = "cutover-chat"
  repair_topic_name = "dms.chat.repair"
  repair_group_id   = "cutover-chat-repair"

  # `cutover tables render --format json > tables.json`: the tables the mapping writes. The DMS
  # selection rules come from the same file, so DMS captures exactly the mapped source tables.
  tables_json = file("${path.module}/tables.json")
  source_tables = [
    for s in distinct(flatten([for t in jsondecode(local.tables_json).tables : t.sources])) : {
      schema = split(".", s)[0]
      table  = split(".", s)[1]
    }
  ]

  # cutover.toml as committed (valid TOML with ${...} placeholders) and as deployed.
  cutover_toml_template = file("${path.module}/cutover.toml")
  cutover_toml = templatefile("${path.module}/cutover.toml", {
    msk_bootstrap_brokers = local.brokers
    aws_region            = var.aws_region
    # TOML basic-string escaping: JSON string escapes (\" \\ \n \uXXXX) are valid TOML escapes.
    kafka_sasl_username = trimsuffix(trimprefix(jsonencode(local.cutover_username), "\""), "\"")
    kafka_sasl_password = trimsuffix(trimprefix(jsonencode(local.cutover_user.password), "\""), "\"")
  })

  dms_message_max_bytes = 1000000
}

# cutover.toml and this stack name the same topics and groups, or the consumers read nothing,
# dead-letter into a topic nobody watches, or queue repairs no worker drains. A `check` block
# would only warn; these preconditions fail the plan (the whole plan: nothing needs to depend on
# this resource), one error per mismatch.
resource "terraform_data" "cutover_toml_matches_infra" {
  input = sha256(local.cutover_toml_template)

  lifecycle {
    precondition {
      condition     = strcontains(local.cutover_toml_template, "topics = [\"${local.topic_name}\"]")
      error_message = "cutover.toml [kafka] topics must be [\"${local.topic_name}\"], the change topic this stack creates."
    }
    precondition {
      condition     = strcontains(local.cutover_toml_template, "dlq_topic = \"${local.dlq_topic_name}\"")
      error_message = "cutover.toml [kafka] dlq_topic must be \"${local.dlq_topic_name}\", the dead-letter topic this stack creates."
    }
    precondition {
      condition     = strcontains(local.cutover_toml_template, "group_id = \"${local.group_id}\"")
      error_message = "cutover.toml [kafka] group_id must be \"${local.group_id}\" (the ACLs and the HPA's lag metric use it)."
    }
    precondition {
      condition     = strcontains(local.cutover_toml_template, "repair_topic = \"${local.repair_topic_name}\"")
      error_message = "cutover.toml [access] repair_topic must be \"${local.repair_topic_name}\", the repair topic this stack creates."
    }
    precondition {
      condition     = strcontains(local.cutover_toml_template, "repair_group = \"${local.repair_group_id}\"")
      error_message = "cutover.toml [access] repair_group must be \"${local.repair_group_id}\" (the repair worker's ACL uses it)."
    }
    precondition {
      condition     = strcontains(local.cutover_toml_template, "listen = \"0.0.0.0:9464\"")
      error_message = "cutover.toml [telemetry] listen must be \"0.0.0.0:9464\": the probes and Prometheus reach the pods there."
    }
  }
}

# --- Kafka topics ---------------------------------------------------------------------------------

module "topic" {
  source = "../modules/topic"

  topic_name            = local.topic_name
  dlq_topic_name        = local.dlq_topic_name
  partitions            = var.partitions
  replication_factor    = 3
  min_insync_replicas   = 2
  retention_mode        = var.topic_retention_mode
  dms_message_max_bytes = local.dms_message_max_bytes

  # The data-access layer's repair queue, and who may use it.
  repair_topic_name = local.repair_topic_name
  repair_group_id   = local.repair_group_id

  dms_principal           = var.manage_kafka_acls ? "User:${local.dms_username}" : null
  consumer_principal      = var.manage_kafka_acls ? "User:${local.cutover_username}" : null
  consumer_group_id       = local.group_id
  access_principal        = var.manage_kafka_acls ? var.service_kafka_principal : null
  repair_worker_principal = var.manage_kafka_acls ? coalesce(var.repair_worker_kafka_principal, var.service_kafka_principal) : null
}

# --- DynamoDB tables (rendered from the mapping) --------------------------------------------------

module "tables" {
  source = "../modules/dynamodb_tables"

  tables_json            = local.tables_json
  billing_mode           = "PAY_PER_REQUEST"
  point_in_time_recovery = true
  deletion_protection    = var.dynamodb_deletion_protection
  # The full load and a fleet scaled to 48 pods: pre-warm, optionally cap the on-demand rate.
  warm_throughput      = var.dynamodb_warm_throughput
  on_demand_throughput = var.dynamodb_on_demand_throughput
  tags                 = var.tags
}

# --- IAM for the service's data-access layer and its repair worker --------------------------------

module "access" {
  source = "../modules/access"

  name                     = var.name
  table_arns               = values(module.tables.table_arns)
  service_role_names       = var.service_iam_role_names
  repair_worker_role_names = var.repair_worker_iam_role_names
  tags                     = var.tags
}

# --- DMS: MySQL -> Kafka --------------------------------------------------------------------------

module "dms" {
  source = "../modules/dms"

  name          = var.name
  source_tables = local.source_tables

  source_secret_arn         = var.mysql_secret_arn
  source_secret_kms_key_arn = var.mysql_secret_kms_key_arn
  # TLS with the server certificate and host name verified against the MySQL CA.
  source_ssl_mode           = "verify-full"
  source_certificate_arn    = var.mysql_certificate_arn
  source_ca_certificate_pem = var.mysql_ca_certificate_pem

  kafka_brokers       = local.brokers
  kafka_topic         = module.topic.topic_name
  kafka_sasl_username = local.dms_username
  kafka_sasl_password = local.dms_user.password
  message_max_bytes   = local.dms_message_max_bytes

  # The chat mapping keys messages by conversation_id and created_at (not primary-key columns):
  # the before-image must carry them for cutover to see a message move between conversations.
  before_image_column_filter = "non-lob"

  replication_instance_class = var.dms_instance_class
  subnet_ids                 = var.dms_subnet_ids
  security_group_ids         = var.dms_security_group_ids
  create_account_roles       = var.dms_create_account_roles
  start_replication_task     = var.start_replication_task
  permissions_boundary_arn   = var.permissions_boundary_arn

  tags = var.tags
}

# --- Consumers: cutover run on EKS ----------------------------------------------------------------

resource "kubernetes_namespace_v1" "cutover" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of" = "cutover"
    }
  }
}

module "consumer" {
  source = "../modules/consumer"

  name      = "cutover-chat"
  namespace = kubernetes_namespace_v1.cutover.metadata[0].name
  image     = var.cutover_image

  config_toml = local.cutover_toml
  topic_name  = module.topic.topic_name
  partitions  = module.topic.partitions

  autoscaling_enabled = var.consumer_autoscaling
  replicas            = var.consumer_replicas
  min_replicas        = var.consumer_min_replicas
  # max_replicas defaults to the partition count.

  termination_grace_period_seconds = 45
  drain_timeout_seconds            = 30
  create_pod_monitor               = var.create_pod_monitor

  table_arns               = values(module.tables.table_arns)
  oidc_provider_arn        = data.aws_iam_openid_connect_provider.eks.arn
  oidc_provider_url        = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
  permissions_boundary_arn = var.permissions_boundary_arn

  tags = var.tags
}
