output "hosts" {
  description = "Inventory facts by host name: address, group and roles."
  value = {
    for name, s in openstack_compute_instance_v2.host : name => {
      address = coalesce(s.access_ip_v4, var.hosts[name].address)
      group   = var.hosts[name].group
      roles   = var.hosts[name].roles
    }
  }
}

output "site" {
  description = "The site's facts as recorded in this unit."
  value       = local.site
}
