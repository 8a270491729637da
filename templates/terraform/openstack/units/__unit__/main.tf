# Bare metal through Ironic: Nova schedules each server onto a bare-metal node whose
# resource class the (bare-metal) flavor names, and deploys the image on it.
resource "openstack_compute_instance_v2" "host" {
  for_each = var.hosts

  name        = each.key
  flavor_name = var.openstack.flavor
  image_name  = var.openstack.image

  metadata = {
    "factoryctl:factory" = local.site.factory
    "factoryctl:group"   = each.value.group
    "factoryctl:rack"    = each.value.rack
  }

  # The management address from the site's IP plan, on the named provisioning network.
  dynamic "network" {
    for_each = var.openstack.network == null ? [] : [var.openstack.network]
    content {
      name        = network.value
      fixed_ip_v4 = each.value.address
    }
  }
}
