terraform {
  required_version = ">= 1.5"
  required_providers {
    maas = {
      source  = "canonical/maas"
      version = "~> 2.0"
    }
  }
}
