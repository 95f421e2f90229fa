# The environment's infrastructure, as code: what a lifecycle job applies when
# the environment starts and destroys when it is deleted. Everything here is a
# stand-in that needs no provider download (terraform_data is built into
# OpenTofu); README.md shows how to swap it for a real cloud provider.

terraform {
  required_version = ">= 1.6"

  # The state lives in the environment's own namespace: the Secret
  # tfstate-default-opentofu-example, locked with the Lease
  # lock-tfstate-default-opentofu-example. The namespace comes from
  # KUBE_NAMESPACE (the Job sets it to its own), the credentials are the job
  # pod's ServiceAccount's (opentofu, see rbac.yaml).
  backend "kubernetes" {
    secret_suffix     = "opentofu-example"
    in_cluster_config = true
  }
}

variable "namespace" {
  description = "The environment's namespace (TF_VAR_namespace, set by the Job from the pod's own)."
  type        = string
}

locals {
  database_name = "db-${var.namespace}"
}

# Stands for a cloud database: with a real provider, an aws_db_instance or a
# google_sql_database_instance. Its id is random at creation and kept in the
# state, so every later apply finds it unchanged.
resource "terraform_data" "database" {
  input = {
    host = "${local.database_name}.postgres.internal"
    port = 5432
  }
}

# Each output becomes a variable of every workload of the environment, under
# its name uppercased (DATABASE_HOST) and as QOVERY_OUTPUT_JOB_OPENTOFU_<NAME>.

# A string.
output "database_host" {
  description = "Where the environment's database listens."
  value       = terraform_data.database.output.host
}

# A number: published as its JSON text, 5432.
output "database_port" {
  description = "The database's port."
  value       = terraform_data.database.output.port
}

# A list: published as its compact JSON text, ["subnet-a","subnet-b"].
output "subnets" {
  description = "The subnets the environment's services run in."
  value       = tolist(["subnet-a", "subnet-b"])
}

# A map: published as its compact JSON text, {"environment":"...","managed-by":"opentofu"}.
output "tags" {
  description = "The tags every resource of the environment carries."
  value       = tomap({ environment = var.namespace, "managed-by" = "opentofu" })
}

# Sensitive: published in the Secret lifecycle-outputs, never in the ConfigMap,
# and shown by `tofu apply` as (sensitive value). A stand-in derived from the
# database's random id; a real provider hands back the password it generated.
output "database_password" {
  description = "The database's password."
  value       = substr(sha256("${terraform_data.database.id}/password"), 0, 32)
  sensitive   = true
}
