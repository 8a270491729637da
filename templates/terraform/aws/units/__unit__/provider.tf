# Credentials come from the environment or the instance profile (AWS_PROFILE,
# AWS_ACCESS_KEY_ID, ...): no credential is ever rendered into this tree.
provider "aws" {
  region = var.aws.region

  default_tags {
    tags = {
      "factoryctl:factory" = local.site.factory
      "factoryctl:unit"    = local.site.unit
    }
  }
}
