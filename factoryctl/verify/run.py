"""Run the host checks: pytest + testinfra (+ xdist) as a subprocess, over SSH or locally.

Each run works in its own folder, ``runs/<id>/hostchecks/``, holding exactly what ran: the
checks (generated from the model, as ``factoryctl render`` writes build/verify/checks.json),
the test module, the inventory testinfra reads, pytest's JUnit XML and the plugin's JSON
lines. How hosts are reached, in this order:

* the host list, groups and addresses of the rendered inventory (render/ansible_vars.py);
* ``<workspace>/inventory/connection.yml`` when apply wrote one (addresses Terraform created,
  user, key, ssh options): its variables win;
* for ``provider: lab``, the lab in ``<workspace>/lab`` (its key, known_hosts and
  ssh_config, which multiplexes every SSH connection);
* ``--ssh-config`` given by the user (aliases, jump hosts, keys) for any other site.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engines.inventory import read_connection
from ..engines.toolpath import child_env, use_own_tools
from ..render import ansible_vars
from ..render import hostchecks as generate
from ..resources import templates_dir
from .probes import HEALTH_DIR_ENV
from .results import CheckResult, read_pytest_results

PYTEST_INI = "[pytest]\naddopts = -p no:cacheprovider\n"


@dataclass
class Connection:
    mode: str  # ssh | local
    inventory: Path | None = None
    ssh_config: Path | None = None
    local_name: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def pytest_args(self) -> list[str]:
        if self.mode == "local":
            return ["--hosts=local://", f"--factoryctl-local-name={self.local_name}"]
        args = ["--hosts=ansible://all", f"--ansible-inventory={self.inventory}"]
        if self.ssh_config:
            args.append(f"--ssh-config={self.ssh_config}")
        return args

    def testinfra_host(self, name: str):
        """The testinfra Host for `name` (for the benchmark stage, in this process)."""
        import testinfra

        os.environ.update({k: v for k, v in self.env.items() if k not in os.environ})
        # testinfra runs `ansible-inventory` through the shell with this process's environment
        # (testinfra/utils/ansible_runner.py takes no env): its PATH must lead to ours.
        use_own_tools()
        if self.mode == "local":
            return testinfra.get_host("local://")
        kwargs: dict[str, Any] = {"ansible_inventory": str(self.inventory), "force_ansible": False}
        if self.ssh_config:
            kwargs["ssh_config"] = str(self.ssh_config)
        return testinfra.get_host(f"ansible://{name}", **kwargs)


def lab_dir(workspace: Path) -> Path:
    return workspace / "lab"  # where the lab stack's `factoryctl lab up` keeps the site's lab


def lab_not_up(site, workspace: Path) -> str | None:
    """Why a `provider: lab` site cannot be reached, or None. Read from the lab's state and the
    kernel's interfaces only: with the lab's bridge gone, packets to its addresses would leave
    through the machine's default route, so nothing is sent to find out."""
    if site.factory.site.provider != "lab":
        return None
    from ..engines.lab import Lab

    root = lab_dir(workspace)
    hosts = Lab(root).hosts() if (root / "lab.json").is_file() else {}
    declared = {h.name for h in site.hosts}
    if not hosts:
        return f"the lab of this site is not up (no lab in {root})"
    if missing := sorted(declared - hosts.keys()):
        return f"lab host(s) {', '.join(missing)} not running in {root}"
    from ..engines.lab.site import bridge_down

    return bridge_down(site.factory)


def inventory(site, workspace: Path) -> tuple[dict, Path | None]:
    """The Ansible inventory testinfra reads (JSON, a valid YAML inventory) and the ssh_config
    to multiplex with, when there is one."""
    facts = site.to_dict()
    inv = ansible_vars.inventory(facts["hosts"], {g["name"]: g for g in facts["groups"]})
    hostvars = {h: dict(v) for h, v in inv["hostvars"].items()}
    common: dict[str, Any] = {}
    ssh_config = None
    # written by apply from Terraform's outputs
    for name, v in read_connection(workspace / "inventory" / "connection.yml").items():
        if name in hostvars:
            hostvars[name].update(v or {})
    lab_root = lab_dir(workspace)
    if site.factory.site.provider == "lab" and (lab_root / "lab.json").is_file():
        from ..engines.lab import Lab

        lab = Lab(lab_root)
        common = lab.connection_vars()
        for name, address in lab.hosts().items():
            if name in hostvars:
                hostvars[name]["ansible_host"] = address
        if lab.ssh_config_path.is_file():
            ssh_config = lab.ssh_config_path
    args = str(common.get("ansible_ssh_common_args", ""))
    for opt in ("ConnectTimeout=10", "BatchMode=yes"):  # a dead host or a password prompt must not hang verify
        if opt.split("=")[0] not in args:
            args = f"{args} -o {opt}".strip()
    common["ansible_ssh_common_args"] = args
    children = {g: {"hosts": {h: {} for h in members}} for g, members in inv["groups"].items() if members}
    doc = {"all": {"hosts": hostvars, "vars": common, "children": children}}
    return doc, ssh_config


