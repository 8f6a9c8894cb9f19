# AWS DMS: MySQL binlog -> Kafka change topic, in exactly the record format `cutover run`
# decodes (format = "dms"; see shared/reference/aws-dms-kafka-format.md in the repository).
#
# MySQL source prerequisites (not settable from here; set them on the DB parameter group / server
# before starting the task, see infra/README.md "MySQL prerequisites"):
#   binlog_format    = ROW   DMS CDC reads row events; STATEMENT/MIXED binlogs carry SQL text,
#                            not the changed rows, and DMS refuses to start CDC.
#   binlog_row_image = FULL  every update carries the complete before and after row. With
#                            MINIMAL/NOBLOB DMS emits partial rows (a missing column would look
#                            like "unchanged" to cutover) and the before-image lacks the columns
#                            cutover needs to detect a key change.
#   binlog retention         long enough to cover the full load plus any outage of DMS. RDS and
#                            Aurora purge binlogs as soon as they can unless told otherwise:
#                              call mysql.rds_set_configuration('binlog retention hours', 24);
#                            If the binlog position DMS needs is purged, the task fails and the
#                            only way back is a new full load.
#   RDS: automated backups enabled (retention > 0), or binary logging is off altogether.
#   The DMS user: SELECT on the migrated schemas, REPLICATION CLIENT, REPLICATION SLAVE.

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Validated (terraform validate + test) on 5.100.0. 6.x: nothing used here was removed in
      # 6.0 (aws_region.name is deprecated there: a warning). See infra/README.md, "Provider notes".
      version = ">= 5.100.0, < 7.0.0"
    }
  }
}

