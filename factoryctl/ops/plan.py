"""`factoryctl plan`: validate, render into the workspace, plan every Terraform unit stack in
parallel (saving the plans apply will run) and say what an apply would do.

The summary has four parts, in text for people and JSON for CI:
- Terraform: resources to add/change/destroy, in total and per unit, naming the hosts;
- Ansible: the plays of the rendered site.yml, their hosts and roles;
- rendered files added/changed/removed since the last apply (applied.json's manifest);
- an impact class for every change, from "no-op" to "destroy" (IMPACTS).

Exit codes: 0 success (no changes with --detailed-exitcode), 2 changes (--detailed-exitcode
only), 1 invalid input or a failed Terraform stack.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..engines.terraform import PlanResult, Stack, Terraform, TerraformError
from ..errors import ExitCode
from ..files import atomic_write
from ..render.writer import MANIFEST
from ..resolve.airgap import MIRROR_HINT, AirGapError, missing_provider_mirror
from ..session import Checked
from ..workspace import Workspace
from .engine_env import site_engine
from .impact import IMPACTS, table

IMPACT_LABEL = {
    "none": "no-op",
    "add": "new capacity",
    "reload": "config reload",
    "restart": "service restart",
    "drain": "node reboot/drain",
    "destroy": "destroy",
}
MACHINES = {"aws_instance", "maas_instance", "openstack_compute_instance_v2"}
TF_ACTION_IMPACT = {"create": "add", "delete": "destroy", "replace": "destroy", "move": "none",
                    "import": "none", "remove": "none", "forget": "none"}
SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "added": "+", "changed": "~",
          "removed": "-"}
LIST_LIMIT = 20  # text output names at most this many hosts or files per line of kind
UNITS_SHOWN = 12  # text output lists at most this many changed units, then sums the rest


def worst(impacts) -> str:
    return max(impacts, key=IMPACTS.index, default="none")


def factory_hash(checked: Checked) -> str:
    doc = json.dumps(checked.factory.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


@dataclass
class PlanDocument:
    """What `plan` found, as plans/plan.json holds it (apply runs exactly its saved plans).
    `to_json()` is the document written byte for byte as before; `from_json` reads it back,
    so `PlanDocument.from_json(doc.to_json()) == doc`. The sections stay JSON objects: their
    shape is the plan.json format CI reads (`plan --format json`)."""

    factory: str
    factory_hash: str
    provider: str
    workspace: str
    build: str
    rendered: dict[str, Any]  # changed/added/removed counts of the render
    changes: bool
    terraform: dict[str, Any]  # totals, stacks (with changes and impacts), errors
    ansible: dict[str, Any]  # site.yml's plays, their hosts and whether they run
    files: dict[str, Any]  # rendered files added/changed/removed since the last apply
    impact: dict[str, Any]  # highest, counts, items
    # rendered file -> sha256: what apply checks the build against (`--format json` leaves it out)
    manifest: dict[str, str] | None = None
    timings: dict[str, float] | None = None  # set by the command: seconds per step
    run: str | None = None  # runs/<id>/ the document was recorded in
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer factoryctl wrote

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PlanDocument:
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in doc.items() if k in names},
                   extra={k: v for k, v in doc.items() if k not in names})

    def to_json(self, manifest: bool = True) -> dict[str, Any]:
        """The plan.json document (without the manifest for `--format json`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for optional in ("timings", "run", "manifest"):
            if out[optional] is None or (optional == "manifest" and not manifest):
                del out[optional]
        return {**out, **self.extra}

    def stacks(self) -> list[tuple[Stack, Path]]:
        """(stack, saved plan) for every stack planned: what apply runs."""
        return [(Stack(s["unit"], Path(s["dir"]), Path(s["state"]), Path(s["data_dir"])), Path(s["planfile"]))
                for s in self.terraform["stacks"]]

    def exit_code(self, detailed: bool) -> ExitCode:
        """1 when a stack failed to plan; 2 for changes with --detailed-exitcode; else 0."""
        if self.terraform["errors"]:
            return ExitCode.FAILED
        return ExitCode.CHANGES if detailed and self.changes else ExitCode.OK


# --- Terraform ------------------------------------------------------------------------------

@dataclass
class StackJob:
    unit: str
    stack: Stack
    planfile: Path
    orphan: bool  # its hosts all left factory.yaml: plan its destruction
    weight: int  # bigger first, so the parallel plans finish together


def stack_jobs(ws: Workspace, provider: str) -> list[StackJob]:
    units_dir = ws.build / "terraform" / provider / "units"
    if not units_dir.is_dir() and not (ws.build / "terraform" / provider).is_dir():
        raise TerraformError(f"factoryctl has no Terraform stacks for provider {provider!r} yet "
                             f"(templates/terraform/{provider}/); nothing can create its machines")
    units = sorted(p.name for p in units_dir.iterdir() if p.is_dir()) if units_dir.is_dir() else []
    jobs = []
    for u in units:
        d = units_dir / u
        tfvars = d / "hosts.auto.tfvars.json"
        jobs.append(StackJob(u, Stack(u, d, ws.state_file(provider, u), ws.data_dir(provider, u)),
                             ws.plan_file(provider, u), False, tfvars.stat().st_size if tfvars.is_file() else 0))
    for u in ws.units_with_state(provider):
        if u in units or not _has_resources(ws.state_file(provider, u)):
            continue
        if not units:
            raise TerraformError(f"unit {u} has state but no sibling stack to take its configuration from; "
                                 "destroy it with the factory.yaml it was applied from", stack=u)
        d = ws.orphan_dir(provider, u)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for f in (units_dir / units[0]).iterdir():
            if f.is_file() and not f.name.startswith("."):
                shutil.copy2(f, d / f.name)
        (d / "hosts.auto.tfvars.json").write_text('{\n  "hosts": {}\n}\n')
        jobs.append(StackJob(u, Stack(u, d, ws.state_file(provider, u), ws.data_dir(provider, u)),
                             ws.plan_file(provider, u), True, 1 << 30))
    return sorted(jobs, key=lambda j: -j.weight)


def _has_resources(state: Path) -> bool:
    try:
        return bool(json.loads(state.read_text()).get("resources"))
    except (OSError, ValueError):
        return True  # unreadable: let Terraform say what is wrong


def change_impact(c: dict) -> str:
    if c["action"] == "update":
        if c["type"] == "terraform_data":
            return "none"  # recorded facts; what changes on the node follows from the files
        return "drain" if c["type"] in MACHINES else "reload"
    return TF_ACTION_IMPACT.get(c["action"], "reload")


def terraform_section(provider: str, jobs: list[StackJob], results: list, engine: Terraform) -> dict:
    stacks, errors = [], []
    for job, r in zip(jobs, results, strict=True):
        if isinstance(r, BaseException):
            errors.append(str(r) if isinstance(r, TerraformError) else f"{job.unit}: {type(r).__name__}: {r}")
            continue
        assert isinstance(r, PlanResult)
        changes = []
        for c in r.changes:
            if c.action in ("noop", "read"):
                continue
            d = {"address": c.address, "type": c.type, "action": c.action,
                 "host": c.key if c.name == "host" and isinstance(c.key, str) else None}
            if c.reason:
                d["reason"] = c.reason
            d["impact"] = change_impact(d)
            changes.append(d)
        stacks.append({"unit": job.unit, "orphan": job.orphan, "add": r.add, "change": r.change,
                       "destroy": r.destroy, "outputs_changed": r.outputs_changed, "changed": r.changed,
                       "planfile": str(job.planfile), "dir": str(job.stack.dir), "state": str(job.stack.state),
                       "data_dir": str(job.stack.data_dir), "seconds": round(r.seconds, 3),
                       "warnings": r.warnings, "changes": changes,
                       "drift": [c.to_dict() for c in r.drift]})
    stacks.sort(key=lambda s: s["unit"])
    return {
        "engine": engine.kind,
        "provider": provider,
        "add": sum(s["add"] for s in stacks),
        "change": sum(s["change"] for s in stacks),
        "destroy": sum(s["destroy"] for s in stacks),
        "stacks": stacks,
        "errors": errors,
    }


# --- Ansible ----------------------------------------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
_Loader.add_constructor("!vault", lambda loader, node: "<vault>")


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a safe loader subclass
    except (OSError, yaml.YAMLError):
        return None


def inventory_groups(doc: Any) -> dict[str, set[str]]:
    """Group -> hosts of a YAML inventory (children's hosts count for the parent)."""
    groups: dict[str, set[str]] = {}

    def walk(name: str, node: Any) -> set[str]:
        node = node if isinstance(node, dict) else {}
        members = set((node.get("hosts") or {}).keys())
        for child, sub in (node.get("children") or {}).items():
            members |= walk(child, sub)
        groups[name] = groups.get(name, set()) | members
        return members

    if isinstance(doc, dict):
        for name, node in doc.items():
            walk(name, node)
    groups.setdefault("all", set()).update(*groups.values())
    return groups


def match_hosts(pattern: str, groups: dict[str, set[str]]) -> set[str]:
    """Ansible host pattern subset: a:b or a,b (union), &a (intersection), !a (exclusion),
    globs over group and host names."""
    every = groups.get("all", set())

    def one(term: str) -> set[str]:
        if term in ("all", "*"):
            return set(every)
        if term in groups:
            return set(groups[term])
        if any(ch in term for ch in "*?["):
            out = {h for h in every if fnmatch.fnmatch(h, term)}
            for g in fnmatch.filter(groups, term):
                out |= groups[g]
            return out
        return {term} if term in every else set()

    terms = [t.strip() for t in pattern.replace(",", ":").split(":") if t.strip()]
    result: set[str] = set()
    for t in (t for t in terms if t[0] not in "&!"):
        result |= one(t)
    for t in (t for t in terms if t[0] == "&"):
        result &= one(t[1:])
    for t in (t for t in terms if t[0] == "!"):
        result -= one(t[1:])
    return result


def model_groups(site) -> dict[str, set[str]] | None:
    """Inventory groups as render/ansible_vars.py builds them for hosts.yml (parsing the
    rendered 16k-host inventory instead costs seconds)."""
    try:
        from ..render.ansible_vars import inventory
    except ImportError:
        return None
    hosts = [{"name": h.name, "group": h.group, "index": h.index, "rack": h.rack, "roles": list(h.roles),
              "address": h.address, "oob_address": h.oob_address, "gpus": h.gpus, "country": h.country}
             for h in site.hosts]
    groups = {g.name: {"gpu_model": g.gpu_model} for g in site.groups.values()}
    out = {k: set(v) for k, v in inventory(hosts, groups)["groups"].items()}
    out["all"] = {h["name"] for h in hosts}
    return out


def ansible_section(build: Path, site=None) -> dict:
    playbook = build / "ansible" / "project" / "site.yml"
    plays_doc = _load_yaml(playbook) if playbook.is_file() else None
    if not isinstance(plays_doc, list):
        return {"available": False, "playbook": None, "plays": []}
    groups = model_groups(site) if site is not None else None
    if groups is None:
        groups = inventory_groups(_load_yaml(build / "ansible" / "inventory" / "hosts.yml"))
    plays = []
    for p in plays_doc:
        if not isinstance(p, dict):
            continue
        if "import_playbook" in p:
            plays.append({"name": p.get("name") or f"import {p['import_playbook']}", "hosts": None,
                          "host_count": None, "roles": [], "import": p["import_playbook"]})
            continue
        pattern = str(p.get("hosts", ""))
        roles = [r if isinstance(r, str) else str((r or {}).get("role") or (r or {}).get("name") or "?")
                 for r in p.get("roles") or []]
        plays.append({"name": p.get("name") or pattern, "hosts": pattern,
                      "host_count": len(match_hosts(pattern, groups)), "roles": roles,
                      "tags": list(p.get("tags") or [])})
    # the groups stay for impact_section (which plays run) and are dropped from the document
    return {"available": True, "playbook": "ansible/project/site.yml", "plays": plays, "_groups": groups}


# --- rendered files and their impact ------------------------------------------------------------

def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return {prefix: doc}


def changed_keys(old: bytes, new: bytes) -> list[str] | None:
    """Dotted keys whose values differ between two YAML documents; None if not comparable."""
    try:
        a = yaml.load(old.decode(), Loader=_Loader)  # noqa: S506 - a safe loader subclass
        b = yaml.load(new.decode(), Loader=_Loader)  # noqa: S506
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(a, dict) or not isinstance(b, dict):
        return None
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, ...) != fb.get(k, ...))


