# `cutover run` on Kubernetes (EKS): one Deployment whose pods form one Kafka consumer group.
#
# - Configuration: the whole cutover.toml, SASL password included, is a Kubernetes Secret mounted
#   at /etc/cutover/cutover.toml (CUTOVER_CONFIG). Not a ConfigMap plus an env var for the
#   password: cutover's env overrides (CUTOVER_<SECTION>__<KEY>) split on "__" and lowercase, so
#   a dotted librdkafka key such as kafka.properties."sasl.password" can't be named in an env
#   variable. The Secret is rendered by Terraform (or synced by External Secrets: then pass the
#   rendered file through that instead) and no AWS permission is needed to read it at start.
# - Telemetry: cutover.toml must say [telemetry] listen = "0.0.0.0:9464"; the container port
#   "metrics" (9464) serves /metrics, /healthz (liveness) and /readyz (readiness).
# - Shutdown: on SIGTERM cutover drains in-flight batches and commits offsets (run.drain_timeout,
#   30 s by default), so terminationGracePeriodSeconds must be longer (45 s).
# - Scaling: an HPA (autoscaling/v2) on the External metric cutover_consumer_lag, served by
#   prometheus-adapter, between min_replicas and max_replicas <= partitions.
# - AWS: IRSA. The service account's role may only write the mapped tables (CutoverWriter).

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The IAM part is validated on 5.100.0 (the same constructs as modules/ecs); see
      # infra/README.md, "Provider notes".
      version = ">= 5.100.0, < 7.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.38.0, < 4.0.0"
    }
  }
}

locals {
  labels = merge(var.labels, {
    "app.kubernetes.io/name"       = "cutover"
    "app.kubernetes.io/instance"   = var.name
    "app.kubernetes.io/component"  = "consumer"
    "app.kubernetes.io/managed-by" = "terraform"
  })
  selector_labels = {
    "app.kubernetes.io/name"     = "cutover"
    "app.kubernetes.io/instance" = var.name
  }

  config_dir  = "/etc/cutover"
  config_path = "${local.config_dir}/cutover.toml"

  oidc_host = trimprefix(var.oidc_provider_url, "https://")

  # Never more consumers than partitions.
  max_replicas = coalesce(var.max_replicas, var.partitions)
}

# =================================================================================================
# IAM (IRSA)
# =================================================================================================

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "IrsaAssume"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account_name}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# Least privilege for `cutover run`: exactly the five calls the sink makes (conditional
# PutItem/UpdateItem/DeleteItem, BatchWriteItem in batch mode, DescribeTable at start), on the
# mapped tables only. No /index/* ARNs: writes go to the base table (DynamoDB maintains the
# GSIs) and none of these actions takes an index ARN. No reads, no CreateTable/UpdateTimeToLive
# (tables come from modules/dynamodb_tables; `cutover replay --create-table` runs with an
# operator role).
#
# Kafka needs no IAM statement: librdkafka does not speak MSK IAM auth natively, so cutover
# authenticates with SASL/SCRAM, and the password arrives in the Secret below (rendered by
# Terraform or synced by External Secrets under its own identity): the pod itself never calls
# Secrets Manager, so it gets no secretsmanager:GetSecretValue.
data "aws_iam_policy_document" "writer" {
  statement {
    sid    = "CutoverWriter"
    effect = "Allow"
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
    ]
    # Each mapped table. Nothing else.
    resources = var.table_arns
  }
}

# IRSA trust: the federated OIDC principal, restricted to one service account (sub) and STS
# (aud). aws:SourceAccount does not apply here: it is set only when an AWS service principal
# assumes a role, never on AssumeRoleWithWebIdentity.
resource "aws_iam_role" "this" {
  name                 = coalesce(var.iam_role_name, "${var.name}-cutover")
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "writer" {
  name   = "cutover-dynamodb-writer"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.writer.json
}

# =================================================================================================
# Kubernetes
# =================================================================================================

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = var.namespace
    labels    = local.labels
    annotations = {
      "eks.amazonaws.com/role-arn" = aws_iam_role.this.arn
    }
  }
  # The EKS pod identity webhook mounts its own projected web-identity token; the Kubernetes API
  # token is not needed.
  automount_service_account_token = false
}

resource "kubernetes_secret_v1" "config" {
  metadata {
    name      = "${var.name}-config"
    namespace = var.namespace
    labels    = local.labels
  }
  type = "Opaque"
  data = {
    "cutover.toml" = var.config_toml
  }
}

