"""`factoryctl apply`: run what `plan` saved, then configure the hosts and record the result.

Phases, in order, each optional with --only:
1. terraform: apply the saved plan of every unit stack (in parallel). A stack whose saved
   plan was already applied is planned again first (a second apply, a resumed one); a plan
   Terraform calls stale (the state moved on: an interrupted apply) is re-made and applied.
2. ansible: write the connection inventory from the stacks' outputs (lab: bring back hosts
   that stopped answering), then run site.yml through ansible-runner with live progress.
3. kubernetes: the roles apply the manifests from the control plane; this phase says whether
   a cluster answers there, and skips with the reason when none does.

The saved plan must match the factory and the rendered tree of now (hashes), or apply
refuses: run `factoryctl plan`. applied.json is written only after a full run succeeds.
Ctrl-C: Terraform commands in flight finish (state stays consistent), Ansible is cancelled,
and the next apply resumes from there.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engines import inventory
from ..engines.ansible import (
    MAX_FORKS,
    HostStats,
    PlaybookRun,
    ansible_env,
    close_connections,
    run_playbook,
)
from ..engines.lab import site as labsite
from ..engines.terraform import PlanResult, Stack, Terraform, TerraformError
from ..errors import EngineFailure, Interrupted
from ..session import Checked
from ..ui import UI
from ..workspace import Workspace, write_json
from .engine_env import site_engine
from .hoststate import baseline, insync
from .interrupts import in_thread
from .plan import PlanDocument, factory_hash

PHASES = ("terraform", "ansible", "kubernetes")
STALE_PLAN = "Saved plan is stale"  # Terraform's words for a plan the state moved past


class ApplyError(EngineFailure):
    """Apply cannot go on; the message says why and what to do."""


class ApplyInterrupted(Interrupted):
    """Ctrl-C during apply: Terraform's state is consistent; the next apply resumes."""

    def __init__(self, message: str = "interrupted: Terraform state is consistent; "
                                      "run factoryctl apply again to resume"):
        super().__init__(message)


@dataclass
class ApplyResult:
    """What an apply did (runs/<id>/apply.json holds the same as `summary`)."""

    factory: str
    phases: list[str]  # the phases run, in order
    status: str  # succeeded (a failure raises ApplyError; Ctrl-C ApplyInterrupted)
    run_dir: Path
    seconds: float
    full: bool  # a full run (no --only/--limit/--tags): recorded in applied.json
    applied: Path | None  # applied.json, when this run was recorded there
    hosts: dict[str, HostStats] = field(default_factory=dict)  # Ansible's per-host recap
    in_sync: list[str] = field(default_factory=list)  # hosts the probe found as the last apply left them
    ran_because: dict[str, str] = field(default_factory=dict)  # host (or "all") -> why site.yml ran
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass
class ApplyOptions:
    auto_approve: bool = False
    only: str | None = None  # one of PHASES
    limit: str | None = None
    tags: str | None = None
    plain: bool = False
    terraform_bin: str | None = None
    jobs: int | None = None
    converge: bool = False  # run site.yml on every host even when the probe finds it in sync

    def runs(self, phase: str) -> bool:
        return self.only in (None, phase)

    @property
    def full(self) -> bool:
        """A run that applies everything: the only kind recorded in applied.json."""
        return not (self.only or self.limit or self.tags)