def key_impact(key: str) -> str:
    """The impact of one changed YAML key, from the declared table (data/impact.yaml)."""
    return table().key_rule(key).impact


def file_impact(path: str, keys: list[str] | None) -> tuple[str, str]:
    """(impact, reason) of a rendered file changing."""
    parts = path.split("/")
    if parts[0] == "terraform":
        return "none", "Terraform stack: its resources are planned above"
    if parts[0] in ("verify", "report") or path in ("ansible/project/ansible.cfg",) or path.startswith("ansible/env/"):
        return "none", "tooling only"
    if path.startswith("kubernetes/bench/"):
        return "none", "benchmark jobs: applied by verify --bench, not by apply"
    if path.startswith("ansible/project/roles/") and len(parts) > 3:
        role = parts[3]
        return table().role_impact(role), f"role {role} runs again"
    if parts[0] == "slurm":
        return "restart", "Slurm configuration: scontrol reconfigure / restart slurmctld and slurmd"
    if keys:
        impacts = {k: key_impact(k) for k in keys}
        top = worst(impacts.values())
        named = [k for k, v in impacts.items() if v == top][:5]
        return top, "changed: " + ", ".join(named) + (" ..." if len(keys) > len(named) else "")
    if path.startswith("ansible/project/"):
        return "reload", "playbook changed"
    if parts[0] == "kubernetes":
        return "reload", "manifests re-applied (rolling)"
    return "reload", "configuration changed"