resource "kubernetes_deployment_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    # With the HPA on, leave replicas to it (null = not managed here; the provider keeps the
    # live value). Without it, var.replicas (0 scales the fleet down).
    replicas               = var.autoscaling_enabled ? null : tostring(var.replicas)
    revision_history_limit = 5

    selector {
      match_labels = local.selector_labels
    }

    # One pod at a time: every membership change is a group rebalance (a pause of the affected
    # partitions while they drain and move), so roll slowly.
    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = "1"
        max_unavailable = "0"
      }
    }

    template {
      metadata {
        labels = local.labels
        annotations = merge({
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = "9464"
          "prometheus.io/path"   = "/metrics"
          # Roll the pods when the configuration changes.
          "checksum/config" = sha256(var.config_toml)
        }, var.pod_annotations)
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token  = false
        termination_grace_period_seconds = var.termination_grace_period_seconds
        node_selector                    = var.node_selector

        security_context {
          run_as_non_root = true
          run_as_user     = 65532
          run_as_group    = 65532
          fs_group        = 65532
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        # Spread consumers over zones so one AZ outage doesn't take the whole group.
        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "topology.kubernetes.io/zone"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = local.selector_labels
          }
        }

        container {
          name              = "cutover"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          command           = var.command
          args              = ["--log-format", "json", "run"]

          env {
            name  = "CUTOVER_CONFIG"
            value = local.config_path
          }
          env {
            name  = "RUST_LOG"
            value = var.rust_log
          }
          dynamic "env" {
            for_each = var.extra_env
            content {
              name  = env.key
              value = env.value
            }
          }

          port {
            name           = "metrics"
            container_port = 9464
            protocol       = "TCP"
          }

          # The process serves: restart only if it stops answering for a minute.
          liveness_probe {
            http_get {
              path = "/healthz"
              port = "metrics"
            }
            initial_delay_seconds = 10
            period_seconds        = 10
            timeout_seconds       = 3
            failure_threshold     = 6
          }

          # Ready once the target tables were found and the consumer subscribed.
          readiness_probe {
            http_get {
              path = "/readyz"
              port = "metrics"
            }
            initial_delay_seconds = 5
            period_seconds        = 5
            timeout_seconds       = 3
            failure_threshold     = 3
          }

          resources {
            requests = var.resources_requests
            limits   = var.resources_limits
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "config"
            mount_path = local.config_dir
            read_only  = true
          }
        }

        volume {
          name = "config"
          secret {
            secret_name  = kubernetes_secret_v1.config.metadata[0].name
            default_mode = "0440"
            items {
              key  = "cutover.toml"
              path = "cutover.toml"
            }
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      # A yes/no about a fixed substring reveals nothing of the (sensitive) file.
      condition     = nonsensitive(strcontains(var.config_toml, "0.0.0.0:9464"))
      error_message = "config_toml must set [telemetry] listen = \"0.0.0.0:9464\": the probes and Prometheus reach the pod on that port."
    }
  }
}

# At most one consumer down for voluntary disruptions (node drains): each eviction is a rebalance.
resource "kubernetes_pod_disruption_budget_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    max_unavailable = "1"
    selector {
      match_labels = local.selector_labels
    }
  }
}

# Scale on consumer lag. External metric served by prometheus-adapter (rule in infra/README.md):
#   sum(max by (topic, partition) (cutover_consumer_lag{topic="<topic>"}))
# AverageValue target: desired replicas = ceil(total lag / target_lag_per_replica), capped at
# max_replicas <= partitions (more consumers than partitions would sit idle).
resource "kubernetes_horizontal_pod_autoscaler_v2" "this" {
  count = var.autoscaling_enabled ? 1 : 0

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    min_replicas = var.min_replicas
    max_replicas = local.max_replicas

    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.this.metadata[0].name
    }

    metric {
      type = "External"
      external {
        metric {
          name = var.lag_metric_name
          selector {
            match_labels = {
              topic = var.topic_name
            }
          }
        }
        target {
          type          = "AverageValue"
          average_value = tostring(var.target_lag_per_replica)
        }
      }
    }

    # Scale up quickly (lag is growing), down slowly (every change is a rebalance).
    behavior {
      scale_up {
        stabilization_window_seconds = 60
        select_policy                = "Max"
        policy {
          type           = "Percent"
          value          = 100
          period_seconds = 60
        }
      }
      scale_down {
        stabilization_window_seconds = 600
        select_policy                = "Min"
        policy {
          type           = "Pods"
          value          = 2
          period_seconds = 300
        }
      }
    }
  }
}

# Optional Prometheus Operator PodMonitor (needs the monitoring.coreos.com CRDs at plan time).
resource "kubernetes_manifest" "pod_monitor" {
  count = var.create_pod_monitor ? 1 : 0

  manifest = {
    apiVersion = "monitoring.coreos.com/v1"
    kind       = "PodMonitor"
    metadata = {
      name      = var.name
      namespace = var.namespace
      labels    = merge(local.labels, var.pod_monitor_labels)
    }
    spec = {
      selector = {
        matchLabels = local.selector_labels
      }
      podMetricsEndpoints = [
        {
          port     = "metrics"
          path     = "/metrics"
          interval = "15s"
        }
      ]
    }
  }
}
