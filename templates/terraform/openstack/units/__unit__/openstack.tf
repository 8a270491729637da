variable "openstack" {
  description = "OpenStack settings (site.openstack in factory.yaml)."
  type = object({
    cloud   = string
    flavor  = string
    image   = string
    network = string
  })
}
