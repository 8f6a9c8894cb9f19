# terraform test (plan only, mocked AWS provider: no credentials, no cloud calls).
# Run by scripts/test; by hand: terraform init -backend=false && terraform test

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # The provider checks that role policies are JSON policies; the statements themselves are
  # asserted on the data sources' arguments below.
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  name = "chat-cutover"
  source_tables = [
    { schema = "chat", table = "conversation" },
    { schema = "chat", table = "message" },
  ]
  source_secret_arn      = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-mysql-dms-AbCdEf"
  source_certificate_arn = "arn:aws:dms:eu-west-1:123456789012:cert:RDSCABUNDLE"
  source_server_timezone = "UTC"
  kafka_brokers          = "b-1.msk:9096,b-2.msk:9096"
  kafka_topic            = "dms.chat"
  kafka_sasl_username    = "dms"
  kafka_sasl_password    = "not-a-real-password"
  subnet_ids             = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
  security_group_ids     = ["sg-0dddddddddddddddd"]
}

run "defaults_verify_full_stop_on_errors_source_account_trust" {
  command = plan

  assert {
    condition     = aws_dms_endpoint.mysql_source.ssl_mode == "verify-full"
    error_message = "MySQL TLS must default to verify-full."
  }
  assert {
    condition     = aws_dms_endpoint.mysql_source.certificate_arn == var.source_certificate_arn
    error_message = "verify-full must use the given CA certificate."
  }
  assert {
    condition     = length(aws_dms_certificate.source_ca) == 0
    error_message = "No certificate is imported when source_certificate_arn is given."
  }
  assert {
    condition     = aws_dms_endpoint.mysql_source.extra_connection_attributes == "eventsPollInterval=5;serverTimezone=UTC"
    error_message = "MySQL settings go through extra connection attributes (mysql_settings needs provider 6.15)."
  }

  # Apply-error and truncation policies: nothing is dropped silently.
  assert {
    condition = alltrue([
      for k in [
        "TableErrorPolicy", "TableErrorEscalationPolicy", "DataErrorPolicy", "DataErrorEscalationPolicy",
        "DataTruncationErrorPolicy", "ApplyErrorDeletePolicy", "ApplyErrorInsertPolicy",
        "ApplyErrorUpdatePolicy", "ApplyErrorEscalationPolicy",
      ] : jsondecode(output.task_settings).ErrorBehavior[k] == "STOP_TASK"
    ])
    error_message = "Every DMS error, apply-error and truncation policy must be STOP_TASK."
  }
  assert {
    condition     = jsondecode(output.task_settings).ErrorBehavior.ApplyErrorFailOnTruncationDdl == true
    error_message = "A TRUNCATE on the source must fail the task (no per-row deletes reach cutover)."
  }
  assert {
    condition     = jsondecode(output.task_settings).BeforeImageSettings.EnableBeforeImage == true
    error_message = "cutover needs before-images to see key moves."
  }

  # Kafka target: what cutover decodes.
  assert {
    condition     = aws_dms_endpoint.kafka_target.kafka_settings[0].include_transaction_details == true
    error_message = "IncludeTransactionDetails is required for cutover's version guard."
  }
  assert {
    condition     = aws_dms_endpoint.kafka_target.kafka_settings[0].sasl_mechanism == "scram-sha-512" && aws_dms_endpoint.kafka_target.kafka_settings[0].sasl_username == "dms"
    error_message = "sasl-ssl uses SCRAM-SHA-512 with the given user."
  }

  # Partition by primary key, one selection rule per table.
  assert {
    condition = length([
      for r in jsondecode(output.table_mappings).rules : r
      if r["rule-type"] == "object-mapping" && try(r["mapping-parameters"]["partition-key-type"], "") == "primary-key"
    ]) == 2
    error_message = "Every table gets a primary-key partitioning rule."
  }


  assert {
    condition = alltrue([
      for doc in [data.aws_iam_policy_document.dms_assume, data.aws_iam_policy_document.secrets_assume] : alltrue([
        for st in doc.statement : anytrue([
          for c in st.condition : c.test == "StringEquals" && c.variable == "aws:SourceAccount" && c.values == tolist(["123456789012"])
        ])
      ])
    ])
    error_message = "Every DMS trust policy statement must require aws:SourceAccount = this account."
  }
  assert {
    condition     = length(aws_iam_role.dms_vpc) == 1 && length(aws_iam_role.dms_cloudwatch_logs) == 1
    error_message = "The account roles are created by default."
  }
  assert {
    condition     = aws_iam_role.secrets_access.permissions_boundary == null
    error_message = "No permissions boundary unless one is given."
  }
  assert {
    condition     = length(terraform_data.iam_propagation) == 1
    error_message = "A propagation wait follows the role creation by default."
  }
}

run "permissions_boundary_and_imported_ca" {
  command = plan

  variables {
    permissions_boundary_arn  = "arn:aws:iam::123456789012:policy/platform-boundary"
    source_certificate_arn    = null
    source_ca_certificate_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
  }

  assert {
    condition = alltrue([
      aws_iam_role.dms_vpc[0].permissions_boundary == var.permissions_boundary_arn,
      aws_iam_role.dms_cloudwatch_logs[0].permissions_boundary == var.permissions_boundary_arn,
      aws_iam_role.secrets_access.permissions_boundary == var.permissions_boundary_arn,
    ])
    error_message = "permissions_boundary_arn must be set on every role the module creates."
  }


  assert {
    condition     = length(aws_dms_certificate.source_ca) == 1
    error_message = "source_ca_certificate_pem is imported as a DMS certificate."
  }
}

run "no_wait_and_no_account_roles_when_they_exist" {
  command = plan

  variables {
    create_account_roles         = false
    iam_propagation_wait_seconds = 0
  }

  assert {
    condition     = length(aws_iam_role.dms_vpc) == 0 && length(terraform_data.iam_propagation) == 0
    error_message = "create_account_roles = false and a zero wait create neither roles nor the wait."
  }
}

run "ssl_encryption_needs_no_sasl_credentials" {
  command = plan

  variables {
    kafka_security_protocol = "ssl-encryption"
    kafka_sasl_username     = null
    kafka_sasl_password     = null
  }

  assert {
    condition     = aws_dms_endpoint.kafka_target.kafka_settings[0].sasl_username == null && aws_dms_endpoint.kafka_target.kafka_settings[0].sasl_mechanism == null
    error_message = "ssl-encryption sends no SASL settings."
  }
}

# Every invalid input is reported at once, each on its own variable.
run "rejects_invalid_inputs" {
  command = plan
  variables {
    kafka_sasl_username      = null
    kafka_sasl_password      = ""
    source_certificate_arn   = null
    engine_version           = "3.4.6"
    lob_max_size_kb          = 300
    permissions_boundary_arn = "platform-boundary"
  }
  expect_failures = [
    var.kafka_sasl_username,
    var.kafka_sasl_password,
    var.source_ssl_mode,
    var.engine_version,
    var.lob_max_size_kb,
    var.permissions_boundary_arn,
  ]
}
