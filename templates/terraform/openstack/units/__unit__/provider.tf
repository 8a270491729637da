# Credentials stay in clouds.yaml (or OS_* variables): only the cloud's name is rendered.
provider "openstack" {
  cloud = var.openstack.cloud
}
