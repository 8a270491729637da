"""The lab's address and naming plan: pure functions, no side effects.

Hosts live on one private IPv4 subnet behind a Linux bridge. The bridge takes the first
address; host number i (0-based, in the order asked for) takes network + 10 + i unless an
address is given. Kernel object names are derived from the bridge so that two labs with
different bridges never touch each other's namespaces or links.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import LabError

DEFAULT_SUBNET = "10.199.0.0/24"
DEFAULT_BRIDGE = "fclab0"
HOST_OFFSET = 10  # .1 is the bridge; leave a few low addresses free for humans
MAX_FAKE_GPUS = 64

HOSTNAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# IFNAMSIZ caps it at 15; no "-", so "<bridge>-<host>" netns names split unambiguously.
_IFNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,14}$")


@dataclass(frozen=True)
class HostSpec:
    """A host to run: its name, an optional fixed address, and fake GPU device nodes."""

    name: str
    address: str | None = None
    fake_gpus: int = 0


def check_name(name: str) -> str:
    # Slurm, /etc/hosts and ssh all need a plain DNS label; upper case breaks Slurm lookups.
    if not HOSTNAME.match(name):
        raise LabError(
            f"invalid host name {name!r}",
            "use lower-case letters, digits and '-', starting with a letter (max 63)",
        )
    return name


def check_bridge(bridge: str) -> str:
    if not _IFNAME.match(bridge):
        raise LabError(
            f"invalid bridge name {bridge!r}",
            "use up to 15 letters, digits or '_' (no '-'), starting with a letter",
        )
    return bridge


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"invalid subnet {subnet!r}", f"{exc}; e.g. {DEFAULT_SUBNET}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise LabError(f"subnet {subnet} is not IPv4", f"use an IPv4 /24, e.g. {DEFAULT_SUBNET}")
    if not net.is_private:
        raise LabError(f"subnet {subnet} is not private", "use an RFC 1918 range")
    if net.prefixlen > 27:
        raise LabError(f"subnet {subnet} is too small", "use /27 or larger, e.g. /24")
    return net


def bridge_interface(subnet: str) -> ipaddress.IPv4Interface:
    """The machine's own address on the lab bridge: the subnet's first host address."""
    net = parse_subnet(subnet)
    return ipaddress.IPv4Interface(f"{net.network_address + 1}/{net.prefixlen}")


def default_address(subnet: str, index: int) -> str:
    net = parse_subnet(subnet)
    addr = net.network_address + HOST_OFFSET + index
    if addr >= net.broadcast_address:
        raise LabError(f"host number {index} does not fit in {subnet}", "use a larger subnet")
    return str(addr)


def _check_address(address: str, net: ipaddress.IPv4Network, name: str) -> str:
    try:
        addr = ipaddress.IPv4Address(address)
    except ValueError:
        raise LabError(f"host {name}: invalid address {address!r}", "use an IPv4 address") from None
    usable = addr in net and addr not in (net.network_address, net.broadcast_address)
    if not usable or addr == net.network_address + 1:
        raise LabError(
            f"host {name}: address {address} is not usable in {net}",
            f"pick one from {net.network_address + 2} to {net.broadcast_address - 1}",
        )
    return str(addr)


def assign_addresses(
    specs: Iterable[HostSpec], subnet: str, running: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Address for every spec, in order.

    Hosts already running keep their address (changing it needs a down first). A new host
    without an address gets network + 10 + its index; if another host holds that address,
    the next free one above it. Fixed addresses are claimed before any default is handed
    out, so the result does not depend on where fixed hosts sit in the list.
    """
    net = parse_subnet(subnet)
    running = dict(running or {})
    specs = list(specs)
    names = [check_name(s.name) for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LabError(f"host names listed twice: {', '.join(dupes)}", "give each host once")

    result: dict[str, str] = {}
    taken: dict[str, str] = {addr: name for name, addr in running.items()}

    def claim(name: str, addr: str) -> None:
        holder = taken.get(addr)
        if holder is not None and holder != name:
            raise LabError(
                f"address {addr} wanted by {name} is held by {holder}",
                "give each host its own address",
            )
        taken[addr] = name
        result[name] = addr

    for spec in specs:
        fixed = _check_address(spec.address, net, spec.name) if spec.address else None
        current = running.get(spec.name)
        if current and fixed and fixed != current:
            raise LabError(
                f"host {spec.name} runs with address {current}, not {fixed}",
                f"run 'down' for {spec.name} first to change its address",
            )
        if current or fixed:
            claim(spec.name, current or fixed)  # type: ignore[arg-type]

    for index, spec in enumerate(specs):
        if spec.name in result:
            continue
        candidate = net.network_address + HOST_OFFSET + index
        while str(candidate) in taken:
            candidate += 1
        if candidate >= net.broadcast_address:
            raise LabError(
                f"no free address left in {subnet} for {spec.name}",
                "use a larger subnet or fewer hosts",
            )
        claim(spec.name, str(candidate))
    return result


def check_fake_gpus(spec: HostSpec) -> int:
    if not 0 <= spec.fake_gpus <= MAX_FAKE_GPUS:
        raise LabError(
            f"host {spec.name}: fake_gpus must be 0..{MAX_FAKE_GPUS}", f"got {spec.fake_gpus}"
        )
    return spec.fake_gpus


def netns_name(bridge: str, name: str) -> str:
    return f"{bridge}-{name}"


def veth_name(bridge: str, name: str) -> str:
    # Interface names are capped at 15 bytes, host names are not: use a short digest.
    digest = hashlib.sha256(f"{bridge}/{name}".encode()).hexdigest()[:11]
    return f"v{digest}"


def mac_address(bridge: str, name: str) -> str:
    # Stable per host: a restarted host keeps its MAC, so the ARP caches of the machine and
    # of the other hosts stay right (a fresh random MAC left it unreachable for ~30 s).
    digest = hashlib.sha256(f"mac/{bridge}/{name}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))  # locally administered, unicast
