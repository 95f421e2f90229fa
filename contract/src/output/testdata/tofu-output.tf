# `tofu output -json > tofu-output.json` after `tofu apply` of this configuration (OpenTofu 1.12.6;
# Terraform 1.11.4 writes the same bytes). Only built-ins: no provider download. Null outputs
# (`nothing`) and descriptions are left out of `output -json`.
resource "terraform_data" "db" {
  input = "db.pr-42.example.internal"
}
output "endpoint" { value = terraform_data.db.output }
output "db_port" { value = 5432 }
output "ratio" { value = 0.25 }
output "subnets" { value = ["subnet-a", "subnet-b"] }
output "tags" { value = { env = "pr-42", team = "web" } }
output "settings" { value = { enabled = true, zones = ["a", "b"], n = 1.5 } }
output "empty_list" { value = [] }
output "db_password" {
  value     = "hunter2-not-for-logs"
  sensitive = true
}
output "replicas" {
  value     = ["replica-a", "replica-b"]
  sensitive = true
}
output "nothing" { value = null }
output "described" {
  value       = "x"
  description = "a description"
}
