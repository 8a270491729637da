output "hosts" {
  description = "Inventory facts by host name: address (the private IP of the instance's primary interface, as AWS reports it: the planned one), group, roles, instance id and EFA interfaces."
  value = {
    for name, i in aws_instance.host : name => {
      address        = one(aws_network_interface.primary[name].private_ips)
      group          = var.hosts[name].group
      roles          = var.hosts[name].roles
      instance_id    = i.id
      efa_interfaces = var.hosts[name].gpus > 0 ? var.aws.efa_interfaces : 0
    }
  }
}

output "site" {
  description = "The site's facts as recorded in this unit."
  value       = local.site
}