data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # `name` exists on every 5.x and 6.x release (6.x adds `region` and deprecates `name`).
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # MySQL source settings as extra connection attributes: the provider's mysql_settings block
  # only exists from 6.15, these work on every release and every DMS engine.
  mysql_extra_connection_attributes = join(";", compact([
    "eventsPollInterval=${var.events_poll_interval}",
    var.source_server_timezone == null ? "" : "serverTimezone=${var.source_server_timezone}",
  ]))

  # verify-ca / verify-full: the CA given as an existing DMS certificate, or imported here.
  source_certificate_arn = (var.source_certificate_arn != null ? var.source_certificate_arn :
  var.source_ca_certificate_pem != null ? aws_dms_certificate.source_ca[0].certificate_arn : null)

  # ---------------------------------------------------------------------------------------------
  # Table mappings: one selection rule per source table, plus (by default) one object-mapping rule
  # per table so that every record is partitioned by the table's primary key. Together with
  # partition_include_schema_table the Kafka key is "schema.table.pk", so all changes of one row
  # go to one partition in commit order, and rows of all tables spread over all partitions.
  # ---------------------------------------------------------------------------------------------
  selection_rules = [
    for i, t in var.source_tables : {
      "rule-type"   = "selection"
      "rule-id"     = tostring(i + 1)
      "rule-name"   = "include-${t.schema}-${t.table}"
      "rule-action" = "include"
      "object-locator" = {
        "schema-name" = t.schema
        "table-name"  = t.table
      }
    }
  ]

  object_mapping_rules = var.partition_by_primary_key ? [
    for i, t in var.source_tables : {
      "rule-type"   = "object-mapping"
      "rule-id"     = tostring(length(var.source_tables) + i + 1)
      "rule-name"   = "kafka-pk-${t.schema}-${t.table}"
      "rule-action" = "map-record-to-record"
      "object-locator" = {
        "schema-name" = t.schema
        "table-name"  = t.table
      }
      "mapping-parameters" = {
        "partition-key-type" = "primary-key"
      }
    }
  ] : []

  table_mappings = jsonencode({
    rules = concat(local.selection_rules, local.object_mapping_rules)
  })

  # ---------------------------------------------------------------------------------------------
  # Task settings. Only the keys that matter here; DMS fills in the rest with its defaults.
  # ---------------------------------------------------------------------------------------------
  task_settings = jsonencode({
    TargetMetadata = {
      # LOBs (TEXT, BLOB, JSON columns) in limited mode: fast, but a LOB larger than LobMaxSize
      # (KB) is TRUNCATED with only a warning in the task log. The default (512 KB) is above
      # DynamoDB's 400 KB item limit, so an oversize value reaches cutover intact and is
      # dead-lettered instead of being stored truncated.
      SupportLobs        = true
      FullLobMode        = false
      LimitedSizeLobMode = true
      LobMaxSize         = var.lob_max_size_kb

      # Full load: tables loaded in parallel, each by several threads.
      ParallelLoadThreads         = var.parallel_load_threads
      ParallelLoadBufferSize      = 500
      ParallelLoadQueuesPerThread = 16 # Kafka targets: 5-512

      # CDC to Kafka: parallel apply. With ParallelApply* the partition key defaults to the
      # table's primary key (not schema.table), which is what spreads one busy table over the
      # whole topic. Records of one key stay in one queue, so per-key order is kept.
      ParallelApplyThreads         = var.parallel_apply_threads
      ParallelApplyBufferSize      = var.parallel_apply_buffer_size
      ParallelApplyQueuesPerThread = var.parallel_apply_queues_per_thread
    }

    FullLoadSettings = {
      # The "target tables" are Kafka messages: never drop or truncate anything.
      TargetTablePrepMode = "DO_NOTHING"
      MaxFullLoadSubTasks = var.max_full_load_subtasks
      CommitRate          = 10000
      # Keep streaming after the load: full-load-and-cdc must not stop at the cached changes.
      StopTaskCachedChangesApplied    = false
      StopTaskCachedChangesNotApplied = false
    }

    # cutover uses the before-image to see that an UPDATE moved a row to another DynamoDB key:
    # it maps the before-image through the key templates and, if the key differs from the one
    # of the new row, tombstones the old item at the same version. The before-image must hold
    # every column used in a key template (primary key AND e.g. conversation_id / created_at in
    # the chat mapping): "pk-only" is enough only when templates use primary-key columns alone.
    # "non-lob" (default) keeps messages small; "all" also carries LOB columns.
    BeforeImageSettings = {
      EnableBeforeImage = true
      FieldName         = "before-image"
      ColumnFilter      = var.before_image_column_filter
    }

    Logging = {
      EnableLogging = true
      LogComponents = [
        { Id = "SOURCE_CAPTURE", Severity = "LOGGER_SEVERITY_DEFAULT" },
        { Id = "SOURCE_UNLOAD", Severity = "LOGGER_SEVERITY_DEFAULT" },
        { Id = "TARGET_LOAD", Severity = "LOGGER_SEVERITY_DEFAULT" },
        { Id = "TARGET_APPLY", Severity = "LOGGER_SEVERITY_DEFAULT" },
        { Id = "TASK_MANAGER", Severity = "LOGGER_SEVERITY_DEFAULT" },
      ]
    }

    ChangeProcessingDdlHandlingPolicy = {
      HandleSourceTableDropped   = true
      HandleSourceTableTruncated = true
      HandleSourceTableAltered   = true
    }

    # Nothing is skipped silently. DMS's defaults log and go on (LOG_ERROR, IGNORE_RECORD,
    # SUSPEND_TABLE): a row that then never reaches Kafka is a row DynamoDB never gets, and only
    # `cutover verify` would notice. Every policy below stops the task instead, so the DMS task
    # state (an EventBridge/CloudWatch alarm, runbook step 5) says something is wrong, and the
    # stream resumes from its checkpoint once it is fixed.
    ErrorBehavior = {
      # A table whose rows can't be captured stops the task instead of silently going missing.
      FailOnNoTablesCaptured     = true
      TableErrorPolicy           = "STOP_TASK"
      TableErrorEscalationPolicy = "STOP_TASK"
      DataErrorPolicy            = "STOP_TASK"
      DataErrorEscalationPolicy  = "STOP_TASK"
      # A value DMS had to cut short (e.g. a column wider than DMS's type mapping allows) is a
      # wrong value in DynamoDB: stop. (Oversize LOBs in limited LOB mode are not covered by
      # this policy: see LobMaxSize above.)
      DataTruncationErrorPolicy = "STOP_TASK"
      # Apply conflicts (a DELETE of a row the target lacks, an INSERT of a duplicate key, an
      # UPDATE of a missing row) can't happen on an append-only Kafka target; if DMS ever
      # reports one, it is a bug worth stopping for rather than a record to drop.
      ApplyErrorDeletePolicy     = "STOP_TASK"
      ApplyErrorInsertPolicy     = "STOP_TASK"
      ApplyErrorUpdatePolicy     = "STOP_TASK"
      ApplyErrorEscalationPolicy = "STOP_TASK"
      # TRUNCATE TABLE on the source carries no per-row deletes: cutover would never remove
      # those items. Fail the task so a person runs `cutover verify --repair` for that table.
      ApplyErrorFailOnTruncationDdl = true
      # Keep retrying transient source/target errors (MSK broker restarts, failovers).
      RecoverableErrorCount    = -1
      RecoverableErrorInterval = 5
    }
  })
}

