"""Fixtures for tests on real lab hosts: root, namespaces and the Debian mirror (once)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from factoryctl.engines.lab import HostSpec, Lab, RootfsSpec
from factoryctl.engines.lab import addresses as address_plan
from factoryctl.engines.lab.preflight import namespace_support
from factoryctl.engines.lab.rootfs import ensure_rootfs

THREE = [HostSpec("head01"), HostSpec("gpu01", fake_gpus=2), HostSpec("gpu02", fake_gpus=2)]


def _worker() -> int:
    # Each xdist worker gets its own bridges and subnets, so labs never meet.
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


_numbers = itertools.count()


def _lab_at(root: Path) -> Lab:
    n = _worker() * 16 + next(_numbers) % 16
    return Lab(root, bridge=f"fctest{n}", subnet=f"10.198.{n}.0/24")


@pytest.fixture(scope="session")
def lab_image() -> Path:
    reason = namespace_support()
    if reason:
        pytest.skip(f"lab hosts unavailable here: {reason}")
    return ensure_rootfs(RootfsSpec())


@pytest.fixture(scope="module")
def lab3(lab_image, tmp_path_factory) -> Iterator[Lab]:
    """Three running hosts (head01, gpu01 and gpu02 with 2 fake GPUs each) for a module."""
    lab = _lab_at(tmp_path_factory.mktemp("lab3"))
    try:
        lab.up(THREE)
        yield lab
    finally:
        lab.down()


@pytest.fixture
def make_lab(lab_image, tmp_path_factory) -> Iterator[Callable[[], Lab]]:
    """A factory of empty labs, each on its own bridge; all are taken down afterwards."""
    made: list[Lab] = []

    def make() -> Lab:
        made.append(_lab_at(tmp_path_factory.mktemp("lab")))
        return made[-1]

    yield make
    for lab in made:
        lab.down()


def traces(lab: Lab, names: list[str], whole: bool = True) -> dict[str, list[str]]:
    """What the kernel still holds for these hosts of a lab (whole: and for the lab itself):
    namespaces, links, mounts, processes."""
    bridge = lab._bridge
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    veths = {address_plan.veth_name(bridge, n) for n in names}
    with open("/proc/mounts") as fh:
        mounts = [
            line
            for line in fh
            if str(lab.root) in line and (whole or any(f"/hosts/{n}/" in line for n in names))
        ]
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        mine = any(f"{lab.root}/hosts/{n}/" in args for n in names) or (
            whole and str(lab.root) in args
        )  # ssh multiplexing masters name the lab dir
        if mine and state != "Z" and int(pid) != os.getpid():
            procs.append(f"{pid} {args.replace(chr(0), ' ')}")
    return {
        "netns": [
            ln
            for ln in netns.splitlines()
            if any(ln.split()[0] == address_plan.netns_name(bridge, n) for n in names)
        ],
        "links": [
            ln
            for ln in links.splitlines()
            if (whole and (f" {bridge}:" in ln or f"master {bridge} " in ln))
            or any(f" {v}@" in ln or f" {v}:" in ln for v in veths)
        ],
        "mounts": mounts,
        "processes": procs,
    }


# --- whole sites (factory.yaml -> plan/apply/destroy) -------------------------------------------

FACTORYCTL = str(Path(sys.executable).parent / "factoryctl")


def write_lab_site(folder: Path, name: str, subnet: str, bridge: str, compute: int = 2,
                   serve: bool = False) -> Path:
    """examples/lab.yaml (serve: the whole miniature factory, engine, accounting and monitoring
    included) or blueprints/lab (the Slurm site alone: the tests of apply, drift and faults need
    no engine, and installing it costs minutes per host) under another name, subnet and bridge,
    so sites never collide."""
    root = Path(__file__).resolve().parents[2]
    source = root / "examples" / "lab.yaml" if serve else root / "blueprints" / "lab" / "factory.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["metadata"]["name"] = name
    gateway = subnet.rsplit(".", 1)[0] + ".1"
    if serve:
        text = yaml.safe_dump(doc, sort_keys=False).replace("//10.77.0.1:", f"//{gateway}:")
        doc = yaml.safe_load(text)
    doc["site"]["lab"] = {"subnet": subnet, "bridge": bridge}
    doc["fabric"]["management"] = {"cidr": subnet, "gateway": gateway}
    doc["nodes"][1]["count"] = compute
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "factory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def fctl(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """The factoryctl command, as a user runs it (no terminal: plain progress)."""
    return subprocess.run([FACTORYCTL, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def site_traces(path: Path, name: str, bridge: str, hosts: list[str]) -> dict[str, list[str]]:
    """What a site left behind: the lab's kernel objects and processes, and any process
    (Ansible's SSH masters) naming the workspace."""
    ws = path.parent / ".factory" / name
    found = traces(Lab(ws / "lab", bridge=bridge), hosts)
    from factoryctl.engines.ansible import control_dir
    from factoryctl.workspace import Workspace

    marks = (str(ws), str(control_dir(Workspace(ws))))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if any(m in args for m in marks) and state != "Z" and int(pid) != os.getpid():
            found["processes"].append(f"{pid} {args.replace(chr(0), ' ')}")
    return found


def teardown_site(path: Path, name: str, bridge: str) -> None:
    """Destroy a test site whatever state it is in; then make sure of the lab and the masters."""
    try:
        fctl("destroy", str(path), "--auto-approve", timeout=300)
    finally:
        from factoryctl.engines.ansible import close_connections
        from factoryctl.workspace import Workspace

        ws = Workspace(path.parent / ".factory" / name)
        close_connections(ws)
        Lab(ws.lab_dir, bridge=bridge).down()


def kill_sshd(bridge: str, host: str) -> int:
    """Kill every sshd (listener and sessions) inside one lab host, from the machine."""
    ns = address_plan.netns_name(bridge, host)
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    killed = 0
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue
    return killed
