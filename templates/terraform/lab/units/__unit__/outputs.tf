output "hosts" {
  description = "Inventory facts by host name: address, group and roles."
  value = {
    for name, h in terraform_data.host : name => {
      address = h.output.address
      group   = var.hosts[name].group
      roles   = var.hosts[name].roles
    }
  }
}

output "site" {
  description = "The site's facts as recorded in this unit."
  value       = local.site
}