def files_section(new_manifest: dict[str, str], applied: dict | None, old_tree: dict[str, bytes],
                  build: Path) -> dict:
    new = {k: v for k, v in new_manifest.items() if k != MANIFEST}
    if applied is None:
        return {"baseline": "first-apply", "total": len(new), "added": sorted(new), "changed": [],
                "removed": [], "entries": []}
    old = {k: v for k, v in (applied.get("manifest") or {}).items() if k != MANIFEST}
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(k for k in new.keys() & old.keys() if new[k] != old[k])
    entries = []
    for kind, paths in (("added", added), ("changed", changed), ("removed", removed)):
        for p in paths:
            keys = None
            if kind == "changed" and p.endswith((".yml", ".yaml")) and p in old_tree \
                    and hashlib.sha256(old_tree[p]).hexdigest() == old[p]:
                keys = changed_keys(old_tree[p], (build / p).read_bytes())
            impact, reason = file_impact(p, keys)
            entries.append({"path": p, "change": kind, "impact": impact, "reason": reason,
                            "keys": keys})
    return {"baseline": "applied", "applied": applied.get("applied"), "total": len(new), "added": added,
            "changed": changed, "removed": removed, "entries": entries}


# --- the command --------------------------------------------------------------------------------

def run_plan(checked: Checked, ws: Workspace, binary: str | None = None, jobs: int | None = None,
             on_stack=None, timings: dict | None = None) -> PlanDocument:
    """Render + plan; the summary document. Raises TerraformError / RenderError."""
    from ..render import render

    timings = timings if timings is not None else {}
    provider = checked.factory.site.provider
    problem = missing_provider_mirror(checked.factory)
    if problem:  # SOV016 stops plan before this; kept for callers that skip validation
        raise AirGapError(f"{problem}; {MIRROR_HINT}")
    applied = ws.applied()
    # Terraform workers start on first use: starting them during render slows both
    # (benchmarks/README.md, plan_scale.py).
    engine = site_engine(checked, ws, binary, jobs)
    try:
        t = time.perf_counter()
        old_yaml = (ws.applied_files() or _old_yaml(ws.build)) if applied else {}
        res = render(checked.site, ws.build)
        manifest = json.loads((ws.build / MANIFEST).read_text())["files"]
        timings["render_s"] = time.perf_counter() - t

        t = time.perf_counter()
        shutil.rmtree(ws.plans_dir, ignore_errors=True)  # apply must never find a stale plan
        shutil.rmtree(ws.root / "orphans", ignore_errors=True)
        jobs_ = stack_jobs(ws, provider)

        def plan_one(job: StackJob) -> PlanResult:
            engine.init(job.stack)
            return engine.plan(job.stack, job.planfile, destroy=job.orphan)

        done = (lambda job, r: on_stack(job.unit, r, len(jobs_))) if on_stack else None
        with ThreadPoolExecutor(max_workers=1) as bg:  # the summaries are made meanwhile
            planning = bg.submit(engine.map, plan_one, jobs_, done)
            files = files_section(manifest, applied, old_yaml, ws.build)
            ansible = ansible_section(ws.build, checked.site)
            results = planning.result()
        timings["terraform_s"] = time.perf_counter() - t
        tf = terraform_section(provider, jobs_, results, engine)
        if hasattr(engine, "peak_rss_mb"):
            tf["worker_peak_mb"] = round(engine.peak_rss_mb(), 1)
    finally:
        engine.close()

    impact = impact_section(tf, files, ansible)
    changes = bool(tf["add"] or tf["change"] or tf["destroy"] or any(s["changed"] for s in tf["stacks"])
                   or files["added"] or files["changed"] or files["removed"])
    return PlanDocument(
        factory=checked.factory.metadata.name,
        factory_hash=factory_hash(checked),
        provider=provider,
        workspace=str(ws.root),
        build=str(ws.build),
        rendered={"changed": res.changed, "added": res.added, "removed": res.removed},
        manifest=manifest,
        changes=changes,
        terraform=tf,
        ansible=ansible,
        files=files,
        impact=impact,
    )


