"""`verify --quarantine`: keep nodes whose own checks fail out of users' jobs, and give them
back once they pass again, without ever touching a node someone else took out.

* Slurm: a failing node is drained from a controller with
  ``scontrol update nodename=N state=drain reason="factoryctl: <checks>"`` (scontrol(1): DRAIN
  lets running jobs finish and places no new ones); a node whose own checks pass again is
  resumed (``state=resume``) only when the workspace records that factoryctl drained it AND
  its reason, read back with ``sinfo -N -o '%N|%T|%E'`` (%E: the reason, sinfo(1)), still
  starts with ``factoryctl:``. A node drained, down or failed with another reason (an
  operator's, or the HealthCheckProgram's ``factoryctl-hc:``) is left as it is.
* Kubernetes: ``kubectl cordon N`` plus the taint ``factoryctl.io/quarantine=<check>:NoSchedule``
  (kubectl taint(1); the taint says why, the cordon keeps even pods that tolerate every
  NoSchedule taint away); released with ``kubectl taint node N factoryctl.io/quarantine:NoSchedule-``
  and ``kubectl uncordon N`` — the uncordon only where the node was schedulable before
  factoryctl cordoned it.

Which nodes fail: the checks a host runs on itself (``on == host``: daemons, mounts, disk
space, time sync, GPUs, fabric ports); scheduler views (slurm-node, kube-node) and inference
endpoints judge the scheduler or a deployment, not the node. A node some of whose checks did
not run (``--host`` elsewhere) is neither drained nor resumed. As NVSentinel's circuit
breaker does, factoryctl refuses to quarantine more than half of a scheduler's nodes at once
(a single failing node is always taken out):
that many failures point at verify's own reach (its network, its key), not at the nodes.

The record, ``.factory/<name>/quarantine.json``, is written atomically under the site's lock:
``{"schema": "factoryctl.quarantine/v1", "slurm": {node: {...}}, "kubernetes": {node: {...}}}``,
each entry with the reason, the checks, the run and the time it was drained.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..files import ReadRefused, read_text
from ..workspace import Workspace, write_json
from .probes import KUBECTL, QUARANTINE_REASON, STATE_FLAGS
from .results import CheckResult

SCHEMA = "factoryctl.quarantine/v1"
RECORD = "quarantine.json"
REASON_PREFIX = QUARANTINE_REASON  # verify's drains; the HealthCheckProgram's start "factoryctl-hc:"
TAINT_KEY = "factoryctl.io/quarantine"
MAX_FRACTION = 0.5  # circuit breaker: at most this share of a scheduler's nodes quarantined at once
MAX_REASON = 200  # Slurm keeps the reason as a string; a long list of checks is cut
SINFO_REASONS = "sinfo -h -N -a -o '%N|%T|%E'"
DRAINED = ("drain", "drained", "draining", "down", "fail", "failing")  # states that keep jobs away


@dataclass
class Action:
    """One thing verify did, or decided not to do, to one node."""

    scheduler: str  # slurm | kubernetes
    node: str
    action: str  # drained | resumed | kept | left | failed | refused
    reason: str = ""
    detail: str = ""
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Run = Callable[[str, str], Any]  # (host, command) -> object with rc, stdout, stderr


def failing_nodes(checks: list[CheckResult]) -> tuple[dict[str, list[str]], set[str]]:
    """(node -> its own failed or errored checks, nodes whose own checks all ran and none failed)."""
    bad: dict[str, list[str]] = {}
    seen: set[str] = set()
    for c in checks:
        if c.on and c.on != c.host:
            continue  # a scheduler's view of the node, or an endpoint: not the node's own health
        seen.add(c.host)
        if c.status in ("failed", "error"):
            bad.setdefault(c.host, []).append(c.check)
    return bad, seen - bad.keys()


def reason(checks: list[str]) -> str:
    text = f"{REASON_PREFIX} {','.join(checks)}"
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def drain_command(node: str, why: str) -> str:
    return f"scontrol update nodename={shlex.quote(node)} state=drain reason={shlex.quote(why)}"


def resume_command(node: str) -> str:
    return f"scontrol update nodename={shlex.quote(node)} state=resume"


_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def taint_value(check: str) -> str:
    """A taint value is a label value: at most 63 characters of [A-Za-z0-9_.-], starting and
    ending alphanumeric (Kubernetes docs, "Labels and Selectors": syntax and character set)."""
    v = _LABEL_BAD.sub("-", check)[:63].strip("-_.")
    return v or "failed"


def cordon_commands(node: str, check: str) -> list[str]:
    n = shlex.quote(node)
    return [f"{KUBECTL} cordon {n}",
            f"{KUBECTL} taint node {n} {TAINT_KEY}={taint_value(check)}:NoSchedule --overwrite"]


def release_commands(node: str, uncordon: bool) -> list[str]:
    n = shlex.quote(node)
    out = [f"{KUBECTL} taint node {n} {TAINT_KEY}:NoSchedule-"]
    return out + ([f"{KUBECTL} uncordon {n}"] if uncordon else [])


def parse_sinfo_reasons(text: str) -> dict[str, dict[str, str]]:
    """node -> {"state": base state without flags, "raw": sinfo's %T, "reason": %E}; sinfo -N
    prints a node once per partition, the rows agree."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        f = line.strip().split("|", 2)
        if len(f) < 2 or not f[0]:
            continue
        why = f[2].strip() if len(f) > 2 else ""
        out[f[0]] = {"state": f[1].strip().rstrip(STATE_FLAGS).lower(), "raw": f[1].strip(),
                     "reason": "" if why in ("none", "(null)") else why}
    return out


def is_out(state: str) -> bool:
    """Whether a node in this sinfo %T state (drained, draining, down, ...) takes no new jobs."""
    return any(part in DRAINED for part in state.replace("+", " ").split())


# --- the record --------------------------------------------------------------------------------


def read_record(ws: Workspace) -> dict[str, Any]:
    path = ws.root / RECORD
    empty = {"schema": SCHEMA, "slurm": {}, "kubernetes": {}}
    if not path.is_file():
        return empty
    try:
        doc = json.loads(read_text(path, 16 * 1024 * 1024))
    except (ReadRefused, ValueError) as e:
        raise QuarantineError(f"{path}: not a quarantine record factoryctl wrote ({e}); move it away, "
                              "and check `sinfo -R` for nodes drained with a 'factoryctl:' reason") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise QuarantineError(f"{path}: not a {SCHEMA} record; move it away")
    for key in ("slurm", "kubernetes"):
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
    return doc


def write_record(ws: Workspace, doc: dict[str, Any]) -> None:
    write_json(ws.root / RECORD, doc)


class QuarantineError(Exception):
    """The record cannot be read: nothing is drained or resumed."""


# --- the decisions -----------------------------------------------------------------------------


def _ok(res) -> bool:
    return getattr(res, "rc", 1) == 0


def _why(res) -> str:
    lines = [ln.strip() for ln in (getattr(res, "stderr", "") or getattr(res, "stdout", "") or "").splitlines()
             if ln.strip()]
    return lines[-1][:200] if lines else f"exit {getattr(res, 'rc', '?')}"


def _breaker(scheduler: str, bad: dict[str, list[str]], nodes: list[str]) -> list[Action] | None:
    failing = [n for n in nodes if n in bad]
    if len(failing) > max(1.0, MAX_FRACTION * len(nodes)):  # one node alone is always taken out
        why = (f"{len(failing)} of {len(nodes)} {scheduler} nodes fail their checks: more than "
               f"{MAX_FRACTION:.0%}, which points at verify's reach rather than the nodes; nothing quarantined")
        return [Action(scheduler, n, "refused", reason(bad[n]), why) for n in failing]
    return None


def slurm(run: Run, controller: str, nodes: list[str], bad: dict[str, list[str]], healthy: set[str],
          record: dict[str, Any], run_id: str, now: str) -> list[Action]:
    """Drain the failing Slurm nodes and resume the healthy ones factoryctl drained; `record`
    (the "slurm" part of the record) is updated in place."""
    if refused := _breaker("slurm", bad, nodes):
        return refused
    res = run(controller, SINFO_REASONS)
    if not _ok(res):
        return [Action("slurm", controller, "failed", "", f"{SINFO_REASONS} failed on {controller}: {_why(res)}")]
    states = parse_sinfo_reasons(res.stdout)
    out: list[Action] = []
    for node in nodes:
        cur = states.get(node)
        if node in bad:
            why = reason(bad[node])
            if cur is None:
                out.append(Action("slurm", node, "failed", why, "sinfo does not list the node"))
                continue
            if is_out(cur["state"]) and not cur["reason"].startswith(REASON_PREFIX):
                out.append(Action("slurm", node, "left", why,
                                  f"already {cur['raw']} with reason {cur['reason']!r}: not factoryctl's, left as is"))
                continue
            if is_out(cur["state"]) and node in record:
                out.append(Action("slurm", node, "kept", cur["reason"], f"still {cur['raw']}"))
                continue
            cmd = drain_command(node, why)
            r = run(controller, cmd)
            if _ok(r):
                record[node] = {"reason": why, "checks": bad[node], "run": run_id, "since": now}
                out.append(Action("slurm", node, "drained", why, f"was {cur['raw']}", [cmd]))
            else:
                out.append(Action("slurm", node, "failed", why, f"scontrol on {controller}: {_why(r)}", [cmd]))
        elif node in healthy and node in record:
            if cur is None:
                out.append(Action("slurm", node, "failed", "", "sinfo does not list the node; record kept"))
                continue
            if not cur["reason"].startswith(REASON_PREFIX) or not is_out(cur["state"]):
                del record[node]
                what = (f"reason now {cur['reason']!r}: someone else holds it" if cur["reason"]
                        else f"{cur['raw']}: already back")
                out.append(Action("slurm", node, "left", "", f"{what}; not resumed, dropped from the record"))
                continue
            cmd = resume_command(node)
            r = run(controller, cmd)
            if _ok(r):
                del record[node]
                out.append(Action("slurm", node, "resumed", cur["reason"], "its checks pass again", [cmd]))
            else:
                out.append(Action("slurm", node, "failed", cur["reason"], f"scontrol on {controller}: {_why(r)}", [cmd]))
    return out


def kube_state(run: Run, on: str, node: str) -> tuple[bool | None, list[dict]]:
    """(unschedulable, taints) of one node, or (None, []) when kubectl cannot say."""
    r = run(on, f"{KUBECTL} get node {shlex.quote(node)} -o json")
    if not _ok(r):
        return None, []
    try:
        spec = json.loads(r.stdout).get("spec", {})
    except ValueError:
        return None, []
    return bool(spec.get("unschedulable")), list(spec.get("taints") or [])


def kubernetes(run: Run, control_plane: str, nodes: list[str], bad: dict[str, list[str]], healthy: set[str],
               record: dict[str, Any], run_id: str, now: str) -> list[Action]:
    """Cordon and taint the failing Kubernetes nodes; release the healthy ones factoryctl
    quarantined and whose taint is still there. `record` ("kubernetes" part) updated in place."""
    if refused := _breaker("kubernetes", bad, nodes):
        return refused
    out: list[Action] = []
    for node in nodes:
        if node not in bad and not (node in healthy and node in record):
            continue
        cordoned, taints = kube_state(run, control_plane, node)
        if cordoned is None:
            out.append(Action("kubernetes", node, "failed", "", f"kubectl get node {node} failed on {control_plane}"))
            continue
        ours = [t for t in taints if t.get("key") == TAINT_KEY]
        if node in bad:
            why = reason(bad[node])
            if ours and node in record:
                out.append(Action("kubernetes", node, "kept", why, "still cordoned and tainted"))
                continue
            cmds = cordon_commands(node, bad[node][0])
            done = []
            for cmd in cmds:
                r = run(control_plane, cmd)
                if not _ok(r):
                    out.append(Action("kubernetes", node, "failed", why, f"{cmd}: {_why(r)}", done + [cmd]))
                    break
                done.append(cmd)
            else:
                prior = record.get(node, {}).get("was_cordoned", cordoned)
                record[node] = {"reason": why, "checks": bad[node], "run": run_id, "since": now,
                                "was_cordoned": prior}
                out.append(Action("kubernetes", node, "drained", why,
                                  "cordoned and tainted" + (" (it was cordoned already)" if cordoned else ""), cmds))
            continue
        entry = record[node]
        if not ours:
            del record[node]
            out.append(Action("kubernetes", node, "left", "", "taint removed by someone else; not uncordoned, "
                              "dropped from the record"))
            continue
        cmds = release_commands(node, uncordon=not entry.get("was_cordoned", False))
        failed = None
        for cmd in cmds:
            r = run(control_plane, cmd)
            if not _ok(r):
                failed = f"{cmd}: {_why(r)}"
                break
        if failed:
            out.append(Action("kubernetes", node, "failed", entry.get("reason", ""), failed, cmds))
        else:
            del record[node]
            out.append(Action("kubernetes", node, "resumed", entry.get("reason", ""),
                              "its checks pass again" + ("" if not entry.get("was_cordoned") else
                                                         "; left cordoned as it was before"), cmds))
    return out


def quarantine(site, ws: Workspace, checks: list[CheckResult], run: Run, run_id: str) -> list[Action]:
    """Drain/cordon the failing nodes, resume the ones factoryctl drained that pass again,
    and record it; the caller holds the site's lock."""
    bad, healthy = failing_nodes(checks)
    record = read_record(ws)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    f = site.factory
    actions: list[Action] = []
    controllers = [h.name for h in site.hosts if "slurm-controller" in h.roles]
    if f.slurm.enabled and controllers:
        nodes = [h.name for h in site.hosts if "slurm-compute" in h.roles]
        actions += slurm(run, controllers[0], nodes, bad, healthy, record["slurm"], run_id, now)
    planes = [h.name for h in site.hosts if "kube-control-plane" in h.roles]
    if f.kubernetes.enabled and planes:
        nodes = [h.name for h in site.hosts if {"kube-control-plane", "kube-worker"} & set(h.roles)]
        actions += kubernetes(run, planes[0], nodes, bad, healthy, record["kubernetes"], run_id, now)
    write_record(ws, record)
    return actions
