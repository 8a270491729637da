"""The lab network: one Linux bridge on the machine, one network namespace per host with a
veth into the bridge. Hosts get no default route, so nothing leaves the bridge."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

from .errors import LabError

NETNS_DIR = Path("/run/netns")


def ip(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True)
    if check and res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise LabError(
            f"'ip {' '.join(args)}' failed ({msg[0] if msg else res.returncode})",
            "check that you are root and the kernel has veth and bridge support",
        )
    return res


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def route_conflict(subnet: str, bridge: str) -> str | None:
    """A route on another device that overlaps subnet, as text, or None."""
    net = ipaddress.ip_network(subnet)
    res = ip("-j", "route", "show", "table", "all", check=False)
    try:
        routes = json.loads(res.stdout or "[]")
    except json.JSONDecodeError:
        return None
    for r in routes:
        dst, dev = r.get("dst", ""), r.get("dev", "")
        if dev == bridge or dst in ("default", "") or r.get("type") in ("broadcast", "local"):
            continue
        try:
            other = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if other.version == 4 and other.overlaps(net):
            return f"{dst} on {dev}"
    return None


def check_subnet_free(subnet: str, bridge: str) -> None:
    conflict = route_conflict(subnet, bridge)
    if conflict:
        raise LabError(
            f"lab subnet {subnet} overlaps the route {conflict}",
            "choose another subnet (--subnet)",
        )


def ensure_bridge(bridge: str, iface: ipaddress.IPv4Interface) -> None:
    check_subnet_free(str(iface.network), bridge)
    if not link_exists(bridge):
        ip("link", "add", bridge, "type", "bridge")
    addrs = ip("-j", "addr", "show", "dev", bridge).stdout
    have = {
        f"{a['local']}/{a['prefixlen']}"
        for i in json.loads(addrs or "[]")
        for a in i.get("addr_info", [])
        if a.get("family") == "inet"
    }
    if str(iface) not in have:
        ip("addr", "add", str(iface), "dev", bridge)
    ip("link", "set", bridge, "up")


def bridge_ports(bridge: str) -> list[str]:
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except FileNotFoundError:
        return []


class HostLink(NamedTuple):
    netns: str
    veth: str  # the machine's end, a bridge port
    mac: str  # of the host's eth0
    cidr: str  # the host's address with prefix length


def add_hosts(links: list[HostLink], bridge: str) -> None:
    """Create each host's namespace and a veth whose peer is the host's eth0, plug it into
    the bridge, then address the host side: one `ip` for all hosts plus one per host."""
    if not links:
        return
    batch = []
    for link in links:
        batch += [
            f"netns add {link.netns}",
            f"link add {link.veth} type veth peer name eth0 address {link.mac} netns {link.netns}",
            f"link set {link.veth} master {bridge} up",
        ]
    ip("-batch", "-", stdin="\n".join(batch) + "\n")
    for link in links:
        ip("-n", link.netns, "-batch", "-", stdin=host_net_script(link))


def host_net_script(link: HostLink) -> str:
    """The `ip -batch` lines that give a host its network: loopback, and its address on eth0.
    Adding the address makes the kernel add the bridge subnet's connected route, and that is
    the host's only route: no default route, so a lookup of any outside address fails with
    "Network is unreachable" before a packet is sent (the lab's packages come from the
    machine's image, not from a mirror)."""
    return f"link set lo up\naddr add {link.cidr} dev eth0\nlink set eth0 up\n"


def delete_netns(name: str) -> None:
    # Deleting the namespace also destroys the veth pair inside it.
    if netns_path(name).exists():
        ip("netns", "delete", name, check=False)
        netns_path(name).unlink(missing_ok=True)


def delete_link(name: str) -> None:
    if link_exists(name):
        ip("link", "delete", name, check=False)


def delete_bridge(bridge: str) -> None:
    for port in bridge_ports(bridge):
        delete_link(port)
    delete_link(bridge)


def release_netns_dir() -> None:
    # `ip netns add` bind-mounts /run/netns onto itself and never undoes it: undo it once
    # no namespace is left in it, so a torn-down lab leaves no mount behind.
    if list_netns():
        return
    with open("/proc/self/mountinfo") as fh:
        mounted = any(line.split()[4] == str(NETNS_DIR) for line in fh)
    if mounted:
        subprocess.run(["umount", str(NETNS_DIR)], capture_output=True)
