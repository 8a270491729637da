"""A `provider: lab` site's hosts, seen from the workspace: where the lab lives, how to reach
its hosts, and bringing back hosts that stopped answering.

Terraform creates and removes the hosts (the lab stack's local-exec calls `factoryctl lab
up/down`), so its state tracks them. A terraform_data resource cannot notice that a host
died, though (a killed sshd, a machine reboot); apply asks the lab and restarts such hosts
before Ansible runs, keeping their disks, like a machine that reboots.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...workspace import Workspace
from . import HostSpec, Lab


def is_lab(checked) -> bool:
    return checked.factory.site.provider == "lab"


def lab_of(checked, ws: Workspace, log: Callable[[str], None] | None = None) -> Lab:
    """The site's lab, on the subnet and bridge factory.yaml names."""
    settings = checked.factory.site.lab
    subnet = settings.subnet if settings else checked.factory.fabric.management.cidr
    bridge = settings.bridge if settings else None
    return Lab(ws.lab_dir, subnet=subnet, bridge=bridge, log=log)


def specs(checked, addresses: dict[str, str]) -> list[HostSpec]:
    """What each lab host must be: the address Terraform gave it, the GPUs resolve counted."""
    gpus = {h.name: h.gpus for h in checked.site.hosts}
    return [HostSpec(name, addresses[name], gpus.get(name, 0)) for name in sorted(addresses)]


def bridge_down(factory) -> str | None:
    """Why a lab site's hosts cannot be reached at all, or None: without the lab's bridge,
    packets to their addresses would leave through the machine's default route, so callers
    send nothing when this says so."""
    settings = factory.site.lab
    bridge = settings.bridge if settings else "fctlbr0"
    if not Path("/sys/class/net", bridge).exists():
        return f"the lab's bridge {bridge} does not exist: its hosts are down"
    return None


def revive(lab: Lab, wanted: list[HostSpec]) -> list[str]:
    """Restart the wanted hosts that do not answer on SSH; the names restarted."""
    alive = {i.name for i in lab.status() if i.alive}
    dead = sorted(s.name for s in wanted if s.name not in alive)
    if dead:
        lab.up([s for s in wanted if s.name in dead])
    return dead


def prepare_image(log: Callable[[str], None]) -> None:
    """Build the cached host image now, in view, rather than silently inside Terraform's
    first `lab up` (a minute or so, once per machine and package list)."""
    from . import preflight
    from .rootfs import RootfsSpec, cached, ensure_rootfs

    preflight.require_root("up")
    preflight.require_tools()
    spec = RootfsSpec()
    if cached(spec) is None:  # ensure_rootfs says what it builds and how long it took
        ensure_rootfs(spec, log=log)


def lab_dir_for(file: Path, name: str) -> Path:
    return Workspace.beside(file, name).lab_dir
