"""The checks `factoryctl up` runs after apply, over SSH, until the full verify stage exists:
every host answers; munge encodes and decodes on every Slurm host and across hosts; each
controller's sinfo shows every declared partition with exactly its nodes, each idle or running
jobs (an inference deployment's job keeps its node allocated); srun runs on every compute node
that has a free CPU (a node its jobs fill is named, not waited for). Each check reports pass or fail with what it saw.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from ..engines.ssh import Remote
from ..ui import UI
from ..workspace import Workspace

IDLE_WAIT = 60.0  # slurmd registers within seconds of starting; nodes may show "unk" first


@dataclass
class Check:
    name: str
    host: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def _why(r: subprocess.CompletedProcess) -> str:
    text = (r.stderr or r.stdout or "").strip().splitlines()
    return f"exit {r.returncode}" + (f": {text[-1][:200]}" if text else "")


def with_role(checked, role: str) -> list[str]:
    return [h.name for h in checked.site.hosts if role in h.roles]


def expected_partitions(checked) -> dict[str, list[str]]:
    groups = checked.site.groups
    out = {}
    for p in checked.factory.slurm.partitions:
        names = [p.nodes] if isinstance(p.nodes, str) else list(p.nodes)
        out[p.name] = sorted(h for n in dict.fromkeys(names) if n in groups for h in groups[n].hostnames)
    return out


def check_reachable(remote: Remote, hosts: list[str]) -> list[Check]:
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        results = list(pool.map(lambda h: remote.run(h, ["hostname"], timeout=20), hosts))
    checks = []
    for h, r in zip(hosts, results, strict=True):
        ok = r.returncode == 0 and r.stdout.strip() == h
        checks.append(Check("reachable", h, ok, "ssh ok, hostname matches" if ok
                            else (f"answers as {r.stdout.strip()!r}" if r.returncode == 0 else _why(r))))
    return checks


def check_munge(remote: Remote, controller: str, hosts: list[str]) -> list[Check]:
    cred = remote.run(controller, ["munge", "-n"], timeout=20)
    checks = []
    for h in hosts:
        local = remote.run(h, ["sh", "-c", "munge -n | unmunge"], timeout=20)
        if local.returncode != 0:
            checks.append(Check("munge", h, False, f"munge -n | unmunge: {_why(local)}"))
            continue
        if cred.returncode != 0:
            checks.append(Check("munge", h, False, f"munge -n on {controller}: {_why(cred)}"))
            continue
        cross = remote.run(h, ["unmunge"], input=cred.stdout, timeout=20)
        checks.append(Check("munge", h, cross.returncode == 0,
                            f"decodes its own and {controller}'s credentials" if cross.returncode == 0
                            else f"cannot decode {controller}'s credential: {_why(cross)}"))
    return checks


def sinfo_nodes(remote: Remote, controller: str) -> dict[str, dict[str, str]] | str:
    """partition -> {node: state}, or why sinfo failed."""
    r = remote.run(controller, ["sinfo", "-h", "-N", "-o", "%P|%N|%t"], timeout=20)
    if r.returncode != 0:
        return _why(r)
    parts: dict[str, dict[str, str]] = {}
    for line in r.stdout.splitlines():
        bits = line.strip().split("|")
        if len(bits) == 3:
            parts.setdefault(bits[0].rstrip("*"), {})[bits[1]] = bits[2]
    return parts


# sinfo(1) compact states of a healthy node: free, partly or fully running jobs, finishing one.
# Anything else (down, drain, fail, unk, ...) or a '*' (not responding) is a finding.
HEALTHY = ("idle", "mix", "alloc", "comp")


def _healthy(state: str) -> bool:
    return state in HEALTHY


def check_sinfo(remote: Remote, controller: str, expected: dict[str, list[str]],
                wait: float = IDLE_WAIT) -> list[Check]:
    deadline = time.monotonic() + wait
    while True:
        seen = sinfo_nodes(remote, controller)
        ready = isinstance(seen, dict) and all(
            sorted(seen.get(p, {})) == nodes and all(_healthy(s) for s in seen[p].values())
            for p, nodes in expected.items())
        if ready or time.monotonic() >= deadline:
            break
        time.sleep(2)
    if isinstance(seen, str):
        return [Check("sinfo", controller, False, seen)]
    checks = []
    for p, nodes in expected.items():
        got = seen.get(p)
        if got is None:
            checks.append(Check(f"sinfo {p}", controller, False, f"partition {p} missing (sinfo shows: "
                                f"{', '.join(sorted(seen)) or 'none'})"))
            continue
        states = ", ".join(f"{n} {s}" for n, s in sorted(got.items()))
        ok = sorted(got) == nodes and all(_healthy(s) for s in got.values())
        detail = states if sorted(got) == nodes else f"nodes {', '.join(sorted(got))}, expected {', '.join(nodes)}"
        checks.append(Check(f"sinfo {p}", controller, ok, detail))
    return checks


def check_srun(remote: Remote, controller: str, compute: list[str], expected: dict[str, list[str]],
               busy: set[str] | frozenset[str] = frozenset()) -> list[Check]:
    """srun -N<compute nodes> hostname, in a partition holding them all (else per partition),
    on the nodes with a free CPU: a node its jobs fill (alloc) would make srun wait for them."""
    whole = [p for p, nodes in expected.items() if nodes == sorted(compute)]
    runs = [(whole[0], compute)] if whole else [(p, n) for p, n in expected.items() if n]
    if not expected:
        runs = [(None, compute)]
    checks = []
    for part, nodes in runs:
        free = [n for n in sorted(nodes) if n not in busy]
        skipped = sorted(set(nodes) - set(free))
        note = f" ({', '.join(skipped)} fully allocated to jobs: not tested)" if skipped else ""
        if not free:
            checks.append(Check(f"srun --partition={part}" if part else "srun", controller, True,
                                "every node is fully allocated to jobs: not tested"))
            continue
        argv = (["srun", f"-N{len(free)}"] + ([f"--partition={part}"] if part else [])
                + ([f"--nodelist={','.join(free)}"] if skipped else []) + ["hostname"])
        r = remote.run(controller, argv, timeout=90)
        got = sorted(r.stdout.split())
        ok = r.returncode == 0 and got == free
        detail = " ".join(got) if r.returncode == 0 else _why(r)
        checks.append(Check(" ".join(argv), controller, ok, (detail + note) if ok or r.returncode else
                            f"returned {detail or 'nothing'}, expected {' '.join(free)}"))
    return checks


def run_checks(checked, ws: Workspace) -> list[Check]:
    remote = Remote(checked, ws)
    hosts = [h.name for h in checked.site.hosts]
    checks = check_reachable(remote, hosts)
    down = {c.host for c in checks if not c.ok}
    slurm = checked.factory.slurm
    if slurm and slurm.enabled:
        controllers = with_role(checked, "slurm-controller")
        compute = with_role(checked, "slurm-compute")
        slurm_hosts = sorted(set(controllers) | set(compute) | set(with_role(checked, "login")))
        expected = expected_partitions(checked)
        for ctl in controllers:
            if ctl in down:
                checks.append(Check("slurm", ctl, False, "controller unreachable: Slurm checks not run"))
                continue
            checks += check_munge(remote, ctl, [h for h in slurm_hosts if h not in down])
            checks += check_sinfo(remote, ctl, expected)
            if compute:
                seen = sinfo_nodes(remote, ctl)
                busy = {n for nodes in seen.values() for n, st in nodes.items() if st == "alloc"} \
                    if isinstance(seen, dict) else set()
                checks += check_srun(remote, ctl, compute, expected, busy)
            break  # one controller runs the cluster checks; the others are backups
    return checks


def show_checks(checks: list[Check], ui: UI) -> None:
    """The Slurm checks as a table and one summary line (ui.show)."""
    t = Table(title="Verification", title_justify="left")
    for col in ("check", "host", "result", "detail"):
        t.add_column(col)
    for c in checks:
        t.add_row(c.name, c.host, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
    ui.show(t)
    failed = [c for c in checks if not c.ok]
    ui.show(f"{len(checks) - len(failed)} of {len(checks)} checks passed"
              + (f"; failed: {', '.join(sorted({f'{c.name} ({c.host})' for c in failed}))}" if failed else ""))


def cluster_status(checked, ws: Workspace, hosts: dict[str, str]) -> dict:
    """Whether the Kubernetes API answers on the first control-plane host (where the roles
    apply the rendered manifests)."""
    planes = with_role(checked, "kube-control-plane")
    if not planes:
        return {"status": "skipped", "reason": "no host has the kube-control-plane role"}
    remote = Remote(checked, ws)
    r = remote.run(planes[0], ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "--raw", "/readyz"],
                   timeout=30)
    if r.returncode == 0 and r.stdout.strip() == "ok":
        return {"status": "ok", "reason": f"API ready on {planes[0]}; manifests applied by the Ansible roles"}
    return {"status": "skipped", "reason": f"no cluster reachable from {planes[0]} ({_why(r)})"}


def write_results(checks: list[Check], path: Path) -> None:
    from ..workspace import write_json

    write_json(path, {"checks": [c.to_dict() for c in checks], "passed": all(c.ok for c in checks)})
