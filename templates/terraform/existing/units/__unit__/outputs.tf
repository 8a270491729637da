locals {
  recorded = { for name, h in terraform_data.host : name => jsondecode(h.output) }
}

output "hosts" {
  description = "Inventory facts by host name: address, group and roles."
  value = {
    for name, h in local.recorded : name => {
      address = h.address
      group   = h.group
      roles   = h.roles
    }
  }
}

output "site" {
  description = "The site's facts as recorded in this unit."
  value       = local.site
}
