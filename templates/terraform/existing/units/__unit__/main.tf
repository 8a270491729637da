# Machines that already exist are recorded, never created: one record per host whose input
# is the host's facts, so a changed machine (address, GPUs, rack, roles) plans as a change,
# a new one as a create and a removed one as a destroy. Built-in resources only.
resource "terraform_data" "host" {
  for_each = var.hosts

  input = each.value
}
