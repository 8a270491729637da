variable "maas" {
  description = "MAAS settings (site.maas in factory.yaml) and the management subnet."
  type = object({
    distro_series = string
    subnet_cidr   = string
    url           = string
    zone          = string
  })
}