def _old_yaml(build: Path) -> dict[str, bytes]:
    """The YAML files of the build on disk before this render: the key-level diff base when
    apply kept no copy (a file counts only while its hash is still the applied one). Only the
    files the build's manifest lists are read, without following links."""
    from ..render.output import owned_files, read_owned

    owned = {rel for rel in owned_files(build) or ()
             if rel.endswith((".yml", ".yaml")) and not rel.startswith("terraform/")}
    return read_owned(build, owned)


# Rendered trees outside ansible/ and the roles that carry them to the hosts.
TREE_ROLES = {"slurm": {"slurm"}, "kubernetes": {"kubernetes", "gpu_operator", "network_operator", "inference"}}


def key_role(key: str) -> str | None:
    """The role a group_vars key belongs to (`<role>_...`), or None."""
    return table().key_role(key)


def mark_affected_plays(ansible: dict, tf: dict, files: dict) -> None:
    """play["affected"]: whether the play has anything to do on apply: a role of it changed
    (its files, its role-prefixed variables, the tree it installs), or it runs on a host that
    is new or changed, or the change is not attributable (the playbook itself, a variable of
    no role): then every play."""
    groups = ansible.pop("_groups", None) or {}
    everything = files["baseline"] == "first-apply"
    roles: set[str] = set()
    hosts = {c["host"] for s in tf["stacks"] for c in s["changes"]
             if c["host"] and c["action"] in ("create", "update", "replace")}
    for e in files["entries"]:
        parts = e["path"].split("/")
        if e["impact"] == "none":
            continue
        if e["path"].startswith("ansible/project/roles/") and len(parts) > 3:
            roles.add(parts[3])
        elif parts[0] in TREE_ROLES:
            roles |= TREE_ROLES[parts[0]]
        elif e["keys"]:
            for k in e["keys"]:
                kp = k.split(".")
                if "hosts" in kp and kp.index("hosts") + 1 < len(kp):  # inventory: a host's entry
                    hosts.add(kp[kp.index("hosts") + 1])
                elif (role := key_role(k)) is not None:
                    roles.add(role)
                else:
                    everything = True
        else:
            everything = True
    for play in ansible["plays"]:
        play["affected"] = everything or bool(roles & set(play["roles"])) or (
            bool(hosts) and play["hosts"] is not None and bool(hosts & match_hosts(play["hosts"], groups)))


