"""Finding and ending lab processes by what the kernel says, not by what was recorded.

Two facts of this machine kind shape it: `unshare --fork` ignores SIGTERM (so signal the
namespace's PID 1, its child), and the machine's PID 1 reaps orphans late (so a zombie
must count as gone, and `kill -0` is no liveness test).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_PROC = Path("/proc")


def _pids() -> list[int]:
    return [int(p) for p in os.listdir(_PROC) if p.isdigit()]


def is_alive(pid: int) -> bool:
    """True when pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def children(pid: int) -> list[int]:
    try:
        text = (_PROC / str(pid) / "task" / str(pid) / "children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def has_arg(pid: int, marker: str) -> bool:
    """True when pid is alive and one of its arguments is exactly marker (guards pid reuse)."""
    return is_alive(pid) and marker in cmdline(pid)


def find_with_arg(marker: str) -> list[int]:
    return [pid for pid in _pids() if pid != os.getpid() and has_arg(pid, marker)]


def in_netns(netns_path: Path) -> list[int]:
    """Live pids whose network namespace is the one bound at netns_path."""
    return in_netns_many([netns_path])[netns_path]


def in_netns_many(paths: Iterable[Path]) -> dict[Path, list[int]]:
    """One pass over /proc: for each bound netns path, the live pids inside it."""
    paths = list(paths)
    found: dict[Path, list[int]] = {p: [] for p in paths}
    by_id = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        by_id[(st.st_dev, st.st_ino)] = p
    if not by_id:
        return found
    for pid in _pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:  # gone, or a zombie: its namespaces are already released
            continue
        hit = by_id.get((st.st_dev, st.st_ino))
        if hit is not None:
            found[hit].append(pid)
    return found


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_until(done: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def kill_hard(pids: Iterable[int]) -> None:
    signal_all(pids, signal.SIGKILL)


def by_arg(markers: Iterable[str]) -> dict[str, list[int]]:
    """One pass over /proc: for each marker, the live pids that carry it as an argument."""
    wanted = set(markers)
    found: dict[str, list[int]] = {m: [] for m in wanted}
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        args = cmdline(pid)
        hits = wanted.intersection(args)
        if hits and is_alive(pid):
            for m in hits:
                found[m].append(pid)
    return found
