"""Rules: network (management and out-of-band address plans, Kubernetes CIDRs)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

from .. import resolve
from ..findings import Severity
from ..model import Factory
from ..resolve import IpPlan, Site
from .base import Issue, rule

MAX_SERVICE_HOST_BITS = 20  # kube-apiserver refuses an IPv4 service range larger than /12
LAB_DEFAULT_SUBNET = "10.77.0.0/24"


def _prefix_for(hosts: int, reserved: int) -> int:
    """Longest prefix whose network holds `hosts` after `reserved` and network/broadcast."""
    return 32 - math.ceil(math.log2(hosts + reserved + 2))


def _too_small(plan: IpPlan, key: str, reserved: int) -> Issue:
    return Issue(("fabric", key, "cidr"),
                 f"{key} network {plan.cidr} has {plan.capacity} assignable addresses (after "
                 f"{reserved} reserved and the network/broadcast addresses) but the site has "
                 f"{plan.needed} hosts",
                 f"use a /{_prefix_for(plan.needed, reserved)} or larger, or lower fabric.{key}.reserved")


@rule("NET001", Severity.error, "Management network too small for the hosts")
def management_capacity(f: Factory, site: Site) -> Iterable[Issue]:
    """`fabric.management.cidr` must hold one address per host after the first `reserved`
    addresses (gateway, services; default 10) and the network and broadcast addresses:
    hosts <= 2^(32 - prefix) - 2 - reserved."""
    if site.management.capacity < site.management.needed:
        yield _too_small(site.management, "management", f.fabric.management.reserved)


@rule("NET002", Severity.error, "Out-of-band network too small for the hosts")
def oob_capacity(f: Factory, site: Site) -> Iterable[Issue]:
    """`fabric.oob.cidr` must hold one BMC address per host after its `reserved` addresses and
    the network and broadcast addresses (same arithmetic as NET001)."""
    if site.oob is not None and f.fabric.oob is not None and site.oob.capacity < site.oob.needed:
        yield _too_small(site.oob, "oob", f.fabric.oob.reserved)


def _networks(f: Factory) -> list[tuple[tuple, str, ipaddress.IPv4Network]]:
    nets = [(("fabric", "management", "cidr"), "management", f.fabric.management.cidr)]
    if f.fabric.oob is not None:
        nets.append((("fabric", "oob", "cidr"), "out-of-band", f.fabric.oob.cidr))
    if f.kubernetes.enabled:
        nets.append((("kubernetes", "pod_cidr"), "Kubernetes pod", f.kubernetes.pod_cidr))
        nets.append((("kubernetes", "service_cidr"), "Kubernetes service", f.kubernetes.service_cidr))
    if f.site.lab is not None:
        nets.append((("site", "lab", "subnet"), "lab", f.site.lab.subnet))
    elif f.site.provider == "lab":
        nets.append((("site", "provider"), "lab (default)", LAB_DEFAULT_SUBNET))
    return [(loc, label, ipaddress.IPv4Network(c)) for loc, label, c in nets]


@rule("NET003", Severity.error, "Networks overlap")
def overlapping_networks(f: Factory, site: Site) -> Iterable[Issue]:
    """The management, out-of-band, Kubernetes pod and service networks (when Kubernetes is
    enabled) and the lab subnet must be disjoint: an overlap makes addresses ambiguous and
    routes wrong (e.g. a pod CIDR covering the management network hides the hosts from pods).
    One exception: on a lab site the management network may be the lab subnet (or inside it),
    since the lab hosts take their management addresses on the lab bridge."""
    nets = _networks(f)
    for b in range(len(nets)):
        for a in range(b):
            (la_loc, la, na), (loc, lb, nb) = nets[a], nets[b]
            if la_loc == ("fabric", "management", "cidr") and loc[:2] == ("site", "lab") and na.subnet_of(nb):
                continue  # lab hosts take their management addresses on the lab bridge
            if na.overlaps(nb):
                yield Issue(loc, f"the {lb} network {nb} overlaps the {la} network {na}",
                            f"choose a {lb} range disjoint from {na}")


def _gateway_issue(key: str, cidr: str, gw: str, taken: dict[str, str]) -> str | None:
    net, ip = ipaddress.IPv4Network(cidr), ipaddress.IPv4Address(gw)
    if ip not in net:
        return f"{key} gateway {gw} is outside its network {cidr}"
    if ip == net.network_address and net.prefixlen < 31:
        return f"{key} gateway {gw} is the network address of {cidr}"
    if ip == net.broadcast_address and net.prefixlen < 31:
        return f"{key} gateway {gw} is the broadcast address of {cidr}"
    if gw in taken:
        return f"{key} gateway {gw} is also the address of host {taken[gw]}"
    return None


@rule("NET004", Severity.error, "Gateway not usable in its network")
def gateway(f: Factory, site: Site) -> Iterable[Issue]:
    """A management or out-of-band `gateway` must be a host address inside its `cidr`: not the
    network or broadcast address, and not an address given to a node (keep it among the
    `reserved` addresses at the start of the range)."""
    nets = [("management", f.fabric.management, {h.address: h.name for h in site.hosts if h.address})]
    if f.fabric.oob is not None:
        nets.append(("oob", f.fabric.oob, {h.oob_address: h.name for h in site.hosts if h.oob_address}))
    for key, net, taken in nets:
        if net.gateway is None:
            continue
        problem = _gateway_issue(key, net.cidr, net.gateway, taken)
        if problem:
            first = ipaddress.IPv4Network(net.cidr).network_address + 1
            yield Issue(("fabric", key, "gateway"), problem,
                        f"use an address among the first {net.reserved} of {net.cidr} (e.g. {first})")


@rule("NET005", Severity.error, "Kubernetes pod CIDR too small for the nodes")
def pod_cidr(f: Factory, site: Site) -> Iterable[Issue]:
    """The pod CIDR is cut into one /`node_pod_prefix` per Kubernetes node (kube-controller-manager
    `--node-cidr-mask-size`, default /24): it holds 2^(node_pod_prefix - prefix) nodes, which must
    cover every host with a kube-control-plane or kube-worker role."""
    plan = resolve.pod_cidr_plan(f, site.hosts)
    if plan is None or plan.capacity >= plan.needed:
        return
    prefix = f.kubernetes.node_pod_prefix
    want = prefix - math.ceil(math.log2(max(plan.needed, 1)))
    yield Issue(("kubernetes", "pod_cidr"),
                f"pod CIDR {plan.cidr} holds {plan.capacity} per-node /{prefix} subnets but "
                f"{plan.needed} hosts are Kubernetes nodes",
                f"use a /{want} or larger pod CIDR, or a longer kubernetes.node_pod_prefix")


def _explicit(f: Factory):
    """(loc, address, which network, group index, position) of each explicit node address."""
    for i, ng in enumerate(f.nodes):
        ifaces = [("management", ng.network.management)]
        if ng.network.oob is not None:
            ifaces.append(("oob", ng.network.oob))
        for key, iface in ifaces:
            for j, addr in enumerate(iface.addresses):
                yield ("nodes", i, "network", key, "addresses", j), addr, key, i, j


@rule("NET006", Severity.error, "Explicit node address outside its network or duplicated")
def explicit_addresses(f: Factory, site: Site) -> Iterable[Issue]:
    """Addresses listed under `nodes[].network.management.addresses` (or `oob.addresses`) must be
    host addresses inside the matching CIDR and unique across the site, including the addresses
    derived for the other hosts. More addresses than nodes in the group is a warning (the extra
    ones are unused)."""
    cidrs = {"management": f.fabric.management.cidr, "oob": f.fabric.oob.cidr if f.fabric.oob else None}
    taken: dict[str, dict[str, str]] = {"management": {}, "oob": {}}
    explicit_mgmt: set[tuple[int, int]] = set()
    for _loc, _addr, key, i, j in _explicit(f):
        if key == "management" and j < f.nodes[i].count:
            explicit_mgmt.add((i, j))
    start, offset = [], 0  # index in site.hosts of each group's first host
    for ng in f.nodes:
        start.append(offset)
        offset += ng.count
    # derived management addresses first, so an explicit one colliding with them is caught
    for i, ng in enumerate(f.nodes):
        for j in range(ng.count):
            h = site.hosts[start[i] + j]
            if h.address and (i, j) not in explicit_mgmt:
                taken["management"].setdefault(h.address, h.name)
    for loc, addr, key, i, j in _explicit(f):
        ng = f.nodes[i]
        if j >= ng.count:
            yield Issue(loc, f"node group {ng.group!r} has {ng.count} nodes but lists a {j + 1}th "
                        f"{key} address ({addr}); it is unused",
                        f"list exactly {ng.count} addresses", Severity.warning)
            continue
        host = site.hosts[start[i] + j].name
        cidr = cidrs[key]
        if cidr is None:
            yield Issue(loc, f"{host} has an explicit {key} address {addr} but fabric.{key} is not declared",
                        f"declare fabric.{key} with a cidr containing {addr}")
            continue
        net, ip = ipaddress.IPv4Network(cidr), ipaddress.IPv4Address(addr)
        if ip not in net or (net.prefixlen < 31 and ip in (net.network_address, net.broadcast_address)):
            yield Issue(loc, f"{key} address {addr} of {host} is not a host address of {cidr}",
                        f"use an address inside {cidr}, or change fabric.{key}.cidr")
        elif addr in taken[key]:
            yield Issue(loc, f"{key} address {addr} of {host} is already used by {taken[key][addr]}",
                        "give every host a distinct address")
        else:
            taken[key][addr] = host


@rule("NET007", Severity.error, "Kubernetes service CIDR larger than /12")
def service_cidr(f: Factory, site: Site) -> Iterable[Issue]:
    """kube-apiserver refuses a `--service-cluster-ip-range` with more than 20 host bits on IPv4,
    i.e. larger than a /12 (kube-apiserver option validation, kubernetes/kubernetes#12820)."""
    if not f.kubernetes.enabled:
        return
    net = ipaddress.IPv4Network(f.kubernetes.service_cidr)
    if 32 - net.prefixlen > MAX_SERVICE_HOST_BITS:
        yield Issue(("kubernetes", "service_cidr"),
                    f"service CIDR {net} is a /{net.prefixlen}; kube-apiserver accepts at most a /12",
                    "use a /12 or smaller range (the default is 10.96.0.0/12)")


@rule("NET008", Severity.error, "Lab host address not on the lab subnet")
def lab_addresses(f: Factory, site: Site) -> Iterable[Issue]:
    """On a `provider: lab` site every host takes its management address on the lab bridge,
    so that address must be a host address of `site.lab.subnet` other than the bridge's own
    (the subnet's first address). Otherwise `factoryctl apply` could not start the host
    where the inventory says it is."""
    if f.site.provider != "lab":
        return
    subnet = ipaddress.IPv4Network(f.site.lab.subnet if f.site.lab else LAB_DEFAULT_SUBNET)
    bridge = subnet.network_address + 1
    loc = ("site", "lab", "subnet") if f.site.lab else ("site", "provider")
    bad = [h.name for h in site.hosts if h.address and (
        ipaddress.IPv4Address(h.address) not in subnet
        or ipaddress.IPv4Address(h.address) in (subnet.network_address, subnet.broadcast_address, bridge))]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        yield Issue(loc, f"lab host(s) {shown} get management addresses outside the lab subnet {subnet} "
                         f"(or its bridge address {bridge})",
                    f"set fabric.management.cidr to {subnet} (or a network inside it) with the gateway {bridge}")
