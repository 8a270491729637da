# Bare metal through MAAS: each host is a machine already enlisted and commissioned in MAAS
# under its hostname; Terraform allocates and deploys it, and releases it on destroy.
resource "maas_instance" "host" {
  for_each = var.hosts

  allocate_params {
    hostname = each.key
    zone     = var.maas.zone
  }

  deploy_params {
    distro_series = var.maas.distro_series
  }

  # The management address from the site's IP plan, pinned on the declared interface.
  dynamic "network_interfaces" {
    for_each = each.value.address == null ? [] : [each.value]
    content {
      name        = network_interfaces.value.interface
      subnet_cidr = var.maas.subnet_cidr
      ip_address  = network_interfaces.value.address
    }
  }

  release_params {
    erase       = true
    quick_erase = true
  }
}
