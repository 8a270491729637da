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
from urllib.parse import urlsplit

from ...workspace import Workspace
from . import HostSpec, Lab, mirror
from . import addresses as address_plan
from .errors import LabError

# The model the lab can publish into its model store (tinymodel.py), by its folder name.
LAB_MODELS = ("tiny-llama",)


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


def _bridge_address(checked) -> str:
    settings = checked.factory.site.lab
    subnet = settings.subnet if settings else checked.factory.fabric.management.cidr
    return str(address_plan.bridge_interface(subnet).ip)


def mirror_spec(checked, log: Callable[[str], None] | None = None) -> mirror.MirrorSpec | None:
    """What the lab's mirror must serve for this site: the declared mirrors and http(s) model
    sources on the bridge's address (the only place a lab host reaches), filled from the lab
    cache (built first where absent). None when the site declares nothing there."""
    from .tinymodel import cached_tiny_model
    from .wheelhouse import cached_wheelhouse

    f = checked.factory
    bridge = _bridge_address(checked)
    pypi = [u for u in (f.site.mirrors.pypi if f.site.mirrors else []) if urlsplit(u).hostname == bridge]
    models = [i for i in f.inference if i.model_source.startswith("http://")
              and urlsplit(i.model_source).hostname == bridge]
    served = [*pypi, *(i.model_source for i in models)]
    if not served:
        return None
    ports = sorted({urlsplit(u).port or 80 for u in served})
    if len(ports) > 1 or any(u.startswith("https://") for u in served):
        raise LabError(f"the lab serves its mirror on one http port of {bridge}, and factory.yaml names "
                       + ", ".join(str(p) for p in ports),
                       f"use http://{bridge}:{ports[0]}/ for site.mirrors.pypi and the models' model_source")
    for u in pypi:
        if urlsplit(u).path.rstrip("/") != "/simple":
            raise LabError(f"{u}: the lab serves its Python index at /simple/", f"use http://{bridge}:{ports[0]}/simple/")
    folders: dict[str, str] = {}
    for i in models:
        parts = [p for p in urlsplit(i.model_source).path.split("/") if p]
        if len(parts) != 2 or parts[0] != "models" or parts[1] not in LAB_MODELS:
            raise LabError(f"inference {i.name}: the lab's model store holds {', '.join(LAB_MODELS)} under /models/, "
                           f"not {i.model_source}",
                           f"use model_source: http://{bridge}:{ports[0]}/models/{LAB_MODELS[0]}/")
        folders[parts[1]] = str(cached_tiny_model(log=log))
    packages = sorted({p for i in f.inference if i.engine_install and not i.image for p in i.engine_install.packages})
    wheels = str(cached_wheelhouse(packages, log=log)) if pypi and packages else ""
    return mirror.MirrorSpec(bind=bridge, port=ports[0], wheelhouse=wheels, models=tuple(sorted(folders.items())))


def serve_mirror(checked, ws: Workspace, log: Callable[[str], None] | None = None) -> str | None:
    """Fill and start the lab's mirror for this site (idempotent); its base URL, or None."""
    spec = mirror_spec(checked, log)
    if spec is None:
        return None
    return mirror.ensure_running(ws.lab_dir, spec)


DBD_PASSWORD_ENV = "FACTORYCTL_SLURMDBD_STORAGE_PASS"  # render/slurm.py, the slurm role's default


def run_secrets(checked, ws: Workspace) -> dict[str, str]:
    """Secrets a lab site's playbook needs that a person gives a real site at run time: the
    accounting database's password, made once per lab (random, 0600 in the lab's keys) unless
    the environment gives one. Passed to Ansible's environment only, never written to the build."""
    import os
    import secrets

    from ...files import atomic_write

    if not is_lab(checked) or not checked.factory.slurm.accounting or os.environ.get(DBD_PASSWORD_ENV):
        return {}
    path = ws.lab_dir / "keys" / "slurmdbd-storage-pass"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, secrets.token_urlsafe(24).encode(), 0o600)
    return {DBD_PASSWORD_ENV: path.read_text().strip()}
