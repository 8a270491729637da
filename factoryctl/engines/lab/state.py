"""The lab's state file: what was started, where, with which pids. JSON, written atomically.

The file is a record, never the truth: every operation re-checks the kernel (processes,
namespaces, mounts) before trusting it, so a stale or half-written record can only make
cleanup find more, never less.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...files import atomic_write
from .errors import LabError

STATE_VERSION = 1


@dataclass
class HostRecord:
    name: str
    address: str
    netns: str
    veth: str
    dir: str  # holds upper/, work/, merged/, console.log
    rootfs: str  # the overlay's lower layer this host was started on
    fake_gpus: int = 0
    pid: int = 0  # the `unshare` parent, outside the host
    init_pid: int = 0  # the host's PID 1 as the machine sees it


@dataclass
class LabState:
    bridge: str
    subnet: str
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["hosts"] = [asdict(h) for _, h in sorted(self.hosts.items())]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        hosts = {}
        for raw in data.get("hosts", []):
            known = {k: v for k, v in raw.items() if k in HostRecord.__dataclass_fields__}
            rec = HostRecord(**known)
            hosts[rec.name] = rec
        return cls(bridge=data["bridge"], subnet=data["subnet"], hosts=hosts)


def load(path: Path) -> LabState | None:
    """The recorded state, or None when there is none. A damaged file is an error."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LabState.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(
            f"lab state {path} is damaged ({exc})",
            "run 'factoryctl lab down' to clean up from the kernel's view",
        ) from None


def load_lenient(path: Path) -> LabState | None:
    """For teardown: a damaged record counts as missing; cleanup then discovers instead."""
    try:
        return load(path)
    except LabError:
        return None


def save(path: Path, state: LabState) -> None:
    atomic_write(path, state.to_json(), mode=0o600)  # readers see old or new, never half


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
