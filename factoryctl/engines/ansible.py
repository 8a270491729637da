"""Ansible through ansible-runner: run a playbook in a private data dir and stream its events.

The engine knows nothing of factory.yaml (only the workspace, where Ansible keeps its files): it runs the rendered artifacts, counts per host
(ok/changed/failed/unreachable/skipped) from the runner's event stream, keeps every event
and the full stdout in the run's artifact folder, and stops cleanly when cancelled (Ctrl-C).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..workspace import Workspace
from .toolpath import child_env, tool

RUN_MARK = "FACTORYCTL_ANSIBLE_RUN"  # in the environment of every process of one playbook run

HOST_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    last_error: str = ""


@dataclass
class PlaybookRun:
    rc: int
    status: str  # successful | failed | canceled | timeout
    hosts: dict[str, HostStats] = field(default_factory=dict)
    artifact_dir: Path | None = None

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.failed)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.unreachable)


def _message(res: dict) -> str:
    for key in ("msg", "stderr", "module_stderr", "reason"):
        val = res.get(key)
        if val:
            return str(val).strip().splitlines()[-1][:300] if isinstance(val, str) else str(val)[:300]
    return ""


class EventCounter:
    """Folds runner events into per-host counts; forwards each event to an observer."""

    def __init__(self, observer: Callable[[dict, dict[str, HostStats]], None] | None = None):
        self.hosts: dict[str, HostStats] = {}
        self.observer = observer
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        with self.lock:
            if kind in HOST_EVENTS and host:
                s = self.hosts.setdefault(host, HostStats())
                outcome = HOST_EVENTS[kind]
                if outcome == "ok" and (data.get("res") or {}).get("changed"):
                    s.changed += 1
                elif outcome == "failed" and data.get("ignore_errors"):
                    s.ok += 1
                else:
                    setattr(s, outcome, getattr(s, outcome) + 1)
                if outcome in ("failed", "unreachable") and not data.get("ignore_errors"):
                    s.last_error = f"{data.get('task', '')}: {_message(data.get('res') or {})}"
            elif kind == "playbook_on_stats":
                # The final recap is authoritative (it counts handlers and loops as Ansible does).
                for outcome, key in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                                     ("dark", "unreachable"), ("skipped", "skipped")):
                    for h, n in (data.get(outcome) or {}).items():
                        setattr(self.hosts.setdefault(h, HostStats()), key, n)
                for h, n in (data.get("ok") or {}).items():
                    # Ansible's recap "ok" includes changed; keep ok as the unchanged count.
                    st = self.hosts[h]
                    st.ok = max(0, n - st.changed)
            if self.observer:
                self.observer(event, self.hosts)
        return True  # keep the event in the artifact folder


def run_playbook(
    private_data_dir: Path,
    playbook: str,
    artifact_dir: Path,
    *,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    diff: bool = False,
    forks: int | None = None,
    extravars: dict | None = None,
    envvars: dict | None = None,
    observer: Callable[[dict, dict[str, HostStats]], None] | None = None,
    cancel: threading.Event | None = None,
    timeout: int | None = None,
    inventory: list[str] | None = None,
    fact_cache: Path | None = None,
) -> PlaybookRun:
    """Run `playbook` of `private_data_dir/project`. inventory: sources in order (later ones
    win for the same host variable; default: private_data_dir/inventory). fact_cache: a
    folder kept across runs (default: a fresh one in the artifact folder, i.e. no caching)."""
    import ansible_runner

    counter = EventCounter(observer)
    cmdline = " ".join(x for x in ("--check" if check else "", "--diff" if diff else "") if x)
    env = dict(envvars or {})
    mark = f"{os.getpid()}-{uuid.uuid4().hex}"
    env[RUN_MARK] = mark
    # ansible-playbook (and what it starts) come from factoryctl's own environment, whatever
    # PATH holds (engines/toolpath.py).
    # Not runner's `binary=`: that switches it to raw mode, which drops the playbook argument;
    # pexpect finds the command on the PATH of the env it is given.
    env.setdefault("PATH", child_env()["PATH"])
    tool("ansible-playbook")  # absent: say so and how to install it, not a runner traceback
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    artifact_dir.mkdir(parents=True, exist_ok=True)
    r = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        playbook=playbook,
        artifact_dir=str(artifact_dir),
        ident="ansible",
        limit=limit,
        tags=tags,
        forks=forks,
        cmdline=cmdline or None,
        extravars=extravars,
        envvars=env,
        event_handler=counter,
        cancel_callback=(lambda: cancel.is_set()) if cancel is not None else None,
        quiet=True,
        suppress_env_files=True,  # env/ files could hold secrets; nothing lands in the build tree
        timeout=timeout,
        inventory=inventory,
        # runner joins this to the artifact dir; an absolute path survives the join
        fact_cache=str(Path(fact_cache).absolute()) if fact_cache else None,
    )
    if r.status in ("canceled", "timeout"):
        stop_leftovers(mark)
    return PlaybookRun(rc=r.rc, status=r.status, hosts=counter.hosts, artifact_dir=artifact_dir / "ansible")


def stop_leftovers(mark: str) -> list[int]:
    """Kill what a run leaves behind. Runner kills the playbook's process group on cancel or
    timeout, but Mitogen's connection processes start their own sessions (setsid) and were
    seen alive minutes after a Ctrl-C. Every process of a run carries RUN_MARK in its
    environment, so they are found by that, not by name."""
    needle = f"{RUN_MARK}={mark}".encode()
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(proc.name), signal.SIGKILL)
            killed.append(int(proc.name))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return killed


# --- the environment every playbook run gets (apply, drift, destroy) -----------------------

MAX_FORKS = 64


def control_dir(ws: Workspace) -> Path:
    """Ansible's SSH multiplexing sockets (<addr>-<user>): in the workspace when the path
    fits a Unix socket name, else a short folder keyed by the workspace."""
    inside = ws.root / "cp"
    if len(str(inside)) + len("/255.255.255.255-root") + 20 <= 107:  # ssh adds a temp suffix
        return inside
    digest = hashlib.sha256(str(ws.root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"factoryctl-cp-{digest}"


def strategy_env() -> dict[str, str]:
    """Mitogen's linear strategy where it is installed (a dependency), unless
    FACTORYCTL_ANSIBLE_STRATEGY names another: it keeps one Python interpreter per host for
    the whole run instead of starting one per task, which is most of a no-op apply's time
    (benchmarks/README.md, apply_scale.py)."""
    import os

    wanted = os.environ.get("FACTORYCTL_ANSIBLE_STRATEGY", "mitogen_linear")
    if not wanted.startswith("mitogen"):
        return {"ANSIBLE_STRATEGY": wanted}
    try:
        import ansible_mitogen
    except ImportError:
        return {"ANSIBLE_STRATEGY": "linear"}
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": wanted}


def ansible_env(ws: Workspace) -> dict[str, str]:
    """Everything Ansible writes stays in the workspace; one SSH connection per host is kept
    open (ControlPersist in ansible.cfg) and named by address so apply can close it."""
    cp = control_dir(ws)
    cp.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ws.ansible_home / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        **strategy_env(),
        "ANSIBLE_HOME": str(ws.ansible_home),
        "ANSIBLE_LOCAL_TEMP": str(ws.ansible_home / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp),
        "ANSIBLE_SSH_CONTROL_PATH": "%(directory)s/%%h-%%r",
        "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(cp),
        "ANSIBLE_HOST_KEY_CHECKING": "True",  # runner turns it off unless told
        "ANSIBLE_NOCOLOR": "1",
    }


def close_connections(ws: Workspace, addresses: list[str] | None = None) -> None:
    """End Ansible's kept-open SSH connections (all, or to these addresses): a host that was
    restarted or destroyed must not be reached through a dead master."""
    cp = control_dir(ws)
    if not cp.is_dir():
        return
    socks = [p for p in cp.iterdir() if addresses is None or p.name.rsplit("-", 1)[0] in addresses]
    procs = [subprocess.Popen(["ssh", "-S", str(p), "-O", "exit", "x"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in socks]
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for s in socks:
        s.unlink(missing_ok=True)