def ansible_env(folder: Path) -> dict[str, str]:
    """Ansible (testinfra's inventory reader) keeps its files under the run folder."""
    home = folder / "ansible-home"
    # testinfra's Ansible backend shells out to ansible-inventory: the one beside this Python,
    # whatever PATH holds (engines/toolpath.py).
    return {"ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"), "ANSIBLE_HOST_KEY_CHECKING": "False",
            "PATH": child_env()["PATH"]}


def connect(site, workspace: Path, folder: Path, mode: str = "ssh", ssh_config: Path | None = None,
            local_name: str | None = None) -> Connection:
    folder.mkdir(parents=True, exist_ok=True)
    env = ansible_env(folder)
    if mode == "local":
        return Connection("local", local_name=local_name or socket.gethostname().split(".")[0], env=env)
    doc, lab_config = inventory(site, workspace)
    path = folder / "inventory.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Connection("ssh", inventory=path, ssh_config=ssh_config or lab_config, env=env)


def prepare(site, folder: Path) -> list[dict]:
    """Write the checks and the test module into the run folder; the checks to expect."""
    doc = generate.build(site)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checks.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.copyfile(templates_dir() / "verify" / "test_hosts.py", folder / "test_hosts.py")
    (folder / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    return doc["checks"]


def selected(checks: list[dict], conn: Connection, limit: list[str] | None) -> list[dict]:
    from .plugin import select

    if conn.mode == "local":
        return select(checks, ["local://"], conn.local_name)
    return select(checks, [f"ansible://{h}" for h in (limit or ["all"])], "")


HOSTS_PER_WORKER = 8  # below this, one process is faster: an xdist worker costs seconds to start


def default_jobs(hosts: int) -> int:
    """xdist workers for this many hosts: none on small sites (SSH multiplexing makes each check
    a local socket round trip, which gains far more than xdist; benchmarks/README.md), then
    one per HOSTS_PER_WORKER hosts, up to the CPUs and 8."""
    return max(1, min(-(-hosts // HOSTS_PER_WORKER) if hosts >= HOSTS_PER_WORKER else 1, os.cpu_count() or 1, 8))


def health_consistency(folder: Path) -> list[CheckResult]:
    """The odd GPU node out in driver, CUDA and VBIOS across the nvidia-smi -q -x outputs the
    gpu-health checks kept (health.consistency): a warning on that node, never a failure."""
    from ..health import HealthInputError, consistency, parse_text

    sources = []
    for path in sorted(folder.glob("*.nvidia-smi-q-x.txt")) if folder.is_dir() else []:
        try:
            sources.append(parse_text(path.read_text(encoding="utf-8"), path.name, path.name.split(".")[0]))
        except (HealthInputError, OSError, UnicodeDecodeError):
            continue  # its own gpu-health check already failed on it
    return [CheckResult(f.host or "(site)", f.check, "passed",
                        f"warning: {f.value} where {f.expected} expected: {f.detail}", f.host or "(site)")
            for f in consistency(sources)]


@dataclass
class HostCheckRun:
    results: list[CheckResult]
    problems: list[str]
    returncode: int
    command: list[str]


def run_checks(site, conn: Connection, folder: Path, *, jobs: int | None = None,
               limit: list[str] | None = None, timeout: float = 900) -> HostCheckRun:
    """Run every selected check; each one ends as passed, failed, error or skipped."""
    checks = prepare(site, folder)
    chosen = selected(checks, conn, limit)
    results_path = folder / "results.jsonl"
    results_path.unlink(missing_ok=True)
    workers = jobs if jobs is not None else default_jobs(len({c["on"] for c in chosen}))
    args = conn.pytest_args()
    if limit and conn.mode == "ssh":
        args[0] = "--hosts=" + ",".join(f"ansible://{h}" for h in limit)
    cmd = [sys.executable, "-m", "pytest", str(folder / "test_hosts.py"), "-c", str(folder / "pytest.ini"),
           "--rootdir", str(folder), "-p", "factoryctl.verify.plugin", "-q", "--no-header", "-rN",
           "--color=no", f"--factoryctl-results={results_path}", f"--junitxml={folder / 'pytest-junit.xml'}",
           *args]
    if workers > 1:
        cmd += ["-n", str(workers), "--dist", "loadgroup"]
    else:
        cmd += ["-p", "no:xdist"]
    env = os.environ | conn.env | {"PYTHONDONTWRITEBYTECODE": "1", HEALTH_DIR_ENV: str(folder / "health")}
    log = folder / "pytest.log"
    problems: list[str] = []
    if not chosen:
        return HostCheckRun([], ["no host checks selected"], 0, cmd)
    try:
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.run(cmd, cwd=folder, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = 124
        problems.append(f"host checks stopped after {timeout:.0f} s")
    if rc not in (0, 1):  # 1: some test failed; anything else: pytest itself had trouble
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        problems.append(f"pytest exited {rc}: " + " | ".join(tail))
    results, more = read_pytest_results(results_path, chosen)
    results += health_consistency(folder / "health")
    shutil.rmtree(folder / "ansible-home", ignore_errors=True)
    return HostCheckRun(results, problems + more, rc, cmd)
