output "hosts" {
  description = "Inventory facts by host name: address, group and roles."
  value = {
    for name, m in maas_instance.host : name => {
      address = coalesce(var.hosts[name].address, try(sort(tolist(m.ip_addresses))[0], null))
      group   = var.hosts[name].group
      roles   = var.hosts[name].roles
    }
  }
}

output "site" {
  description = "The site's facts as recorded in this unit."
  value       = local.site
}
