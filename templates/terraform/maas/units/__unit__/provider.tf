# The API key comes from the environment (MAAS_API_KEY; factoryctl copies the variable named
# by site.maas.api_key_env into it): no credential is ever rendered into this tree.
provider "maas" {
  api_version = "2.0"
  api_url     = var.maas.url
}