# =================================================================================================
# IAM: the account-global roles DMS looks up by name, and the endpoint's Secrets Manager role.
# =================================================================================================

# Every trust policy carries aws:SourceAccount (confused-deputy protection): DMS may assume these
# roles only on behalf of this account's resources. DMS honours the condition from engine 3.4.7
# (var.engine_version is validated accordingly).
data "aws_iam_policy_document" "dms_assume" {
  statement {
    sid     = "DmsAssume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["dms.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# dms-vpc-role and dms-cloudwatch-logs-role have fixed names and exist once per account. Set
# create_account_roles = false when another stack (or an earlier DMS setup) already owns them.
resource "aws_iam_role" "dms_vpc" {
  count                = var.create_account_roles ? 1 : 0
  name                 = "dms-vpc-role"
  assume_role_policy   = data.aws_iam_policy_document.dms_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "dms_vpc" {
  count      = var.create_account_roles ? 1 : 0
  role       = aws_iam_role.dms_vpc[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonDMSVPCManagementRole"
}

resource "aws_iam_role" "dms_cloudwatch_logs" {
  count                = var.create_account_roles ? 1 : 0
  name                 = "dms-cloudwatch-logs-role"
  assume_role_policy   = data.aws_iam_policy_document.dms_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "dms_cloudwatch_logs" {
  count      = var.create_account_roles ? 1 : 0
  role       = aws_iam_role.dms_cloudwatch_logs[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonDMSCloudWatchLogsRole"
}

# The role DMS assumes to read the MySQL credentials secret. DMS assumes it through the regional
# service principal, so both forms are trusted.
data "aws_iam_policy_document" "secrets_assume" {
  statement {
    sid     = "DmsAssume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["dms.amazonaws.com", "dms.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "secrets_access" {
  statement {
    sid       = "ReadSourceSecret"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [var.source_secret_arn]
  }

  dynamic "statement" {
    for_each = var.source_secret_kms_key_arn == null ? [] : [var.source_secret_kms_key_arn]
    content {
      sid       = "DecryptSourceSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "secrets_access" {
  name                 = "${var.name}-dms-secrets"
  assume_role_policy   = data.aws_iam_policy_document.secrets_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "secrets_access" {
  name   = "read-mysql-secret"
  role   = aws_iam_role.secrets_access.id
  policy = data.aws_iam_policy_document.secrets_access.json
}

# IAM is eventually consistent: a role created a moment ago can still be unknown to DMS, which
# then fails CreateReplicationSubnetGroup ("dms-vpc-role is not configured properly") or the
# endpoint's secrets check. The `time` provider's time_sleep is the usual fix; this module stays
# on providers every DMS user already has, so it waits with the built-in terraform_data and a
# `sleep` (a POSIX shell where terraform runs, like the UseLargeIntegerValue step below). It waits
# again only when a role is replaced. iam_propagation_wait_seconds = 0 skips it (roles that
# already existed).
resource "terraform_data" "iam_propagation" {
  count = var.iam_propagation_wait_seconds > 0 ? 1 : 0

  triggers_replace = compact([
    try(aws_iam_role_policy_attachment.dms_vpc[0].id, ""),
    try(aws_iam_role_policy_attachment.dms_cloudwatch_logs[0].id, ""),
    aws_iam_role.secrets_access.unique_id,
    aws_iam_role_policy.secrets_access.id,
  ])

  provisioner "local-exec" {
    command = "sleep ${var.iam_propagation_wait_seconds}"
  }
}

# =================================================================================================
# Replication instance
# =================================================================================================

resource "aws_dms_replication_subnet_group" "this" {
  replication_subnet_group_id          = "${var.name}-dms"
  replication_subnet_group_description = "cutover DMS replication instance subnets (${var.name})"
  subnet_ids                           = var.subnet_ids
  tags                                 = var.tags

  # DMS needs dms-vpc-role (created and propagated) before it can create a subnet group.
  depends_on = [aws_iam_role_policy_attachment.dms_vpc, terraform_data.iam_propagation]
}

resource "aws_dms_replication_instance" "this" {
  replication_instance_id     = "${var.name}-dms"
  replication_instance_class  = var.replication_instance_class
  allocated_storage           = var.allocated_storage_gb
  engine_version              = var.engine_version
  multi_az                    = var.multi_az
  publicly_accessible         = false
  auto_minor_version_upgrade  = false
  apply_immediately           = true
  replication_subnet_group_id = aws_dms_replication_subnet_group.this.replication_subnet_group_id
  vpc_security_group_ids      = var.security_group_ids
  kms_key_arn                 = var.kms_key_arn
  tags                        = var.tags

  depends_on = [
    aws_iam_role_policy_attachment.dms_vpc,
    aws_iam_role_policy_attachment.dms_cloudwatch_logs,
    terraform_data.iam_propagation,
  ]
}

# =================================================================================================
# Endpoints
# =================================================================================================

# The CA bundle of the MySQL server (RDS/Aurora: the region's bundle from
# https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem), when it isn't already
# a DMS certificate (source_certificate_arn).
resource "aws_dms_certificate" "source_ca" {
  count           = var.source_certificate_arn == null && var.source_ca_certificate_pem != null ? 1 : 0
  certificate_id  = "${var.name}-mysql-ca"
  certificate_pem = var.source_ca_certificate_pem
  tags            = var.tags
}

# MySQL source. Connection details (host, port, username, password) come from the Secrets Manager
# secret; nothing secret is in this configuration or its state.
resource "aws_dms_endpoint" "mysql_source" {
  endpoint_id                     = "${var.name}-mysql-source"
  endpoint_type                   = "source"
  engine_name                     = "mysql"
  secrets_manager_arn             = var.source_secret_arn
  secrets_manager_access_role_arn = aws_iam_role.secrets_access.arn
  # verify-full by default: TLS, the server certificate checked against source_certificate_arn's
  # CA, and the host name checked against it.
  ssl_mode        = var.source_ssl_mode
  certificate_arn = local.source_certificate_arn
  kms_key_arn     = var.kms_key_arn
  tags            = var.tags

  # eventsPollInterval: seconds between binlog polls when the database is idle. serverTimezone:
  # time zone of TIMESTAMP/DATETIME values on the source (cutover stores datetimes as given).
  extra_connection_attributes = local.mysql_extra_connection_attributes

  depends_on = [aws_iam_role_policy.secrets_access, terraform_data.iam_propagation]
}

# Kafka target. Every setting below is what cutover's decoder (kafka.format = "dms") expects.
resource "aws_dms_endpoint" "kafka_target" {
  endpoint_id   = "${var.name}-kafka-target"
  endpoint_type = "target"
  engine_name   = "kafka"
  tags          = var.tags

  # Stop/restart the task around an endpoint change instead of failing the modification.
  pause_replication_tasks = true

  kafka_settings {
    # Comma-separated bootstrap brokers (MSK: bootstrap_brokers_sasl_scram, port 9096).
    broker = var.kafka_brokers
    # One topic for all tables; records name their schema and table in metadata.
    topic = var.kafka_topic
    # One JSON object per line (no pretty printing): smaller messages, same content.
    message_format = "json-unformatted"
    # REQUIRED. Adds transaction-id, transaction-record-id, commit-timestamp and stream-position
    # to metadata. cutover's version guard is built from stream-position (binlog file + position)
    # and transaction-record-id; without them every CDC record is version 0 and ordering breaks.
    include_transaction_details = true
    # Kafka key and partition-key-value become "schema.table.pk": the same primary key in two
    # tables lands in different partitions instead of piling onto one.
    partition_include_schema_table = true
    # Adds metadata.partition-key-value (diagnostics; cutover takes identity from schema-name,
    # table-name and the primary-key columns, never from the key).
    include_partition_value = true
    # NULL columns arrive as null (and empty strings as ""): a NULL is distinguishable from a
    # column DMS did not send, which cutover treats as "leave the attribute alone".
    include_null_and_empty = true
    # Control records (create-table, column changes) carry a "control" object; cutover
    # recognises and skips them instead of dead-lettering them as malformed data.
    include_control_details = true
    # DDL (add/drop/rename column, rename/drop table) shows up as control records in the stream,
    # so a schema change is visible next to the data it affects.
    include_table_alter_operations = true
    # Binary values keep DMS's "0x" hex prefix; cutover accepts both forms, and the prefix makes
    # a hex string unambiguous.
    no_hex_prefix = false
    # Largest record DMS produces (DMS supports up to 1 MiB). The topic's max.message.bytes must
    # be larger (modules/topic checks it).
    message_max_bytes = var.message_max_bytes
    # TLS + SASL/SCRAM-SHA-512 (MSK port 9096). DMS's Kafka endpoint cannot read these from
    # Secrets Manager: the password is in this resource's state, so keep state encrypted.
    security_protocol = var.kafka_security_protocol
    sasl_mechanism    = var.kafka_security_protocol == "sasl-ssl" ? "scram-sha-512" : null
    sasl_username     = var.kafka_security_protocol == "sasl-ssl" ? var.kafka_sasl_username : null
    sasl_password     = var.kafka_security_protocol == "sasl-ssl" ? var.kafka_sasl_password : null
    # Private CA for a self-managed cluster (MSK uses public CAs: leave null).
    ssl_ca_certificate_arn = var.kafka_ssl_ca_certificate_arn
  }
}

# UseLargeIntegerValue: without it DMS sends BIGINTs above 2^53 as doubles (scientific
# notation), which cutover refuses and dead-letters. It is a KafkaSettings field of the DMS API
# (DMS engine >= 3.5.x), but the Terraform AWS provider exposes use_large_integer_value only in
# kinesis_settings, not in kafka_settings. So it is set once, after the endpoint exists, with
# ModifyEndpoint. ModifyEndpoint merges settings (ExactSettings defaults to false) and the
# provider never sends ExactSettings, so later Terraform updates of kafka_settings keep it.
# Needs the AWS CLI and DMS permissions where `terraform apply` runs.
resource "terraform_data" "kafka_use_large_integer_value" {
  count            = var.use_large_integer_value ? 1 : 0
  triggers_replace = [aws_dms_endpoint.kafka_target.endpoint_arn]

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      aws dms modify-endpoint --region '${local.region}' \
        --endpoint-arn '${aws_dms_endpoint.kafka_target.endpoint_arn}' \
        --kafka-settings '{"UseLargeIntegerValue": true}' >/dev/null
      test "$(aws dms describe-endpoints --region '${local.region}' \
        --filters 'Name=endpoint-arn,Values=${aws_dms_endpoint.kafka_target.endpoint_arn}' \
        --query 'Endpoints[0].KafkaSettings.UseLargeIntegerValue' --output text)" = "True"
    EOT
  }
}

# =================================================================================================
# Replication task
# =================================================================================================

resource "aws_dms_replication_task" "this" {
  replication_task_id       = "${var.name}-full-load-and-cdc"
  migration_type            = "full-load-and-cdc"
  replication_instance_arn  = aws_dms_replication_instance.this.replication_instance_arn
  source_endpoint_arn       = aws_dms_endpoint.mysql_source.endpoint_arn
  target_endpoint_arn       = aws_dms_endpoint.kafka_target.endpoint_arn
  table_mappings            = local.table_mappings
  replication_task_settings = local.task_settings
  # Start only once topics, tables and consumers are in place (infra/README.md runbook, step 1).
  start_replication_task = var.start_replication_task
  tags                   = var.tags

  depends_on = [terraform_data.kafka_use_large_integer_value]
}
