terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: aws_instance's network_interface blocks (with network_card_index) attach the
      # planned primary interface and the EFA interfaces; 6.0 replaced them.
      version = ">= 5.80, < 6.0"
    }
  }
}
