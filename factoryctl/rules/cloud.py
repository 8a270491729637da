"""Rules: the aws provider (site.aws): what an EC2 GPU cluster needs to come up and be reached."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .. import catalog
from ..findings import Severity
from ..model import Factory
from ..resolve import Site
from .base import Issue, rule

# EC2 subnets are /16 to /28, and AWS keeps the first four and the last address of each (EC2
# user guide, "Subnet CIDR blocks").
AWS_RESERVED_FIRST = 4
SUBNET_PREFIXES = (16, 28)


def _aws(f: Factory):
    return f.site.aws if f.site.provider == "aws" else None


def _gpu_groups(f: Factory) -> list[tuple[int, object]]:
    return [(i, g) for i, g in enumerate(f.nodes) if g.hardware.gpu and g.hardware.gpu.count]


@rule("AWS001", Severity.error, "AWS site without its settings or availability zone")
def aws_settings(f: Factory, site: Site) -> Iterable[Issue]:
    """`provider: aws` needs `site.aws` with a `region` and an `availability_zone`: the subnet,
    the cluster placement group and capacity reservations all live in one zone."""
    if f.site.provider != "aws":
        return
    if f.site.aws is None:
        yield Issue(("site", "provider"), "provider aws needs site.aws",
                    "add site.aws: {region: eu-central-1, availability_zone: eu-central-1a, public_key: ..., "
                    "admin_cidrs: [...]}")
    elif f.site.aws.availability_zone is None:
        yield Issue(("site", "aws"), "site.aws names no availability_zone; the subnet, the cluster placement group "
                    "and capacity reservations are in one zone", "set site.aws.availability_zone, e.g. "
                    f"{f.site.aws.region}a")


@rule("AWS002", Severity.error, "Nobody can log in to the AWS hosts")
def aws_login(f: Factory, site: Site) -> Iterable[Issue]:
    """apply reaches every host over SSH: the instances need a key (`key_name`, an existing EC2
    key pair, or `public_key`, imported and added by cloud-init) and the cluster security group
    an SSH source (`admin_cidrs`: the operator's VPN or bastion network)."""
    aws = _aws(f)
    if aws is None:
        return
    if aws.key_name is None and aws.public_key is None:
        yield Issue(("site", "aws"), "site.aws gives no SSH key: neither key_name nor public_key",
                    "set site.aws.public_key to the admin's OpenSSH public key (or key_name to an existing key pair)")
    if not aws.admin_cidrs:
        yield Issue(("site", "aws"), "site.aws.admin_cidrs is empty: the cluster security group admits SSH from "
                    "nowhere outside the cluster, so apply cannot reach the hosts",
                    "set site.aws.admin_cidrs to the network apply runs from (VPN or bastion), e.g. [10.99.0.0/24]")
    for i, cidr in enumerate(aws.admin_cidrs):
        if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            yield Issue(("site", "aws", "admin_cidrs", i), f"admin CIDR {cidr} opens SSH to the whole internet",
                        "name the operator's VPN or bastion network instead", Severity.warning)


@rule("AWS003", Severity.warning, "EFA instances without a cluster placement group")
def aws_placement(f: Factory, site: Site) -> Iterable[Issue]:
    """EFA traffic between instances is fastest and most predictable inside one cluster placement
    group (EC2 user guide, "Placement groups", "Elastic Fabric Adapter"); `placement_group: false`
    spreads the GPU instances over the zone. A capacity reservation decides placement itself."""
    aws = _aws(f)
    if aws is None or not aws.efa or aws.placement_group or aws.capacity_reservation_id:
        return
    yield Issue(("site", "aws", "placement_group"),
                f"{aws.instance_type} instances with EFA are launched without a cluster placement group",
                "remove placement_group: false, or launch into a capacity reservation")


@rule("AWS004", Severity.error, "The AWS instance type contradicts the node groups or EFA")
def aws_instance_type(f: Factory, site: Site) -> Iterable[Issue]:
    """The GPU instance type (`site.aws.instance_type`, from the instance catalog) must carry
    the GPUs the GPU node groups declare (model and count): memory-fit and benchmark
    expectations are computed from them. With `efa: true` it must be an EFA instance type the
    catalog knows, or no EFA interface can be rendered (warning)."""
    aws = _aws(f)
    if aws is None:
        return
    spec = catalog.instance(aws.instance_type)
    if spec is None:
        known = ", ".join(e.name for e in catalog.entries("instance"))
        yield Issue(("site", "aws", "instance_type"),
                    f"instance type {aws.instance_type!r} is not in the instance catalog: its GPUs and EFA "
                    "interfaces are unknown, so no EFA interface is rendered",
                    f"use a catalog instance type ({known}) or add it to factoryctl/catalog/instances.yaml",
                    Severity.warning)
        return
    want = catalog.gpu(spec.gpu)
    for i, g in _gpu_groups(f):
        have = catalog.gpu(g.hardware.gpu.model)
        if (have is not None and want is not None and have.name != want.name) or g.hardware.gpu.count != spec.gpus:
            yield Issue(("nodes", i, "hardware", "gpu"),
                        f"node group {g.group!r} declares {g.hardware.gpu.count} x {g.hardware.gpu.model}, but "
                        f"{spec.name} carries {spec.gpus} x {spec.gpu}",
                        f"declare gpu: {{model: {spec.gpu}, count: {spec.gpus}}} or pick the instance type with "
                        "these GPUs")


@rule("AWS005", Severity.error, "Capacity Block without its reservation")
def aws_capacity_block(f: Factory, site: Site) -> Iterable[Issue]:
    """An EC2 Capacity Block for ML is launched into by its reservation id (`cr-...`) with market
    type capacity-block (EC2 user guide, "Capacity Blocks for ML"): `capacity_block: true`
    needs `capacity_reservation_id`."""
    aws = _aws(f)
    if aws is not None and aws.capacity_block and aws.capacity_reservation_id is None:
        yield Issue(("site", "aws", "capacity_block"), "capacity_block is set but no capacity_reservation_id",
                    "set site.aws.capacity_reservation_id to the Capacity Block's reservation id (cr-...)")


@rule("AWS006", Severity.error, "The management network cannot be an EC2 subnet")
def aws_subnet(f: Factory, site: Site) -> Iterable[Issue]:
    """On AWS the hosts' planned addresses are their primary private IPs in one subnet of
    `fabric.management.cidr`: an EC2 subnet is /16 to /28 and AWS keeps its first four
    addresses (network, router, DNS, reserved) and the last, so `reserved` must be at least 4
    and explicit addresses must avoid them (EC2 user guide, "Subnet CIDR blocks")."""
    if _aws(f) is None:
        return
    mgmt = f.fabric.management
    net = ipaddress.ip_network(mgmt.cidr, strict=False)
    lo, hi = SUBNET_PREFIXES
    if not lo <= net.prefixlen <= hi:
        yield Issue(("fabric", "management", "cidr"), f"management network {mgmt.cidr} is /{net.prefixlen}; an EC2 "
                    f"subnet is /{lo} to /{hi}", f"use a /{lo} to /{hi} management network on AWS")
        return
    if mgmt.reserved < AWS_RESERVED_FIRST:
        yield Issue(("fabric", "management", "reserved"), f"management.reserved is {mgmt.reserved}, but AWS keeps "
                    f"the first {AWS_RESERVED_FIRST} addresses of {mgmt.cidr}", f"set reserved: {AWS_RESERVED_FIRST} or more")
    taken = {net.network_address + k for k in range(AWS_RESERVED_FIRST)} | {net.broadcast_address}
    for i, g in enumerate(f.nodes):
        for j, a in enumerate(g.network.management.addresses):
            if ipaddress.ip_address(a) in taken:
                yield Issue(("nodes", i, "network", "management", "addresses", j),
                            f"address {a} of node group {g.group!r} is one AWS keeps in {mgmt.cidr}",
                            "pick an address after the first four and before the last")