@dataclass
class StackWork:
    """One unit stack: its saved (or re-made) plan and what it changes."""

    unit: str
    stack: Stack
    planfile: Path
    orphan: bool
    add: int = 0
    change: int = 0
    destroy: int = 0
    outputs_changed: bool = False
    replanned: bool = False
    created: set[str] = field(default_factory=set)  # hosts (re)created: their facts go

    @property
    def changed(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def take(self, r: PlanResult) -> None:
        self.add, self.change, self.destroy = r.add, r.change, r.destroy
        self.outputs_changed = r.outputs_changed
        self.created = {c.key for c in r.changes if c.name == "host" and isinstance(c.key, str)
                        and c.action in ("create", "replace")}


# --- the saved plan -------------------------------------------------------------------------

def saved_plan(checked: Checked, ws: Workspace) -> PlanDocument:
    """The plan apply will run; ApplyError when there is none or it is stale."""
    from ..render import render

    hint = f"run factoryctl plan {checked.path}"
    try:
        doc = PlanDocument.from_json(json.loads(ws.plan_doc.read_text()))
    except (OSError, ValueError, TypeError):
        raise ApplyError(f"no saved plan in {ws.plans_dir}: {hint}") from None
    if doc.factory_hash != factory_hash(checked):
        raise ApplyError(f"the saved plan was made from a different factory.yaml: {hint}")
    try:
        built = json.loads((ws.build / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        built = None
    if built != doc.manifest:
        raise ApplyError(f"the rendered tree in {ws.build} is not the one the plan saw: {hint}")
    if render(checked.site, ws.build, check_only=True).differs:
        raise ApplyError(f"this factoryctl renders different artifacts than the saved plan holds: {hint}")
    return doc


def stack_work(doc: PlanDocument) -> list[StackWork]:
    work = []
    for s in doc.terraform["stacks"]:
        w = StackWork(s["unit"], Stack(s["unit"], Path(s["dir"]), Path(s["state"]), Path(s["data_dir"])),
                      Path(s["planfile"]), bool(s.get("orphan")), s["add"], s["change"], s["destroy"],
                      bool(s.get("outputs_changed")))
        w.created = {c["host"] for c in s.get("changes", []) if c.get("host") and c["action"] in ("create", "replace")}
        work.append(w)
    return work


# --- pieces ---------------------------------------------------------------------------------

def forget_facts(ws: Workspace, hosts) -> None:
    """Drop cached facts of re-created hosts (jsonfile cache: `<host>`, or `<prefix>_<host>`
    as ansible-core 2.19 writes them; host names hold no '_')."""
    hosts = set(hosts)
    if not hosts or not ws.facts_dir.is_dir():
        return
    for f in ws.facts_dir.iterdir():
        if f.name.rsplit("_", 1)[-1] in hosts:
            f.unlink(missing_ok=True)


def confirmed(ui: UI, question: str, auto_approve: bool) -> None:
    """Go on only with --auto-approve or a 'yes' (a terminal is needed to answer)."""
    if auto_approve or ui.confirm(question):
        return
    raise ApplyError("not confirmed: nothing was changed (without a terminal, pass --auto-approve "
                     "to go on without asking)")


# --- the run --------------------------------------------------------------------------------

class Apply:
    """One apply of one site, with the lock held by the caller."""

    def __init__(self, checked: Checked, ws: Workspace, opts: ApplyOptions, ui: UI):
        self.c, self.ws, self.opts, self.ui = checked, ws, opts, ui
        self.provider = checked.factory.site.provider
        self.cancel = threading.Event()
        self.summary: dict[str, Any] = {"factory": checked.factory.metadata.name,
                                        "factory_hash": factory_hash(checked), "phases": {}}
        self.run_dir: Path | None = None
        self.engine: Terraform | None = None
        self.restarted: list[str] = []  # lab hosts brought back by connect()
        self.run: PlaybookRun | None = None  # the site.yml run, when there was one
        self.phases_run: list[str] = []

    # -- terraform --
    def _engine(self) -> Terraform:
        if self.engine is None:
            self.engine = site_engine(self.c, self.ws, self.opts.terraform_bin, self.opts.jobs)
        return self.engine

    def prepare_terraform(self, doc: dict) -> list[StackWork]:
        """Every stack's plan: the saved one, or a new one where the saved one was applied."""
        work = stack_work(doc)
        todo = [w for w in work if not w.planfile.is_file()]
        if todo:
            eng = self._engine()

            def replan(w: StackWork) -> None:
                eng.init(w.stack)
                w.take(eng.plan(w.stack, w.planfile, destroy=w.orphan))
                w.replanned = True

            failed = [r for r in eng.map(replan, todo) if isinstance(r, BaseException)]
            if failed:
                raise ApplyError("; ".join(str(e) for e in failed))
        return work

    def apply_terraform(self, work: list[StackWork]) -> dict:
        eng = self._engine()
        logs = self.run_dir / "terraform"
        logs.mkdir(parents=True, exist_ok=True)

        def one(w: StackWork) -> dict:
            if self.cancel.is_set():
                raise ApplyInterrupted()
            if not (w.changed or w.outputs_changed):
                w.planfile.unlink(missing_ok=True)  # nothing to do: consumed as it is
                return {"unit": w.unit, "add": 0, "change": 0, "destroy": 0, "skipped": True}
            try:
                r = eng.apply(w.stack, w.planfile)
            except TerraformError as e:
                if STALE_PLAN not in str(e):
                    raise
                # An earlier apply got part of the way (Ctrl-C, a crash): plan from where
                # the state is now, and apply that.
                self.ui.warn(f"{w.unit}: saved plan is stale (an earlier apply got part of the way): "
                             "planning again from the current state")
                eng.init(w.stack)
                w.take(eng.plan(w.stack, w.planfile, destroy=w.orphan))
                r = eng.apply(w.stack, w.planfile)
            (logs / f"{w.unit}.log").write_text(r.log)
            w.planfile.unlink(missing_ok=True)
            self.ui.info(f"  {w.unit}: {r.add} added, {r.change} changed, {r.destroy} destroyed "
                         f"({r.seconds:.1f} s)")
            return {"unit": w.unit, "add": r.add, "change": r.change, "destroy": r.destroy,
                    "seconds": round(r.seconds, 3)}

        results = eng.map(one, work)
        if self.cancel.is_set():
            raise ApplyInterrupted()
        errors = [str(r) for r in results if isinstance(r, BaseException)]
        done = [r for r in results if isinstance(r, dict)]
        section = {"stacks": done, "errors": errors,
                   **{k: sum(r[k] for r in done) for k in ("add", "change", "destroy")}}
        self.summary["phases"]["terraform"] = section
        if errors:
            for e in errors:
                self.ui.error(str(e))
            raise ApplyError(f"Terraform failed in {len(errors)} stack(s); the others are applied. "
                             "Fix the cause and apply again (it resumes)")
        created = {h for w in work for h in w.created}
        forget_facts(self.ws, created)
        baseline.forget(self.ws, created)  # a new machine: what the old one was is no reference
        return section

    def outputs(self, work: list[StackWork]) -> list[dict]:
        eng = self._engine()
        live = [w for w in work if not w.orphan]
        results = eng.map(lambda w: eng.output(w.stack), live)
        bad = [str(r) for r in results if isinstance(r, BaseException)]
        if bad:
            raise ApplyError("; ".join(bad))
        return [r for r in results if isinstance(r, dict)]  # none is an exception by now

    # -- hosts --
    def connect(self, work: list[StackWork]) -> dict[str, str]:
        """Write the connection inventory; host -> address."""
        created = inventory.terraform_addresses(self.outputs(work))
        rendered = inventory.rendered_addresses(self.ws.build)
        problems = inventory.reconcile(rendered, created)
        if problems:
            raise ApplyError("the hosts Terraform created and the rendered inventory disagree:\n  "
                             + "\n  ".join(problems) + "\n(run factoryctl plan, then apply)")
        common: dict[str, str] = {}
        if labsite.is_lab(self.c):
            lab = labsite.lab_of(self.c, self.ws, log=lambda m: self.ui.info(f"  lab: {m}"))
            restarted = labsite.revive(lab, labsite.specs(self.c, created))
            self.restarted = restarted
            if restarted:
                self.ui.info(f"  lab: restarted {', '.join(restarted)} (sshd did not answer); disks kept")
                forget_facts(self.ws, restarted)
                close_connections(self.ws, [created[h] for h in restarted])
            common = lab.connection_vars()
            served = labsite.serve_mirror(self.c, self.ws, log=lambda m: self.ui.info(f"  lab: {m}"))
            if served:
                self.ui.info(f"  lab: mirror serving {served} on the bridge")
        inventory.write_connection(self.ws.connection_inventory, inventory.Connection(created, common))
        return created

    # -- ansible --
    def why_not_probe(self) -> str | None:
        """Why this apply must run site.yml on every host; None when hosts the probe finds in
        sync may skip it (drift/insync.py): nothing moved since the last full apply."""
        if self.opts.converge:
            return "--converge"
        if not self.opts.full:
            return "a partial run (--only/--limit/--tags)"
        applied = self.ws.applied()
        if not applied:
            return "no earlier apply recorded"
        if applied.get("factory_hash") != self.summary["factory_hash"]:
            return "factory.yaml changed since the last apply"
        manifest = json.loads((self.ws.build / "manifest.json").read_text())["files"]
        if applied.get("manifest") != manifest:
            return "the rendered artifacts changed since the last apply"
        tf = self.summary["phases"].get("terraform") or {}
        if any(tf.get(k) for k in ("add", "change", "destroy")):
            return "Terraform changed resources"
        if self.restarted:
            return "lab host(s) restarted"
        return None

    def ansible_phase(self, hosts: dict[str, str]) -> None:
        """site.yml where it is needed: everywhere, or (when nothing moved since the last full
        apply) only on hosts the probe does not find as that apply left them."""
        from ..engines.ssh import Remote

        reason = self.why_not_probe()
        if reason is not None:
            self.ui.info(f"  site.yml runs on every host: {reason}")
            run = self.run_ansible(hosts)
            self.summary["phases"]["ansible"]["ran_because"] = {"all": reason}
            self.record_baseline(run)
            return
        d = insync.decide(self.ws, Remote(self.c, self.ws), sorted(hosts))
        n = len(hosts)
        probed = sorted(set(d.skip.values()))
        checked = (f"{probed[0]}" if len(probed) == 1 else f"{probed[0]}-{probed[-1]}") if probed else "0"
        section = {"in_sync": sorted(d.skip), "probe_s": round(d.seconds, 3), "ran_because": d.run}
        if not d.run:
            self.summary["phases"]["ansible"] = {"status": "in sync", "rc": 0, "changed": 0, **section}
            self.ui.info(f"Ansible: no changes: all {n} host(s) are as the last apply left them "
                           f"(probe: {checked} resources per host, {d.seconds:.1f} s); site.yml not run "
                           "(--converge runs it anyway)")
            return
        for h, why in sorted(d.run.items()):
            self.ui.info(f"  {h}: runs site.yml: {why}")
        if d.skip:
            self.ui.info(f"  {len(d.skip)} host(s) as the last apply left them (probe: {checked} resources "
                           f"per host, {d.seconds:.1f} s): site.yml not run there")
        run = self.run_ansible({h: hosts[h] for h in d.run}, limit=",".join(sorted(d.run)))
        self.summary["phases"]["ansible"].update(section)
        self.record_baseline(run)

    def run_ansible(self, hosts: dict[str, str], limit: str | None = None) -> PlaybookRun:
        adir = self.ws.build / "ansible"
        limit = limit or self.opts.limit
        forks = max(1, min(len(hosts), MAX_FORKS))
        self.ui.info(f"Ansible: site.yml on {len(hosts)} host(s), forks {forks}"
                       + (f", limit {limit}" if limit else "")
                       + (f", tags {self.opts.tags}" if self.opts.tags else ""))
        t0 = time.perf_counter()
        try:
            with self.ui.engine_events("site.yml") as progress:
                run = run_playbook(adir, "site.yml", self.run_dir, limit=limit, tags=self.opts.tags,
                                   forks=forks, envvars={**ansible_env(self.ws), **labsite.run_secrets(self.c, self.ws)},
                                   observer=progress,
                                   cancel=self.cancel, inventory=[str(adir / "inventory"),
                                                                  str(self.ws.connection_inventory)],
                                   fact_cache=self.ws.facts_dir)
        except BaseException:
            baseline.forget(self.ws, hosts)
            raise
        if run.rc != 0 or run.status != "successful" or self.cancel.is_set():
            # what a failed or stopped run left on its hosts is unknown: no skipping them next time
            baseline.forget(self.ws, set(hosts) | set(run.hosts))
        seconds = time.perf_counter() - t0
        self.run = run  # its per-host recap is the result's (the UI showed it as the run ended)
        section = {"rc": run.rc, "status": run.status, "seconds": round(seconds, 3), "changed": run.changed,
                   "failed": run.failed_hosts, "unreachable": run.unreachable_hosts,
                   "hosts": {h: vars(s) for h, s in sorted(run.hosts.items())},
                   "artifacts": str(run.artifact_dir)}
        self.summary["phases"]["ansible"] = section
        if run.status == "canceled" or self.cancel.is_set():
            raise ApplyInterrupted()
        if run.unreachable_hosts:
            self.ui.error(f"unreachable: {', '.join(run.unreachable_hosts)}")
        if run.failed_hosts:
            self.ui.error(f"failed: {', '.join(run.failed_hosts)}")
        if run.rc != 0 or run.status != "successful":
            raise ApplyError(f"Ansible did not finish cleanly (rc {run.rc}, {run.status}); "
                             f"logs: {run.artifact_dir}; apply again once fixed (it converges)")
        n = len(run.hosts)
        if run.changed == 0:
            self.ui.info(f"Ansible: no changes: changed=0 on all {n} host(s) ({seconds:.1f} s)")
        else:
            busy = sum(1 for s in run.hosts.values() if s.changed)
            self.ui.info(f"Ansible: {run.changed} change(s) on {busy} of {n} host(s) ({seconds:.1f} s)")
        return run

    def record_baseline(self, run: PlaybookRun) -> None:
        """What the playbook manages on each host and how it looks now: drift's reference."""
        from ..engines.ssh import Remote

        t0 = time.perf_counter()
        ran = sorted(h for h, s in run.hosts.items() if not (s.failed or s.unreachable))
        errors = baseline.record(self.ws, Remote(self.c, self.ws), run.artifact_dir / "job_events", ran,
                                 [h.name for h in self.c.site.hosts], self.run_dir.name, partial=bool(self.opts.tags))
        for h, why in sorted(errors.items()):
            self.ui.warn(f"drift baseline not recorded for {h} ({why}); drift checks it in full")
        self.summary["phases"]["ansible"]["baseline_s"] = round(time.perf_counter() - t0, 3)
        self.ui.info(f"Drift baseline: {len(ran) - len(errors)} host(s) probed "
                       f"({time.perf_counter() - t0:.1f} s)")

    # -- kubernetes --
    def kubernetes(self, hosts: dict[str, str]) -> dict:
        from ..verify.smoke import cluster_status

        k = self.c.factory.kubernetes
        if not (k and k.enabled):
            section = {"status": "skipped", "reason": "kubernetes is not enabled in factory.yaml"}
        else:
            section = cluster_status(self.c, self.ws, hosts)
        self.summary["phases"]["kubernetes"] = section
        word = {"ok": "cluster answers", "skipped": "skipped"}.get(section["status"], section["status"])
        self.ui.info(f"Kubernetes: {word}: {section.get('reason', '')}".rstrip(": "))
        if k and k.enabled and section["status"] != "ok":
            raise ApplyError("Kubernetes is enabled but was not applied: " + section.get("reason", ""))
        return section

    # -- all of it --
    def describe(self, work: list[StackWork] | None) -> None:
        out = self.ui
        name = self.c.factory.metadata.name
        out.info(f"Apply {name} (provider {self.provider}; workspace {self.ws.root})")
        if work is not None:
            add, chg, dst = (sum(getattr(w, k) for w in work) for k in ("add", "change", "destroy"))
            label = "no changes" if not (add or chg or dst) else f"{add} to add, {chg} to change, {dst} to destroy"
            out.info(f"  Terraform:  {label} ({len(work)} unit stack(s))")
        if self.opts.runs("ansible"):
            n = len(inventory.rendered_addresses(self.ws.build))
            out.info(f"  Ansible:    site.yml on {n} host(s)" + (f" (limit {self.opts.limit})" if self.opts.limit else ""))
        if self.opts.runs("kubernetes"):
            k = self.c.factory.kubernetes
            out.info("  Kubernetes: " + ("check the cluster" if k and k.enabled else "not enabled"))

    def execute(self, doc: PlanDocument) -> ApplyResult:
        t0 = time.perf_counter()
        # Only the terraform phase needs fresh plans; the others read the stacks' outputs.
        work = self.prepare_terraform(doc) if self.opts.runs("terraform") else stack_work(doc)
        self.describe(work if self.opts.runs("terraform") else None)
        destroys = sum(w.destroy for w in work) if self.opts.runs("terraform") else 0
        confirmed(self.ui, "Apply these changes?" + (f" ({destroys} resource(s) will be DESTROYED)" if destroys else ""),
                  self.opts.auto_approve)
        self.run_dir = self.ws.new_run("apply")
        status = "failed"
        try:
            in_thread(lambda: self._phases(work), self.cancel, self.ui)
            status = "succeeded"
        except Interrupted:
            status = "interrupted"
            raise ApplyInterrupted() from None
        finally:
            if self.engine is not None:
                self.engine.close()
            self.summary.update(status=status, seconds=round(time.perf_counter() - t0, 3),
                                options={k: v for k, v in vars(self.opts).items() if k != "auto_approve"})
            write_json(self.run_dir / "apply.json", self.summary)
        applied = None
        if self.opts.full:
            manifest = json.loads((self.ws.build / "manifest.json").read_text())["files"]
            self.ws.record_applied(self.summary["factory_hash"], manifest, build=self.ws.build, run=self.run_dir.name,
                                   terraform=self.summary["phases"].get("terraform"),
                                   ansible_changed=self.summary["phases"].get("ansible", {}).get("changed"))
            applied = self.ws.applied_path
        ansible = self.summary["phases"].get("ansible") or {}
        return ApplyResult(factory=self.summary["factory"], phases=list(self.summary["phases"]), status=status,
                           run_dir=self.run_dir, seconds=time.perf_counter() - t0, full=self.opts.full,
                           applied=applied, hosts=dict(self.run.hosts) if self.run else {},
                           in_sync=list(ansible.get("in_sync", [])), ran_because=dict(ansible.get("ran_because") or {}),
                           summary=self.summary)

    def _phases(self, work: list[StackWork]) -> None:
        if self.opts.runs("terraform"):
            busy = [w for w in work if w.changed or w.outputs_changed]
            if labsite.is_lab(self.c) and any(w.add for w in busy):
                labsite.prepare_image(lambda m: self.ui.info(f"  lab: {m}"))
            self.ui.info(f"Terraform: applying {len(busy)} of {len(work)} unit stack(s)")
            self.apply_terraform(work)
        if self.cancel.is_set():
            raise ApplyInterrupted()
        hosts: dict[str, str] = {}
        if self.opts.runs("ansible") or self.opts.runs("kubernetes"):
            hosts = self.connect(work)
        if self.opts.runs("ansible"):
            self.ansible_phase(hosts)
        if self.cancel.is_set():
            raise ApplyInterrupted()
        if self.opts.runs("kubernetes"):
            self.kubernetes(hosts)


def apply(checked: Checked, ws: Workspace, opts: ApplyOptions, ui: UI) -> ApplyResult:
    """The `apply` stage, with the site's lock held (apply, up): run the saved plan's phases.
    Raises ApplyError (and the engines' errors) on failure, ApplyInterrupted on Ctrl-C; the
    run's apply.json is written either way."""
    return Apply(checked, ws, opts, ui).execute(saved_plan(checked, ws))
