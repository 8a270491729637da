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
      quarantine.json             nodes `verify --quarantine` drained (verify/quarantine.py)
      applied.json                last applied factory hash + manifest (written by apply)
      applied/                    the YAML files of the last apply (key-level diffs in plan)
      inventory/connection.yml    how Ansible reaches each host (from Terraform's outputs)
      facts/                      Ansible fact cache, kept across runs (one file per host)
      ansible-home/               ANSIBLE_HOME and Ansible's local temp files
      lab/                        lab hosts of a `provider: lab` site (state, keys, overlays)
      terraform.rc                our Terraform CLI configuration (no checkpoint)
      plugin-cache/               Terraform provider cache
      lock                        held (fcntl) by render/plan/apply/drift for the whole command
      owner.json                  which factory file (in the folder above .factory/) owns it

State never lives under build/: a render swaps build/ atomically and would take it along.

Nothing here is written through a symbolic link: the lock is opened with O_NOFOLLOW, and
every path of the layout is checked, from the factory's folder down, before it is handed out
(WorkspaceError names the link). A planted `lock -> ~/.bashrc` or `plans -> /etc` would
otherwise have factoryctl truncate or write files it never created.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import FactoryctlError
from .files import WORKSPACES, WorkspaceError, atomic_write, flock_within, refuse_links
from .manifest import owned_files, read_owned

APPLIED = "applied.json"
OWNER = "owner.json"
# Scratch names of the workspace's own swaps and writers, left behind only by a killed
# command: render's build swap, apply's applied/ snapshot, drift's scratch render.
LEFTOVER_DIRS = (".build.new-", ".build.old-", ".applied.new-", ".applied.old-", ".drift-")
OWNER_LIMIT = 64 << 10


class WorkspaceLocked(FactoryctlError):
    """Another command holds the site's lock."""


def write_json(path: Path, doc: Any) -> Path:
    return atomic_write(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def run_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


class Workspace:
    def __init__(self, root: Path, base: Path | None = None, owner: str | None = None):
        self.root = Path(root)
        # links are refused from below `base` down (the factory's folder: above it is the user's)
        self.base = Path(base) if base is not None else self.root.parent
        self.owner = owner  # the factory file's name, recorded in owner.json

    @classmethod
    def beside(cls, factory_file: Path, name: str, adopt: bool = True) -> Workspace:
        """The workspace of a factory file: `.factory/<name>/` beside it. Every command finds
        its workspace here, so the checks are made once: no link on the way, and the workspace
        is this file's (two files with one metadata.name in a folder would share state).
        `adopt=False` (Workspace.find) records no owner: nothing is written."""
        file = Path(factory_file).resolve()
        ws = cls(file.parent / WORKSPACES / name, base=file.parent, owner=file.name)
        refuse_links(ws.root, ws.base)
        ws._check_owner(name, adopt)
        return ws

    @classmethod
    def find(cls, factory_file: Path, name: str) -> Workspace:
        """The workspace of a factory file for a command that only reads it (cost, report):
        checked as `beside` checks it, but nothing is created or recorded, so that a site in a
        read-only folder can be read."""
        return cls.beside(factory_file, name, adopt=False)

    # --- safety ---------------------------------------------------------------------------
    def _path(self, *parts: str) -> Path:
        return refuse_links(self.root.joinpath(*parts), self.base)

    def _check_owner(self, name: str, adopt: bool = True) -> None:
        """Refuse a workspace another factory file owns; adopt one without a record (written by
        an older factoryctl) for this file (only when `adopt`: readers leave it as it is)."""
        if self.owner is None:
            return
        record = self._path(OWNER)
        if not self.root.is_dir():
            return  # made, with the record, by claim() when a command first writes
        raw = _read_nofollow(record)
        if raw is None and not adopt:
            return
        if raw is None:
            self._record_owner()
            raw = _read_nofollow(record)
            if raw is None:
                return  # a read-only workspace: adopted, though the record could not be written
        try:
            recorded = json.loads(raw or b"").get("factory")
        except (ValueError, AttributeError):
            raise WorkspaceError(f"{record} is not a record factoryctl wrote; delete it and the next "
                                 f"command records {self.owner} as the owner of {self.root}") from None
        if recorded == self.owner:
            return
        gone = "" if (self.base / str(recorded)).exists() else (
            f"; if {self.owner} is {recorded} renamed, delete {record} and the next command adopts the workspace")
        raise WorkspaceError(
            f"{self.root} belongs to {recorded}, but {self.owner} has the same metadata.name {name!r}: they "
            f"would share Terraform state, plans and runs. Rename metadata.name in {self.owner} (each name "
            f"gets its own workspace){gone}")

    def _record_owner(self) -> None:
        """Write owner.json if none is there (O_EXCL: of two files racing, one wins)."""
        try:
            fd = os.open(self._path(OWNER), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except FileExistsError:
            return
        except OSError:
            return  # a read-only workspace: nothing will be written into it either
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"factory": self.owner}, sort_keys=True) + "\n")

    def claim(self) -> None:
        """Make the workspace folder (no link on the way) and record its owner."""
        refuse_links(self.root, self.base)
        self.root.mkdir(parents=True, exist_ok=True)
        refuse_links(self.root, self.base)  # a link planted meanwhile
        if self.owner is not None:
            self._record_owner()

    def clean_leftovers(self) -> list[Path]:
        """Remove what a killed command left: our own scratch trees in the root, and the
        atomic writer's `.<name>.*.tmp` files there and in plans/. Called with the lock held,
        so that none of them belongs to a live command."""
        removed: list[Path] = []
        for folder in (self.root, self._path("plans"), self._path("inventory")):
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                name = entry.name
                if folder == self.root and name.startswith(LEFTOVER_DIRS) and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                elif name.startswith(".") and name.endswith(".tmp") and not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
                else:
                    continue
                removed.append(Path(entry.path))
        return removed

    # --- layout ---------------------------------------------------------------------------
    @property
    def build(self) -> Path:
        return self._path("build")

    @property
    def state_dir(self) -> Path:
        return self._path("state")

    @property
    def plans_dir(self) -> Path:
        return self._path("plans")

    @property
    def runs_dir(self) -> Path:
        return self._path("runs")

    @property
    def cli_config(self) -> Path:
        return self._path("terraform.rc")

    @property
    def plugin_cache(self) -> Path:
        return self._path("plugin-cache")

    @property
    def applied_path(self) -> Path:
        return self._path(APPLIED)

    @property
    def lab_dir(self) -> Path:
        return self._path("lab")

    @property
    def facts_dir(self) -> Path:
        return self._path("facts")

    @property
    def connection_inventory(self) -> Path:
        return self._path("inventory", "connection.yml")

    @property
    def ansible_home(self) -> Path:
        return self._path("ansible-home")

    @property
    def plan_doc(self) -> Path:
        return self._path("plans", "plan.json")

    def state_file(self, provider: str, unit: str) -> Path:
        return self._path("state", provider, f"{unit}.tfstate")

    def plan_file(self, provider: str, unit: str) -> Path:
        return self._path("plans", provider, f"{unit}.tfplan")

    def data_dir(self, provider: str, unit: str) -> Path:
        return self._path("tfdata", provider, unit)

    def orphan_dir(self, provider: str, unit: str) -> Path:
        # same depth below the workspace as build/terraform/<provider>/units/<unit>, so paths
        # relative to a stack (the lab's ../../../../../lab) mean the same thing
        return self._path("orphans", "terraform", provider, "units", unit)

    def units_with_state(self, provider: str) -> list[str]:
        """Units of `provider` that have a state file (applied at least once)."""
        d = self._path("state", provider)
        return sorted(p.name[: -len(".tfstate")] for p in d.glob("*.tfstate")) if d.is_dir() else []

    # --- runs and records -------------------------------------------------------------------
    def new_run(self, kind: str) -> Path:
        """A fresh runs/<id>/ folder (UTC time; a suffix when two start in one second)."""
        base = run_id()
        self.claim()
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
        return self._path("applied")

    def applied_files(self) -> dict[str, bytes]:
        """The YAML files of the last apply (relative path -> content); {} if none kept."""
        d = self.applied_dir
        if not d.is_dir():
            return {}
        return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*")
                if p.suffix in (".yml", ".yaml") and p.is_file() and not p.is_symlink()}

    def _snapshot(self, build: Path) -> None:
        self.claim()
        # the files the render wrote (its manifest's), not what others left in build/
        owned = {rel for rel in owned_files(build) or () if not rel.startswith("terraform/")}
        tmp = Path(tempfile.mkdtemp(prefix=".applied.new-", dir=self.root))
        try:
            for rel, data in read_owned(build, owned).items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
                shutil.copystat(build / rel, tmp / rel, follow_symlinks=False)
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
        self.claim()
        fh = self._open_lock()
        try:
            if not flock_within(fh, wait):
                fh.seek(0)
                holder = fh.read().strip() or "another factoryctl command"
                raise WorkspaceLocked(f"{self.root} is locked by {holder}; wait for it to finish "
                                      f"(the lock goes away with its process)")
            self.clean_leftovers()
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

    def _open_lock(self):
        """The lock file, opened without following a link: a `lock` planted as a link (or a
        second name of another file) would have its target truncated."""
        path = self._path("lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise WorkspaceError(f"{path} is a symbolic link; remove it (factoryctl makes its own lock "
                                     "file)") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise WorkspaceError(f"{path} is not factoryctl's lock file (not a regular file, or a second name "
                                 "of another file); remove it")
        return os.fdopen(fd, "r+")


def _read_nofollow(path: Path, limit: int = OWNER_LIMIT) -> bytes | None:
    """A small regular file's bytes, without following a link; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise WorkspaceError(f"{path} is a symbolic link; remove it") from None
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise WorkspaceError(f"{path} is not a regular file; remove it")
        return fh.read(limit)
