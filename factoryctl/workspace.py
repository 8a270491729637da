"""The workspace of one site: `.factory/<name>/` beside its factory.yaml. Nothing else writes
state.

    .factory/<name>/
      build/                      rendered tree (replaced as a whole by every render)
      state/<provider>/<unit>.tfstate   Terraform state, one file per unit stack
      tfdata/<provider>/<unit>/   TF_DATA_DIR of stacks that install providers (+ lock file)
      plans/<provider>/<unit>.tfplan    the saved plans `apply` runs, exactly as shown
      plans/plan.json             what the last plan planned (summary, hashes)
      orphans/terraform/<provider>/units/<unit>/   config used to destroy a unit whose hosts
                                  all left factory.yaml
      runs/<id>/                  one folder per run (id: UTC time, e.g. 20260501T120000Z)
      applied.json                last applied factory hash + manifest (written by apply)
      applied/                    the YAML files of the last apply (key-level diffs in plan)
      inventory/connection.yml    how Ansible reaches each host (from Terraform's outputs)
      facts/                      Ansible fact cache, kept across runs (one file per host)
      ansible-home/               ANSIBLE_HOME and Ansible's local temp files
      lab/                        lab hosts of a `provider: lab` site (state, keys, overlays)
      terraform.rc                our Terraform CLI configuration (no checkpoint)
      plugin-cache/               Terraform provider cache
      lock                        held (fcntl) by plan/apply/drift for the whole command

State never lives under build/: a render swaps build/ atomically and would take it along.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

APPLIED = "applied.json"


class WorkspaceLocked(Exception):
    """Another command holds the site's lock."""


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, doc: Any) -> Path:
    return atomic_write(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def run_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


class Workspace:
    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def beside(cls, factory_file: Path, name: str) -> Workspace:
        return cls(Path(factory_file).resolve().parent / ".factory" / name)

    # --- layout ---------------------------------------------------------------------------
    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def plans_dir(self) -> Path:
        return self.root / "plans"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cli_config(self) -> Path:
        return self.root / "terraform.rc"

    @property
    def plugin_cache(self) -> Path:
        return self.root / "plugin-cache"

    @property
    def applied_path(self) -> Path:
        return self.root / APPLIED

    @property
    def lab_dir(self) -> Path:
        return self.root / "lab"

    @property
    def facts_dir(self) -> Path:
        return self.root / "facts"

    @property
    def connection_inventory(self) -> Path:
        return self.root / "inventory" / "connection.yml"

    @property
    def ansible_home(self) -> Path:
        return self.root / "ansible-home"

    @property
    def plan_doc(self) -> Path:
        return self.plans_dir / "plan.json"

    def state_file(self, provider: str, unit: str) -> Path:
        return self.state_dir / provider / f"{unit}.tfstate"

    def plan_file(self, provider: str, unit: str) -> Path:
        return self.plans_dir / provider / f"{unit}.tfplan"

    def data_dir(self, provider: str, unit: str) -> Path:
        return self.root / "tfdata" / provider / unit

    def orphan_dir(self, provider: str, unit: str) -> Path:
        # same depth below the workspace as build/terraform/<provider>/units/<unit>, so paths
        # relative to a stack (the lab's ../../../../../lab) mean the same thing
        return self.root / "orphans" / "terraform" / provider / "units" / unit

    def units_with_state(self, provider: str) -> list[str]:
        """Units of `provider` that have a state file (applied at least once)."""
        d = self.state_dir / provider
        return sorted(p.name[: -len(".tfstate")] for p in d.glob("*.tfstate")) if d.is_dir() else []

    # --- runs and records -------------------------------------------------------------------
    def new_run(self, kind: str) -> Path:
        """A fresh runs/<id>/ folder (UTC time; a suffix when two start in one second)."""
        base = run_id()
        for n in range(1000):
            d = self.runs_dir / (base if n == 0 else f"{base}-{n}")
            try:
                d.mkdir(parents=True)
            except FileExistsError:
                continue
            write_json(d / "run.json", {"kind": kind, "started": base, "pid": os.getpid()})
            return d
        raise RuntimeError(f"cannot create a run folder under {self.runs_dir}")

    def applied(self) -> dict | None:
        """{"factory_hash", "manifest": {path: sha256}, ...} of the last successful apply."""
        try:
            return json.loads(self.applied_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def record_applied(self, factory_hash: str, manifest: dict[str, str], build: Path | None = None,
                       **extra: Any) -> Path:
        """Called by apply after success only: what is now running. With `build`, its files
        (all but Terraform's, which the state covers) are kept in applied/: the next plan
        says which keys of a changed YAML file changed, and drift runs the applied playbook
        and shows file diffs, however often the build was re-rendered meanwhile."""
        if build is not None:
            self._snapshot(Path(build))
        return write_json(self.applied_path, {"factory_hash": factory_hash, "manifest": manifest,
                                              "applied": run_id(), **extra})

    @property
    def applied_dir(self) -> Path:
        return self.root / "applied"

    def applied_files(self) -> dict[str, bytes]:
        """The YAML files of the last apply (relative path -> content); {} if none kept."""
        d = self.applied_dir
        if not d.is_dir():
            return {}
        return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*")
                if p.suffix in (".yml", ".yaml") and p.is_file()}

    def _snapshot(self, build: Path) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=".applied.new-", dir=self.root))
        try:
            for p in build.rglob("*"):
                rel = p.relative_to(build).as_posix()
                if not rel.startswith(("terraform/", ".")) and p.is_file() and not p.is_symlink():
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(p, tmp / rel)
            old = self.root / f".applied.old-{os.getpid()}"
            if self.applied_dir.exists():
                os.rename(self.applied_dir, old)
            os.rename(tmp, self.applied_dir)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # --- the lock ---------------------------------------------------------------------------
    @contextmanager
    def lock(self, command: str, wait: float = 5.0) -> Iterator[None]:
        """Hold the site's lock for a whole command. A second plan/apply/drift waits up to
        `wait` seconds, then fails naming the holder. The kernel drops the lock when its
        holder dies, so a crash never leaves the site locked."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "lock"
        fh = open(path, "a+")
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        fh.seek(0)
                        holder = fh.read().strip() or "another factoryctl command"
                        raise WorkspaceLocked(
                            f"{self.root} is locked by {holder}; wait for it to finish "
                            f"(the lock goes away with its process)") from None
                    time.sleep(0.1)
            fh.seek(0)
            fh.truncate()
            fh.write(f"factoryctl {command} (pid {os.getpid()} on {socket.gethostname()}, since {run_id()})\n")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fh.flush()
                fcntl.flock(fh, fcntl.LOCK_UN)
        finally:
            fh.close()
