variable "aws" {
  description = "AWS settings (site.aws in factory.yaml, with the EFA interfaces of the instance type and the management CIDR)."
  type = object({
    admin_cidrs             = list(string)
    ami                     = string
    availability_zone       = string
    capacity_block          = bool
    capacity_reservation_id = string
    cidr                    = string
    cpu_instance_type       = string
    efa_interfaces          = number
    instance_type           = string
    internet                = bool
    key_name                = string
    placement_group         = bool
    public_key              = string
    region                  = string
    subnet_id               = string
    vpc_id                  = string
  })
}

# --- network: the site's subnet is fabric.management.cidr, so each host keeps its planned
# address. An existing subnet (site.aws.subnet_id) or VPC (vpc_id) is used as given; else a
# VPC and subnet are created. AWS keeps the first four addresses and the last of a subnet
# (EC2 user guide, "Subnet CIDR blocks"): factoryctl validate checks the plan leaves them free.

locals {
  create_vpc    = var.aws.vpc_id == null && var.aws.subnet_id == null
  create_subnet = var.aws.subnet_id == null
}

resource "aws_vpc" "site" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.aws.cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = local.site.factory
  }
}

data "aws_subnet" "given" {
  count = local.create_subnet ? 0 : 1
  id    = var.aws.subnet_id

  lifecycle {
    postcondition {
      condition     = self.cidr_block == var.aws.cidr
      error_message = "site.aws.subnet_id ${var.aws.subnet_id} is ${self.cidr_block}, but fabric.management.cidr is ${var.aws.cidr}: the hosts' planned addresses must lie in the subnet."
    }
    postcondition {
      condition     = self.availability_zone == var.aws.availability_zone
      error_message = "site.aws.subnet_id ${var.aws.subnet_id} is in ${self.availability_zone}, not site.aws.availability_zone ${var.aws.availability_zone}."
    }
  }
}

locals {
  vpc_id = (local.create_subnet
    ? (local.create_vpc ? aws_vpc.site[0].id : var.aws.vpc_id)
  : data.aws_subnet.given[0].vpc_id)
}

# One subnet, so one availability zone: a cluster placement group cannot span zones.
resource "aws_subnet" "site" {
  count             = local.create_subnet ? 1 : 0
  vpc_id            = local.vpc_id
  cidr_block        = var.aws.cidr
  availability_zone = var.aws.availability_zone

  tags = {
    Name = local.site.factory
  }
}

locals {
  subnet_id = local.create_subnet ? aws_subnet.site[0].id : var.aws.subnet_id
}

# A created VPC of a connected site reaches out through an internet gateway, each host through
# an Elastic IP on its primary interface (an instance with several network interfaces gets no
# automatic public address). An air-gapped site gets neither.
resource "aws_internet_gateway" "site" {
  count  = local.create_vpc && var.aws.internet ? 1 : 0
  vpc_id = aws_vpc.site[0].id
}

resource "aws_route_table" "site" {
  count  = local.create_vpc && var.aws.internet ? 1 : 0
  vpc_id = aws_vpc.site[0].id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.site[0].id
  }
}

resource "aws_route_table_association" "site" {
  count          = local.create_vpc && var.aws.internet ? 1 : 0
  subnet_id      = local.subnet_id
  route_table_id = aws_route_table.site[0].id
}

# --- one cluster security group: EFA needs all traffic to and from the group itself allowed,
# in and out (EC2 user guide, "Prepare an EFA-enabled security group"); SSH only from the
# declared admin networks.
resource "aws_security_group" "cluster" {
  name_prefix = "${local.site.factory}-cluster-"
  description = "factoryctl ${local.site.factory}: all traffic within the cluster (EFA), SSH from the admin networks"
  vpc_id      = local.vpc_id

  ingress {
    description = "all traffic within the cluster (EFA)"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  dynamic "ingress" {
    for_each = length(var.aws.admin_cidrs) > 0 ? [var.aws.admin_cidrs] : []
    content {
      description = "SSH from the admin networks (site.aws.admin_cidrs)"
      from_port   = 22
      to_port     = 22
      protocol    = "tcp"
      cidr_blocks = ingress.value
    }
  }

  egress {
    description = "all traffic within the cluster (EFA)"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  egress {
    description = var.aws.internet ? "anywhere (package mirrors, registries)" : "the site network only (air-gapped site)"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = [var.aws.internet ? "0.0.0.0/0" : var.aws.cidr]
  }

  lifecycle {
    create_before_destroy = true
  }
}

# --- login: the admin's key as the site's key pair (or an existing one), added by cloud-init too.
resource "aws_key_pair" "admin" {
  count           = var.aws.public_key != null ? 1 : 0
  key_name_prefix = "${local.site.factory}-admin-"
  public_key      = var.aws.public_key
}

locals {
  key_name = var.aws.key_name != null ? var.aws.key_name : try(aws_key_pair.admin[0].key_name, null)
}

data "aws_ami" "gpu" {
  count       = var.aws.ami == null ? 1 : 0
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = ["Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"]
  }
}

locals {
  ami = var.aws.ami != null ? var.aws.ami : data.aws_ami.gpu[0].id
}