def impact_section(tf: dict, files: dict, ansible: dict) -> dict:
    items = []
    for s in tf["stacks"]:  # one item per unit, action and impact, naming its hosts
        grouped: dict[tuple[str, str], list[str]] = {}
        for c in s["changes"]:
            grouped.setdefault((c["action"], c["impact"]), []).append(c["host"] or c["address"])
        for (action, impact), subjects in sorted(grouped.items()):
            items.append({"kind": "terraform", "unit": s["unit"], "action": action, "impact": impact,
                          "subjects": subjects})
    for e in files["entries"]:
        items.append({"kind": "file", "subjects": [e["path"]], "action": e["change"], "impact": e["impact"],
                      "reason": e["reason"]})
    if files["baseline"] == "first-apply" and files["total"]:
        items.append({"kind": "file", "subjects": [f"{files['total']} rendered files"], "action": "added",
                      "impact": "add", "reason": "first apply: every play runs on every host"})
    mark_affected_plays(ansible, tf, files)
    counts = {k: 0 for k in IMPACTS}
    for it in items:
        counts[it["impact"]] += len(it["subjects"])
    return {"highest": worst(it["impact"] for it in items), "counts": counts, "items": items}


def planned_stacks(doc: dict | PlanDocument) -> list[tuple[Stack, Path]]:
    """(stack, saved plan) for every stack a plan document planned: what apply runs."""
    return (doc if isinstance(doc, PlanDocument) else PlanDocument.from_json(doc)).stacks()


