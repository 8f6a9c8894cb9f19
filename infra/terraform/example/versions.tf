terraform {
  # >= 1.9: variable validations that refer to other variables (replicas <= partitions).
  # >= 1.10: the ephemeral resource that reads the Kafka admin secret (main.tf).
  required_version = ">= 1.10.0"

  required_providers {
    # >= 5.81: the aws_secretsmanager_secret_version ephemeral resource. The AWS-only modules are
    # validated on 5.100.0; see infra/README.md, "Provider notes".
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 7.0.0"
    }
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.13.1"
    }
    # 3.x: block syntax for container `resources` and deployment `strategy` (4.x turns them into
    # object attributes; see infra/README.md before upgrading).
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 3.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = var.tags
  }
}

# Topics and ACLs are created through the Kafka protocol: the machine running terraform must
# reach the brokers (inside the VPC), authenticated as an admin SCRAM user. Its credentials are
# ephemeral (main.tf): read for each plan and apply, never stored in the plan or the state.
provider "kafka" {
  bootstrap_servers = split(",", data.aws_msk_cluster.this.bootstrap_brokers_sasl_scram)
  tls_enabled       = true
  sasl_mechanism    = "scram-sha512"
  sasl_username     = local.kafka_admin.username
  sasl_password     = local.kafka_admin.password
}

provider "kubernetes" {
  host                   = data.aws_eks_cluster.this.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", var.eks_cluster_name, "--region", var.aws_region]
  }
}
