output "hosts" {
  description = "Inventory facts by host name: address (the instance's private IP), group and roles."
  value = {
    for name, i in aws_instance.host : name => {
      address = i.private_ip
      group   = var.hosts[name].group
      roles   = var.hosts[name].roles
    }
  }
}

output "site" {
  description = "The site's facts as recorded in this unit."
  value       = local.site
}