def record(ws: Workspace, doc: PlanDocument) -> Path:
    """plans/plan.json (what apply checks against) and runs/<id>/plan.json. Compact JSON:
    the indented form goes through Python's slow encoder (seconds at 16k hosts)."""
    data = plan_json(doc)
    atomic_write(ws.plans_dir / "plan.json", data)
    run = ws.new_run("plan")
    atomic_write(run / "plan.json", data)
    return run


def plan_json(doc: PlanDocument) -> str:
    """The bytes of plan.json."""
    return json.dumps(doc.to_json(), sort_keys=True, separators=(",", ":")) + "\n"


def plan(checked: Checked, ws: Workspace, binary: str | None = None, jobs: int | None = None,
         on_stack=None, started: float | None = None) -> PlanDocument:
    """The `plan` stage, with the site's lock held: render, plan every stack, record the
    document (plans/plan.json and runs/<id>/plan.json) with its timings. `started` is when the
    command began (perf_counter), for the validate and total times."""
    t0 = started if started is not None else time.perf_counter()
    timings: dict[str, float] = {"validate_s": time.perf_counter() - t0}
    doc = run_plan(checked, ws, binary=binary, jobs=jobs, on_stack=on_stack, timings=timings)
    timings["total_s"] = time.perf_counter() - t0
    doc.timings = {k: round(v, 3) for k, v in timings.items()}
    doc.run = str(record(ws, doc))
    return doc
